"""A dial abandoned at its connect timeout costs its dialler nothing afterwards.

The acceptor may still retransmit its handshake flight to the dialler's old
connection id (until its idle timeout: it cannot tell an abandoned dial from a
dialler whose Finished is late). The dialler drops those datagrams instead of
taking the acceptor's Initial for a new inbound connection, which would cost
a connection's set-up and then fail.

Over loopback UDP; the filters make the dial fail the same way every run.
"""

from __future__ import annotations

import asyncio

from jamsim.core.events import DialFailed, InboundConnecting
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import is_preferred_initiator
from tests.net.test_node import _wait, make_set, manager_events, node

# The acceptor retransmits its first flight twice, about 0.2 s and 0.6 s after
# the Initial (then aioquic's anti-amplification limit stops it): the dial is
# abandoned before either.
DIALLER = ConnectionPolicy.preset("jamnp-s", connect_timeout=0.1, non_preferred_dials=False)


class FirstInitialOnly:
    """The dialler's datagram filter: its first datagram goes out, nothing else
    does, and nothing comes in until ``open_inbound`` is set."""

    def __init__(self) -> None:
        self.sent = 0
        self.open_inbound = False

    def __call__(self, direction: str, data: bytes, _addr: object) -> bytes | None:
        if direction == "out":
            self.sent += 1
            return data if self.sent == 1 else None
        return data if self.open_inbound else None


def test_datagrams_for_an_abandoned_dial_are_dropped_not_accepted() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        i, j = (0, 1) if is_preferred_initiator(vs[0].key, vs[1].key) else (1, 0)
        gate = FirstInitialOnly()
        dialler = node(vs, ids, i, policy=DIALLER, datagram_filter=gate)
        acceptor = node(vs, ids, j, policy=DIALLER.with_overrides(connect_timeout=5.0))
        dialler_failures = manager_events(dialler, DialFailed)
        dialler_inbound = manager_events(dialler, InboundConnecting)
        acceptor_inbound = manager_events(acceptor, InboundConnecting)
        await acceptor.start()
        await dialler.start()
        try:
            await _wait(lambda: bool(acceptor_inbound))
            # The dial times out and is forgotten; what the acceptor retransmits
            # from then on is addressed to a connection the dialler dropped.
            await _wait(lambda: bool(dialler_failures))
            gate.open_inbound = True
            await _wait(lambda: dialler.stale_datagrams > 0, timeout=5)
            stale = dialler.status()["stale_datagrams"]
        finally:
            await dialler.stop()
            await acceptor.stop()
        assert stale > 0
        assert not dialler_inbound

    asyncio.run(main())
