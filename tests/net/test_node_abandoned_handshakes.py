"""An abandoned handshake costs nothing after its connect timeout, at either end.

The acceptor gives up an inbound handshake that has not finished within the
connect timeout (its dialler, which started earlier, has given up already),
instead of retransmitting its flight until the idle timeout; the dialler drops
datagrams that still arrive for the dial it abandoned instead of taking the
acceptor's Initial for a new inbound connection.

Over loopback UDP; the filters make the dial fail the same way every run.
"""

from __future__ import annotations

import asyncio

from jamsim.core.events import Event, InboundConnecting, InboundFailed
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import is_preferred_initiator
from jamsim.net.node import Node
from tests.net.test_node import _wait, make_set, node

DIALLER = ConnectionPolicy.preset("jamnp-s", connect_timeout=1.0, non_preferred_dials=False)
ACCEPTOR = DIALLER.with_overrides(connect_timeout=3.0)


def recording(n: Node) -> list[Event]:
    """Every event the node feeds its manager, in order."""
    seen: list[Event] = []
    handle = n.manager.handle

    def spy(event: Event, now: float) -> None:
        seen.append(event)
        handle(event, now)

    n.manager.handle = spy  # type: ignore[method-assign]
    return seen


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


def test_an_abandoned_handshake_ends_at_the_connect_timeout_at_both_ends() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        i, j = (0, 1) if is_preferred_initiator(vs[0].key, vs[1].key) else (1, 0)
        gate = FirstInitialOnly()
        dialler = node(vs, ids, i, policy=DIALLER, datagram_filter=gate)
        acceptor = node(vs, ids, j, policy=ACCEPTOR)
        dialler_events, acceptor_events = recording(dialler), recording(acceptor)
        await acceptor.start()
        await dialler.start()
        loop = asyncio.get_running_loop()
        try:
            await _wait(lambda: any(isinstance(e, InboundConnecting) for e in acceptor_events))
            opened = loop.time()
            # The dial times out and is forgotten; what the acceptor retransmits
            # from then on is addressed to a connection the dialler dropped.
            await _wait(lambda: not dialler._conns, timeout=5)
            gate.open_inbound = True
            await _wait(lambda: any(isinstance(e, InboundFailed) for e in acceptor_events),
                        timeout=10)
            given_up = loop.time() - opened
            await _wait(lambda: dialler.stale_datagrams > 0, timeout=5)
            assert not acceptor._conns
        finally:
            await dialler.stop()
            await acceptor.stop()
        failed = [e for e in acceptor_events if isinstance(e, InboundFailed)]
        assert [e.reason for e in failed] == ["handshake timeout"]
        assert ACCEPTOR.connect_timeout - 0.5 <= given_up < ACCEPTOR.idle_timeout  # type: ignore[operator]
        assert not any(isinstance(e, InboundConnecting) for e in dialler_events)

    asyncio.run(main())
