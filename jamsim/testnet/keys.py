"""Dev keys and validator-set ("chain") files for testnets: ``jamsim keys N --out FILE``.

One JSON file tells every node (process or container) who the validators are,
where they listen, and -- dev only -- their private seeds, so a node started
with ``--keys FILE --index i`` needs nothing else.  Format::

    {"genesis_hash": "<64 hex>",
     "validators": [{"index": 0, "seed": "<64 hex>", "public_key": "<64 hex>",
                     "alt_name": "e...", "host": "127.0.0.1", "port": 40000,
                     "region": "default"}, ...]}

Everything is derived from ``seed`` so two runs produce the same file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jamsim.identity import (
    IdentityError,
    PeerAddress,
    ValidatorIdentity,
    ValidatorInfo,
    ValidatorSet,
)


class KeysFileError(ValueError):
    """A keys file is unreadable or malformed; the message names the file and field."""


def genesis_hash_for(seed: int | str) -> bytes:
    """Deterministic 32-byte dev genesis hash (differs per seed so testnets don't cross-talk)."""
    return hashlib.blake2b(f"jamsim-dev-genesis/{seed}".encode(), digest_size=32).digest()


def generate_keys(
    count: int,
    *,
    seed: int | str = 0,
    host: str = "127.0.0.1",
    base_port: int = 40000,
    regions: Sequence[str] | None = None,
    hosts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON document for ``count`` dev validators.

    ``regions``/``hosts`` (if given) are per-validator and cycled when shorter
    than ``count``; with ``hosts`` each validator keeps ``base_port`` (one host each).
    """
    if count < 1:
        raise KeysFileError("need at least one validator")
    validators = []
    for i in range(count):
        identity = ValidatorIdentity.generate_dev(seed, i)
        validators.append(
            {
                "index": i,
                "seed": identity.seed.hex(),
                "public_key": identity.public_key.hex(),
                "alt_name": identity.alt_name,
                "host": hosts[i % len(hosts)] if hosts else host,
                "port": base_port if hosts else base_port + i,
                "region": regions[i % len(regions)] if regions else "default",
            }
        )
    return {"genesis_hash": genesis_hash_for(seed).hex(), "validators": validators}


def write_keys(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _hex32(where: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise KeysFileError(f"{where}: expected a 64-digit hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise KeysFileError(f"{where}: not hex") from exc
    if len(raw) != 32:
        raise KeysFileError(f"{where}: expected 32 bytes, got {len(raw)}")
    return raw


def parse_keys(
    document: object, source: str = "<keys>"
) -> tuple[bytes, ValidatorSet, list[ValidatorIdentity]]:
    """Validate a decoded keys document; errors name ``source`` and the field."""
    if not isinstance(document, dict):
        raise KeysFileError(f"{source}: top level must be an object")
    genesis = _hex32(f"{source}: genesis_hash", document.get("genesis_hash"))
    entries = document.get("validators")
    if not isinstance(entries, list) or not entries:
        raise KeysFileError(f"{source}: validators must be a non-empty list")
    infos: list[ValidatorInfo] = []
    identities: list[ValidatorIdentity] = []
    for position, entry in enumerate(entries):
        where = f"{source}: validators[{position}]"
        if not isinstance(entry, dict):
            raise KeysFileError(f"{where}: must be an object")
        if entry.get("index") != position:
            raise KeysFileError(f"{where}.index: expected {position}, got {entry.get('index')!r}")
        identity = ValidatorIdentity(_hex32(f"{where}.seed", entry.get("seed")))
        public = _hex32(f"{where}.public_key", entry.get("public_key"))
        if identity.public_key != public:
            raise KeysFileError(f"{where}.public_key: does not match seed")
        if "alt_name" in entry and entry["alt_name"] != identity.alt_name:
            raise KeysFileError(f"{where}.alt_name: does not match public_key")
        host, port, region = entry.get("host"), entry.get("port"), entry.get("region", "default")
        if not isinstance(host, str) or not host:
            raise KeysFileError(f"{where}.host: must be a non-empty string")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise KeysFileError(f"{where}.port: must be an integer port 1..65535")
        if not isinstance(region, str):
            raise KeysFileError(f"{where}.region: must be a string")
        try:
            address = PeerAddress(host, port)
        except (IdentityError, ValueError) as exc:
            raise KeysFileError(f"{where}.host: {exc}") from exc
        infos.append(ValidatorInfo(position, public, address, region))
        identities.append(identity)
    try:
        validator_set = ValidatorSet(infos)
    except IdentityError as exc:
        raise KeysFileError(f"{source}: {exc}") from exc
    return genesis, validator_set, identities


def load_keys(path: Path) -> tuple[bytes, ValidatorSet, list[ValidatorIdentity]]:
    """Read and validate a keys file: ``(genesis_hash, ValidatorSet, identities)``."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise KeysFileError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise KeysFileError(f"{path}: not JSON: {exc}") from exc
    return parse_keys(document, str(path))


def resolve_hostnames(document: dict[str, Any], timeout: float = 120.0,
                      poll: float = 0.5) -> dict[str, Any]:
    """A copy of ``document`` with every validator ``host`` that is a DNS name resolved.

    Why: JAMNP-S validator metadata carries IP addresses, but Swarm gives tasks
    addresses only when they start. A swarm keys file therefore names peers
    (``tasks.v3``) and each node resolves them at startup, waiting up to
    ``timeout`` seconds for peers that are still being scheduled.
    """
    out: dict[str, Any] = json.loads(json.dumps(document))
    deadline = time.monotonic() + timeout
    for entry in out.get("validators", []):
        host = entry.get("host")
        if not isinstance(host, str):
            continue
        try:
            ipaddress.ip_address(host)
            continue
        except ValueError:
            pass
        while True:
            try:
                infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
                entry["host"] = str(infos[0][4][0])
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise KeysFileError(f"validator {entry.get('index')}: cannot resolve "
                                        f"host {host!r} within {timeout:.0f}s: {exc}") from exc
                time.sleep(poll)  # bounded wait for a peer that is still starting
    return out
