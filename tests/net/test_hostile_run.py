"""A `jamsim node` process under a hostile peer: its log holds no traceback.

The done-when check of the hostile-input work, end to end: a real node process
meets certificates in other implementations' styles, a UP 0 reordering, garbage
streams, an oversized frame and UDP garbage, then stops cleanly on SIGTERM with
nothing worse than WARNING lines about the misbehaving peer in its log.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from jamsim.protocol.framing import encode_message
from jamsim.protocol.messages import Final, Handshake
from jamsim.testnet.keys import generate_keys, load_keys, write_keys
from tests.net.peers import client_config, raw_peer
from tests.net.test_node import free_ports
from tests.net.test_node_command import RUNNER
from tests.quic.cert_corpus import CORPUS, build

pytestmark = pytest.mark.real


async def _hostile(port: int, keys: Path) -> None:
    genesis, _, identities = load_keys(keys)
    me = identities[1]
    async with raw_peer(port, client_config(identity=me, genesis=genesis)) as peer:
        up0 = bytes([0]) + encode_message(Handshake(Final(genesis, 0), ()).encode())
        low, high = peer.new_stream(), peer.new_stream()
        peer.send(high, up0)
        await peer.wait_for(lambda: high in peer.received)
        peer.send(low, up0)  # the lower id second: reset, never written to
        for junk in (b"\x80" + b"\xff" * 40, b"\x07abc", b"\x80" + (1 << 30).to_bytes(4, "little")):
            peer.send(peer.new_stream(), junk, end=True)
        await peer.wait_for(lambda: low in peer.resets())
    for name in ("jam-impl-style", "rsa", "base32-alt-name"):
        spec, verdict = CORPUS[name]
        der, key = build(spec)
        config = client_config(x509.load_der_x509_certificate(der), key, genesis=genesis)
        async with raw_peer(port, config) as peer:  # accepted: a builder slot
            if verdict is not None:
                await peer.wait_for(lambda p=peer: p.close_event() is not None)  # type: ignore[misc]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for size in (1, 7, 1200):
            sock.sendto(bytes([0xC3]) + b"\x00" * size, ("127.0.0.1", port))


def test_a_hostile_run_leaves_no_traceback_in_the_node_log(tmp_path: Path) -> None:
    (udp0, udp1) = free_ports(2)
    doc = generate_keys(2, seed=3, base_port=udp0)
    doc["validators"][1]["port"] = udp1
    keys = tmp_path / "keys.json"
    write_keys(keys, doc)
    log = tmp_path / "node0.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--keys", str(keys), "--index", "0"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        async def main() -> None:
            async with asyncio.timeout(30):
                while "listening" not in log.read_text(errors="replace"):
                    await asyncio.sleep(0.05)  # polling a log file for start-up
                await _hostile(udp0, keys)

        asyncio.run(main())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    assert "misbehaved" in text and "rejected peer" in text, text[-3000:]
    assert "Traceback" not in text, text
    assert " ERROR " not in text and "internal error" not in text, text
