"""Keep-alive PINGs come from the end that opened the connection; the accepting
end PINGs only a peer that has been silent for a whole interval.

Over loopback UDP with short timeouts; waits bounded, the windows measured by
the nodes' own loop clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import is_preferred_initiator
from jamsim.net.node import Node
from tests.net.test_node import _wait, make_set, node

# interval = min(0.2, idle / 3) = 0.2 s
FAST = ConnectionPolicy.preset("jamnp-s", idle_timeout=1.0, keep_alive_interval=0.2)
SILENT = ConnectionPolicy.preset("jamnp-s", idle_timeout=None, keep_alive_interval=None)


def counting(sent: Counter[str], name: str) -> object:
    """A datagram filter that counts what a node sends and passes everything."""

    def hook(direction: str, data: bytes, _addr: object) -> bytes:
        if direction == "out":
            sent[name] += 1
        return data

    return hook


def roles(a: Node, b: Node) -> tuple[Node, Node]:
    """(dialler, acceptor) of the live connection between ``a`` and ``b``."""
    cid = a.manager.live_connection(b.key)
    assert cid is not None
    return (a, b) if a._conns[cid].outbound else (b, a)


def test_only_the_dialling_end_pings_a_quiet_connection() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        sent: Counter[str] = Counter()
        a = node(vs, ids, 0, policy=FAST, datagram_filter=counting(sent, "a"))
        b = node(vs, ids, 1, policy=FAST, datagram_filter=counting(sent, "b"))
        await a.start()
        await b.start()
        try:
            await _wait(lambda: b.key in a.connected_peers() and a.key in b.connected_peers())
            loop = asyncio.get_running_loop()
            settle = loop.time() + 0.5  # handshake stragglers and UP 0 are over
            await _wait(lambda: loop.time() >= settle)
            dialler, acceptor = roles(a, b)
            names = {id(a): "a", id(b): "b"}
            sent.clear()
            until = loop.time() + 2.0  # ten keep-alive intervals
            await _wait(lambda: loop.time() >= until)
            pings, answers = sent[names[id(dialler)]], sent[names[id(acceptor)]]
            assert not a.lost and not b.lost
        finally:
            await a.stop()
            await b.stop()
        # The dialler PINGs each interval and the acceptor ACKs each PING: as many
        # datagrams each way (10 measured). PINGs from both ends doubled both
        # counts (20 measured); a loaded host only delays timers, so fewer.
        assert 5 <= pings <= 13
        assert answers <= pings + 2

    asyncio.run(main())


def test_the_acceptor_keeps_a_peer_that_never_pings_alive() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        i, j = (0, 1) if is_preferred_initiator(vs[0].key, vs[1].key) else (1, 0)
        # Only the preferred initiator dials, and it sends no keep-alives at all;
        # the negotiated idle timeout is the acceptor's 1 s, so only the
        # acceptor's PINGs can hold the connection.
        dialler = node(vs, ids, i, policy=SILENT.with_overrides(non_preferred_dials=False))
        acceptor = node(vs, ids, j, policy=FAST.with_overrides(non_preferred_dials=False))
        await dialler.start()
        await acceptor.start()
        try:
            await _wait(lambda: dialler.key in acceptor.connected_peers())
            first = acceptor.manager.live_connection(dialler.key)
            assert first is not None and not acceptor._conns[first].outbound
            loop = asyncio.get_running_loop()
            until = loop.time() + 3.0  # three idle timeouts
            await _wait(lambda: loop.time() >= until)
            assert acceptor.manager.live_connection(dialler.key) == first
            assert not acceptor.lost and not dialler.lost
        finally:
            await dialler.stop()
            await acceptor.stop()

    asyncio.run(main())
