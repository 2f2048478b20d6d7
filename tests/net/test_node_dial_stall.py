"""The real node reports what the adaptive dial limit needs: it tells a stalled
dial (the peer answered, the handshake did not finish in time: overload) from an
unanswered one (nobody there: partition, dead node; ``DialFailed.stalled``), and
how long a completed dial's first answer took (``ConnectionEstablished.answer_rtt``).

Over loopback UDP, waits bounded, no fixed sleeps.
"""

from __future__ import annotations

import asyncio

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from jamsim.core.events import ConnectionEstablished, DialFailed
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import is_preferred_initiator
from tests.net.test_node import _wait, make_set, manager_events, node

POLICY = ConnectionPolicy.preset("jamnp-s", connect_timeout=1.0, non_preferred_dials=False)
# Room for the ServerHello on a loaded CI host: the stall needs an answer first.
ANSWERED = POLICY.with_overrides(connect_timeout=3.0)


def initial_packets_only(direction: str, data: bytes, _addr: object) -> bytes | None:
    """Let only the leading Initial packet of each incoming datagram in: the
    ServerHello arrives, the Handshake packets (certificate, Finished) never do."""
    if direction == "out":
        return data
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=8)
    except ValueError:
        return None
    if header.packet_type is not QuicPacketType.INITIAL:
        return None
    return data[:header.packet_length]


def test_a_dial_nobody_answers_is_not_stalled() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        i, _ = (0, 1) if is_preferred_initiator(vs[0].key, vs[1].key) else (1, 0)
        a = node(vs, ids, i, policy=POLICY)  # the peer is never started
        failures = manager_events(a, DialFailed)
        await a.start()
        try:
            await _wait(lambda: bool(failures), timeout=10)
            limit = a.status()["dial_limit"]
        finally:
            await a.stop()
        assert failures[0].reason == "timeout"
        assert not failures[0].stalled
        assert limit is None  # the adaptive limit stays open

    asyncio.run(main())


def test_a_dial_answered_but_not_finished_in_time_is_stalled() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        i, j = (0, 1) if is_preferred_initiator(vs[0].key, vs[1].key) else (1, 0)
        a = node(vs, ids, i, policy=ANSWERED, datagram_filter=initial_packets_only)
        b = node(vs, ids, j, policy=ANSWERED)
        failures = manager_events(a, DialFailed)
        await b.start()
        await a.start()
        try:
            await _wait(lambda: bool(failures), timeout=10)
            limit = a.status()["dial_limit"]
        finally:
            await a.stop()
            await b.stop()
        assert failures[0].reason == "timeout"
        assert failures[0].stalled
        assert limit == ANSWERED.adaptive_dials_min  # engaged: nothing had completed
        assert not a.connected_peers()

    asyncio.run(main())


def test_a_completed_dial_reports_its_answer_rtt() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        i, j = (0, 1) if is_preferred_initiator(vs[0].key, vs[1].key) else (1, 0)
        a, b = node(vs, ids, i, policy=ANSWERED), node(vs, ids, j, policy=ANSWERED)
        established = manager_events(a, ConnectionEstablished)
        await b.start()
        await a.start()
        try:
            await _wait(lambda: b.key in a.connected_peers(), timeout=10)
        finally:
            await a.stop()
            await b.stop()
        rtt = established[0].answer_rtt
        assert rtt is not None and 0 < rtt < ANSWERED.connect_timeout

    asyncio.run(main())
