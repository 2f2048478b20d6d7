"""The node's own overload evidence over real sockets: receive-buffer drops.

A socket with a tiny receive buffer is flooded while nobody reads it (the
sends on loopback are delivered, or dropped, synchronously), so the drops are
exactly the datagrams sent minus the ones that can be read back.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from jamsim.core.policy import ConnectionPolicy
from jamsim.net.socket_drops import ReceiveDropCounter, socket_drops
from tests.net.test_node import _wait, make_set, node

pytestmark = pytest.mark.skipif(not Path("/proc/self/net/udp").exists(),
                                reason="the drops counter is Linux's /proc/net/udp")

BURST = 200
PAYLOAD = b"x" * 1000


def udp_socket(rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    return sock


def flood(address: tuple[str, int], count: int = BURST) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(count):
            sender.sendto(PAYLOAD, address)


def drain(sock: socket.socket) -> int:
    sock.setblocking(False)
    received = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return received
        received += 1


def test_the_counter_reports_exactly_what_an_overflowed_socket_dropped() -> None:
    with udp_socket(rcvbuf=4096) as small, udp_socket() as bystander:
        counter = ReceiveDropCounter(small)
        quiet = ReceiveDropCounter(bystander)
        assert counter.available and counter.new_drops() == 0
        flood(small.getsockname())
        flood(bystander.getsockname(), 10)
        received = drain(small)
        assert 0 < received < BURST
        assert counter.new_drops() == BURST - received
        assert counter.new_drops() == 0  # only what is new
        assert counter.total == BURST - received
        assert quiet.new_drops() == 0  # found by inode: another socket's drops are not ours


def test_the_counter_finds_its_socket_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket's inode never changes, so the once-a-second read goes straight to the
    table: after the first read ``fstat`` is not called again."""
    import os

    with udp_socket(rcvbuf=4096) as small:
        counter = ReceiveDropCounter(small)
        real_fstat = os.fstat

        def fstat(fd: int) -> os.stat_result:  # other files (pytest's own) pass
            assert fd != small.fileno(), "the socket's inode was looked up again"
            return real_fstat(fd)

        monkeypatch.setattr(os, "fstat", fstat)
        flood(small.getsockname())
        received = drain(small)
        assert counter.new_drops() == BURST - received > 0


def test_a_kernel_that_publishes_nothing_gives_no_counter(tmp_path: Path) -> None:
    with udp_socket() as sock:
        assert socket_drops(sock, (tmp_path / "udp",)) is None
        (tmp_path / "udp").write_text("  sl  local_address ... inode ref pointer drops\n")
        assert socket_drops(sock, (tmp_path / "udp",)) is None  # not listed


def test_a_node_whose_socket_overflows_limits_its_dials() -> None:
    """Its peers never answer (not started), which alone leaves the limit
    open; the drops of its own socket engage it."""
    policy = ConnectionPolicy.preset("jamnp-s", connect_timeout=30.0)

    async def main() -> None:
        vs, ids = make_set(6)
        a = node(vs, ids, 0, policy=policy)
        await a.start()
        try:
            assert a._drops is not None
            await _wait(lambda: sum(c.outbound for c in a._conns.values()) >= 2)
            assert a.status()["dial_limit"] is None
            sock = a._transport.get_extra_info("socket")  # type: ignore[union-attr]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            flood(("127.0.0.1", a.port))  # the loop is not running: nobody reads
            await _wait(lambda: a.status()["receive_drops"] > 0, timeout=5)
            status = a.status()
        finally:
            await a.stop()
        assert 0 < status["receive_drops"] < BURST
        assert isinstance(status["dial_limit"], int)

    asyncio.run(main())
