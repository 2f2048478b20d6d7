"""Validator identity for JAMNP-S: Ed25519 keys, alt-names, ALPN, validator sets.

Everything here is pure and deterministic so that the simulator, the real node and
the tests derive exactly the same keys, names and grid from a seed. Cryptography is
PyNaCl (libsodium); nothing in this module touches the network or the clock.

Facts (JAMNP-S, ``simple.md``):

* A peer is identified by its 32-byte Ed25519 public key.
* The certificate's single DNS alt-name is ``"e"`` + 52 characters: the key read as a
  little-endian 256-bit integer, emitted 5 bits at a time from the least significant
  end with the alphabet ``abcdefghijklmnopqrstuvwxyz234567``.
* ALPN is ``jamnp-s/0/H`` (``/builder`` suffix for builders), H = first 8 hex nibbles
  of the genesis header hash.
* Preferred initiator ``P(a, b) = a`` iff ``bit255(a) xor bit255(b) xor (a < b)``.
* Validator metadata starts with 16 bytes IPv6 + 2 bytes little-endian port.
* Grid: width ``W = floor(sqrt(V))``; validators sharing ``i // W`` or ``i % W`` are
  neighbours.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import nacl.signing

__all__ = [
    "ALPN_PROTOCOL_VERSION",
    "ALT_NAME_ALPHABET",
    "KEY_SIZE",
    "METADATA_SIZE",
    "IdentityError",
    "PeerAddress",
    "ValidatorIdentity",
    "ValidatorInfo",
    "ValidatorSet",
    "alpn_for_genesis",
    "alt_name",
    "decode_metadata",
    "dev_seed",
    "encode_metadata",
    "is_preferred_initiator",
    "key_from_alt_name",
    "parse_alpn",
    "preferred_initiator",
]

KEY_SIZE = 32
METADATA_SIZE = 128
ALT_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
ALT_NAME_LENGTH = 53  # "e" + 52 characters
ALPN_PROTOCOL_VERSION = 0
_ALT_NAME_INDEX = {c: i for i, c in enumerate(ALT_NAME_ALPHABET)}


class IdentityError(ValueError):
    """A key, alt-name, ALPN string or metadata blob is malformed."""


# --------------------------------------------------------------------------- alt-name


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise IdentityError(f"an Ed25519 public key is {KEY_SIZE} bytes, got {key!r:.80}")


def alt_name(key: bytes) -> str:
    """Return the JAMNP-S certificate alt-name (``e`` + 52 chars) for ``key``."""
    _check_key(key)
    value = int.from_bytes(key, "little")
    chars = []
    for _ in range(ALT_NAME_LENGTH - 1):
        chars.append(ALT_NAME_ALPHABET[value & 0x1F])
        value >>= 5
    return "e" + "".join(chars)


def key_from_alt_name(name: str) -> bytes:
    """Decode an alt-name back to the 32-byte key; reject anything malformed.

    The 52 characters carry 260 bits, so the last character may only use its low
    4 bits; a name whose value does not fit in 256 bits is not the encoding of any
    key and is rejected rather than silently truncated.
    """
    if len(name) != ALT_NAME_LENGTH or not name.startswith("e"):
        raise IdentityError(
            f"alt-name must be 'e' followed by 52 characters, got {name!r:.80}"
        )
    value = 0
    for position, char in enumerate(name[1:]):
        digit = _ALT_NAME_INDEX.get(char)
        if digit is None:
            raise IdentityError(
                f"alt-name character {char!r} at position {position + 1} is not in "
                f"{ALT_NAME_ALPHABET!r}"
            )
        value |= digit << (5 * position)
    if value >> (8 * KEY_SIZE):
        raise IdentityError(f"alt-name {name!r} encodes more than 256 bits")
    return value.to_bytes(KEY_SIZE, "little")


# --------------------------------------------------------------------- initiator rule


def preferred_initiator(a: bytes, b: bytes) -> bytes:
    """Return whichever of ``a`` and ``b`` should dial, per JAMNP-S.

    ``P(a, b) = a`` when ``bit255(a) xor bit255(b) xor (a < b)``, else ``b``; the rule
    is symmetric (``P(a, b) == P(b, a)``) so both ends agree without talking.
    """
    _check_key(a)
    _check_key(b)
    if a == b:
        raise IdentityError("a validator has no connection to itself")
    high_a = a[31] > 127
    high_b = b[31] > 127
    return a if (high_a != high_b) != (a < b) else b


def is_preferred_initiator(local: bytes, remote: bytes) -> bool:
    """True when ``local`` is the side that should dial ``remote``."""
    return preferred_initiator(local, remote) == local


# ----------------------------------------------------------------------------- ALPN


def alpn_for_genesis(genesis_hash: bytes, *, builder: bool = False) -> str:
    """ALPN ``jamnp-s/0/<8 lower-case hex nibbles of the genesis hash>[/builder]``."""
    if len(genesis_hash) < 4:
        raise IdentityError("genesis header hash must be at least 4 bytes")
    alpn = f"jamnp-s/{ALPN_PROTOCOL_VERSION}/{genesis_hash[:4].hex()}"
    return alpn + "/builder" if builder else alpn


def parse_alpn(alpn: str) -> tuple[str, bool]:
    """Split an ALPN string into (chain prefix ``H``, is_builder); reject others."""
    parts = alpn.split("/")
    builder = len(parts) == 4 and parts[3] == "builder"
    if len(parts) not in (3, 4) or (len(parts) == 4 and not builder):
        raise IdentityError(f"not a JAMNP-S ALPN: {alpn!r}")
    if parts[0] != "jamnp-s" or parts[1] != str(ALPN_PROTOCOL_VERSION):
        raise IdentityError(f"unsupported protocol or version in ALPN {alpn!r}")
    chain = parts[2]
    if len(chain) != 8 or any(c not in "0123456789abcdef" for c in chain):
        raise IdentityError(f"ALPN chain id must be 8 lower-case hex nibbles: {alpn!r}")
    return chain, builder


# ------------------------------------------------------------------------- addresses


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """An IP endpoint as JAMNP-S publishes it: IPv6 (IPv4-mapped allowed) + port."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise IdentityError(f"port out of range: {self.port}")
        try:
            ipaddress.ip_address(self.host)
        except ValueError as exc:
            raise IdentityError(f"not an IP address: {self.host!r}") from exc

    def ipv6_bytes(self) -> bytes:
        """16-byte IPv6 form; IPv4 becomes IPv4-mapped (``::ffff:a.b.c.d``)."""
        ip = ipaddress.ip_address(self.host)
        if isinstance(ip, ipaddress.IPv4Address):
            ip = ipaddress.IPv6Address("::ffff:" + str(ip))
        return ip.packed

    @classmethod
    def from_ipv6_bytes(cls, packed: bytes, port: int) -> PeerAddress:
        ip = ipaddress.IPv6Address(packed)
        host = str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def encode_metadata(address: PeerAddress, extra: bytes = b"") -> bytes:
    """128-byte validator metadata: IPv6 (16) ++ port u16 LE ++ extra, zero padded."""
    body = address.ipv6_bytes() + address.port.to_bytes(2, "little") + extra
    if len(body) > METADATA_SIZE:
        raise IdentityError(f"metadata is {METADATA_SIZE} bytes; extra is too long")
    return body.ljust(METADATA_SIZE, b"\x00")


