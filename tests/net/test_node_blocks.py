"""CE 128 served from a real chain and CE 141 assurances, over real loopback sockets.

Two nodes; the server holds synthetic GP blocks in a BlockStore, the client
requests them with CE 128 and decodes what arrives. Waits are on conditions with
bounded timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from jamsim.net.node import Node
from jamsim.protocol.errors import PeerProtocolError
from jamsim.protocol.messages import Assurance, BlockRequest, RequestDirection, decode_block
from jamsim.traffic.chain import BlockStore, SyntheticChain
from tests.net.test_node import GENESIS, _wait, make_set

CHAIN = SyntheticChain(5, 2, block_size=300_000)


def _pair(store: BlockStore) -> tuple[Node, Node]:
    vs, ids = make_set(2)
    a = Node(ids[0], vs, GENESIS, port=vs[0].address.port, block_source=store.serve, core_count=2)
    b = Node(ids[1], vs, GENESIS, port=vs[1].address.port, core_count=2)
    return a, b


def _run(body: Callable[[Node, Node], Awaitable[None]], store: BlockStore) -> None:
    async def main() -> None:
        a, b = _pair(store)
        await a.start()
        await b.start()
        try:
            await _wait(lambda: b.key in a.connected_peers() and a.key in b.connected_peers())
            await body(a, b)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_ce128_serves_real_blocks_both_directions_and_resets_the_unknown() -> None:
    store = BlockStore(CHAIN.genesis)
    for slot in range(1, 5):
        store.add(CHAIN.block(slot))

    async def body(a: Node, b: Node) -> None:
        down = BlockRequest(CHAIN.hash_at(4), RequestDirection.DESCENDING_INCLUSIVE, 3)
        got = await b.request_blocks(a.key, down)
        assert [blk.header.slot for blk in got] == [4, 3, 2]
        # what crossed the wire is the chain's exact encoding, ~300 kB per block
        assert [decode_block(blk.encode()) for blk in got] == [CHAIN.block(s) for s in (4, 3, 2)]
        assert all(len(blk.encode()) == 300_000 for blk in got)
        up = BlockRequest(CHAIN.hash_at(0), RequestDirection.ASCENDING_EXCLUSIVE, 10)
        assert [blk.header.slot for blk in await b.request_blocks(a.key, up)] == [1, 2, 3, 4]
        unknown = BlockRequest(CHAIN.hash_at(9), RequestDirection.DESCENDING_INCLUSIVE, 1)
        with pytest.raises(PeerProtocolError, match="rejected"):
            await b.request_blocks(a.key, unknown)
        # a reset is a rejection, not misbehaviour: the connection stays up
        assert not b.misbehaviours and a.key in b.connected_peers()

    _run(body, store)


def test_ce141_assurance_crosses_and_both_halves_finish() -> None:
    received: list[tuple[bytes, Assurance]] = []
    assurance = Assurance(CHAIN.hash_at(0), b"\x03", b"\x07" * 64)

    async def body(a: Node, b: Node) -> None:
        a.assurance_listeners.append(lambda peer, asr: received.append((peer, asr)))
        assert b.send_assurance(a.key, assurance)
        await _wait(lambda: len(received) == 1)
        assert received == [(b.key, assurance)]
        conn = b._live_conn(a.key)
        assert conn is not None
        await _wait(lambda: conn.assurances_done == 1)  # the acceptor's FIN came back

    _run(body, BlockStore(CHAIN.genesis))


def test_a_block_above_the_receivers_cap_is_refused_not_buffered() -> None:
    store = BlockStore(CHAIN.genesis)
    store.add(CHAIN.block(1))  # 300 kB

    async def main() -> None:
        vs, ids = make_set(2)
        a = Node(ids[0], vs, GENESIS, port=vs[0].address.port, block_source=store.serve)
        b = Node(ids[1], vs, GENESIS, port=vs[1].address.port, max_message_size=100_000)
        await a.start()
        await b.start()
        try:
            await _wait(lambda: b.key in a.connected_peers() and a.key in b.connected_peers())
            req = BlockRequest(CHAIN.hash_at(1), RequestDirection.DESCENDING_INCLUSIVE, 1)
            with pytest.raises(PeerProtocolError, match="exceeds the 100000-byte limit"):
                await b.request_blocks(a.key, req)
            assert b.misbehaviours["message of 300000 bytes exceeds the 100000-byte limit"] == 1
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())