def decode_metadata(metadata: bytes) -> PeerAddress:
    """Read the endpoint from the first 18 bytes of validator metadata."""
    if len(metadata) < 18:
        raise IdentityError(f"metadata needs at least 18 bytes, got {len(metadata)}")
    return PeerAddress.from_ipv6_bytes(metadata[:16], int.from_bytes(metadata[16:18], "little"))


# -------------------------------------------------------------------------- identity


def dev_seed(seed: int | str, index: int) -> bytes:
    """Deterministic 32-byte Ed25519 seed for dev validator ``index`` under ``seed``.

    Using a hash (not ``random``) means the same keys come out in every process,
    container and Python version.
    """
    return hashlib.blake2b(f"jamsim-dev-key/{seed}/{index}".encode(), digest_size=32).digest()


@dataclass(frozen=True)
class ValidatorIdentity:
    """A validator's private identity: its Ed25519 signing key."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != KEY_SIZE:
            raise IdentityError("an Ed25519 seed is 32 bytes")

    @classmethod
    def generate_dev(cls, seed: int | str, index: int) -> ValidatorIdentity:
        return cls(dev_seed(seed, index))

    @cached_property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @cached_property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def alt_name(self) -> str:
        return alt_name(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature


# ---------------------------------------------------------------------- validator set


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    """One public entry of a validator set."""

    index: int
    key: bytes
    address: PeerAddress
    region: str = "default"

    @property
    def name(self) -> str:
        """Short human name used in logs and scenarios (``v3``)."""
        return f"v{self.index}"


class ValidatorSet(Sequence[ValidatorInfo]):
    """An ordered validator set (one epoch) with lookups and the JAMNP-S grid."""

    __slots__ = ("_by_key", "_validators", "width")

    def __init__(self, validators: Iterable[ValidatorInfo]) -> None:
        self._validators: tuple[ValidatorInfo, ...] = tuple(validators)
        self._by_key: dict[bytes, ValidatorInfo] = {}
        for position, info in enumerate(self._validators):
            if info.index != position:
                raise IdentityError(f"validator at position {position} has index {info.index}")
            if info.key in self._by_key:
                raise IdentityError(f"duplicate key in validator set at index {info.index}")
            self._by_key[info.key] = info
        self.width = max(1, math.isqrt(len(self._validators)))

    @classmethod
    def dev(
        cls,
        count: int,
        *,
        seed: int | str = 0,
        host: str = "127.0.0.1",
        base_port: int = 40000,
        regions: Sequence[str] | None = None,
    ) -> ValidatorSet:
        """A dev set of ``count`` validators with keys derived from ``seed``."""
        infos = []
        for i in range(count):
            identity = ValidatorIdentity.generate_dev(seed, i)
            region = regions[i] if regions else "default"
            address = PeerAddress(host, base_port + i)
            infos.append(ValidatorInfo(i, identity.public_key, address, region))
        return cls(infos)

    def __len__(self) -> int:
        return len(self._validators)

    def __getitem__(self, index: int) -> ValidatorInfo:  # type: ignore[override]
        return self._validators[index]

    def __iter__(self) -> Iterator[ValidatorInfo]:
        return iter(self._validators)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def keys(self) -> list[bytes]:
        return [v.key for v in self._validators]

    def by_key(self, key: bytes) -> ValidatorInfo | None:
        return self._by_key.get(key)

    def index_of(self, key: bytes) -> int:
        info = self._by_key.get(key)
        if info is None:
            raise KeyError(key.hex())
        return info.index

    def grid_neighbours(self, index: int) -> list[int]:
        """Indices sharing a row (``i // W``) or column (``i % W``) with ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        w = self.width
        row, col = divmod(index, w)
        return [
            j
            for j in range(len(self))
            if j != index and (j // w == row or j % w == col)
        ]

    def are_grid_neighbours(self, i: int, j: int) -> bool:
        w = self.width
        return i != j and (i // w == j // w or i % w == j % w)
