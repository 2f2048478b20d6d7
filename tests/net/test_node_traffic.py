"""Slot traffic between real nodes on loopback: blocks cross the grid, assurances reach
the author, and a partition keeps each side's blocks on its side.

Six in-process nodes, 0.5 s slots. Waits are bounded conditions on the nodes' logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from jamsim.identity import ValidatorSet
from jamsim.net.node import Node
from jamsim.net.traffic import NodeTraffic
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.schedule import SlotSchedule
from tests.net.test_node import GENESIS, _wait, make_set

V = 6
CONFIG = TrafficConfig(slot=0.5, assurance_lead=0.2, block_size=20_000, first_slot=1)


def _cut(vs: ValidatorSet, side: set[int], i: int):  # type: ignore[no-untyped-def]
    """A datagram filter for node ``i`` that drops everything across the cut."""
    other = {vs[j].address.port for j in range(V) if (j in side) != (i in side)}

    def drop(_direction: str, data: bytes, addr: tuple[str, int]) -> bytes | None:
        return None if addr[1] in other else data

    return drop


@contextlib.asynccontextmanager
async def _running(nodes: list[Node], schedule: SlotSchedule,
                   start: float) -> AsyncIterator[list[NodeTraffic]]:
    """Start ``nodes`` and their slot traffic (slot 0 at Unix time ``start``); stop
    both on the way out, whatever happened."""
    traffic = [NodeTraffic(n, i, schedule, start) for i, n in enumerate(nodes)]
    for n in nodes:
        await n.start()
    for t in traffic:
        t.start()
    try:
        yield traffic
    finally:
        for t in traffic:
            t.stop()
        for n in nodes:
            await n.stop()


def _run(cut: set[int] | None, slots: int) -> tuple[SlotSchedule, list[NodeTraffic]]:
    schedule = SlotSchedule(V, 3, CONFIG)

    async def main() -> list[NodeTraffic]:
        vs, ids = make_set(V)
        nodes = [
            Node(ids[i], vs, GENESIS, port=vs[i].address.port, core_count=2,
                 datagram_filter=_cut(vs, cut, i) if cut is not None else None)
            for i in range(V)
        ]
        start = time.time() + 1.0  # slot 0 starts in a second: time to connect
        async with _running(nodes, schedule, start) as traffic:
            expected = V - 1 if cut is None else None
            if expected is not None:
                await _wait(lambda: all(len(n.connected_peers()) == expected for n in nodes))
            end = start + (slots + 1) * CONFIG.slot + 0.3
            await asyncio.sleep(max(0.0, end - time.time()))
        return traffic

    return schedule, asyncio.run(main())


def test_every_node_gets_every_block_and_every_author_its_assurances() -> None:
    schedule, traffic = _run(None, slots=6)
    for slot in range(2, 7):
        author = schedule.author(slot)
        start = traffic[0].start_unix + schedule.slot_start(slot)
        for i, t in enumerate(traffic):
            got, via = t.log.blocks[slot]
            assert got >= start - 0.05
            if i == author:
                assert via == -1
            else:
                # fetched from a grid neighbour that had it first
                assert via in schedule.grid_neighbours(i)
                assert traffic[via].log.blocks[slot][0] <= got
            assert t.store.get(t.chain.hash_at(slot)) == t.chain.block(slot)
        assured = traffic[author].log.assurances
        assert {j for (s, j) in assured if s == slot} == set(range(V))
        assert max(assured[(slot, j)] for j in range(V)) < start
    assert all(t.fetch_failures == 0 for t in traffic)


def test_a_partition_keeps_blocks_on_the_authors_side() -> None:
    side = {4, 5}
    schedule, traffic = _run(side, slots=8)
    checked = 0
    for slot in range(2, 9):
        author = schedule.author(slot)
        for i, t in enumerate(traffic):
            same = (i in side) == (author in side)
            assert (slot in t.log.blocks) == same, (slot, author, i)
        assured = {j for (s, j) in traffic[author].log.assurances if s == slot}
        assert assured == {j for j in range(V) if (j in side) == (author in side)}
        checked += 1
    # both sides authored at least once in the window, so both branches were exercised
    authors = {schedule.author(s) for s in range(2, 9)}
    assert authors & side and authors - side
    assert checked == 7


def test_a_node_woken_late_sends_nothing_stale() -> None:
    """After a stop (SIGSTOP, starvation) the driver skips assurances whose slot has
    started and blocks whose slot has ended, instead of sending them all at once."""
    schedule = SlotSchedule(V, 3, CONFIG)
    clock = [100.0]

    async def main() -> NodeTraffic:
        vs, ids = make_set(V)
        author = schedule.author(5)
        node = Node(ids[author], vs, GENESIS, port=vs[author].address.port, core_count=2)
        traffic = NodeTraffic(node, author, schedule, 100.0, clock=lambda: clock[0])
        await node.start()
        try:
            traffic.start()  # at slot 0
            clock[0] = 100.0 + schedule.slot_start(5) + 0.1  # woken inside slot 5
            traffic.stop()
            traffic._tick()
            traffic.stop()
        finally:
            await node.stop()
        return traffic

    traffic = asyncio.run(main())
    assert set(traffic.log.blocks) == {5}  # its own slot-5 block, nothing older
    # slot 5's assurances (due at 2.3 s) are skipped, its slot started at 2.5 s;
    # slot 6's are not due before 2.8 s
    assert traffic.log.assured == {}


EXTRA = ExtraMessage(kind=200, size=4000, fanout="all", offset=0.25)


def test_extra_messages_reach_every_peer_and_are_logged_as_receipts() -> None:
    """Kind 200, 4000 bytes, to all, 0.25 s into each 0.5 s slot: every node logs when
    it sent and when each peer's message arrived whole, within the slot; the status
    reply carries both for the harness."""
    schedule = SlotSchedule(V, 3, TrafficConfig(slot=0.5, assurance_lead=0.2,
                                                 block_size=2000, first_slot=1,
                                                 extra=(EXTRA,)))

    async def main() -> tuple[list[NodeTraffic], list[Node]]:
        vs, ids = make_set(V)
        nodes = [Node(ids[i], vs, GENESIS, port=vs[i].address.port, core_count=2,
                      extra_kinds=schedule.config.extra_kinds()) for i in range(V)]
        start = time.time() + 1.0
        async with _running(nodes, schedule, start) as traffic:
            await _wait(lambda: all(len(n.connected_peers()) == V - 1 for n in nodes))
            await asyncio.sleep(max(0.0, start + 5 * 0.5 + 0.3 - time.time()))
        return traffic, nodes

    traffic, nodes = asyncio.run(main())
    for slot in range(2, 5):
        sent_at = traffic[0].start_unix + schedule.slot_start(slot) + 0.25
        for i, t in enumerate(traffic):
            assert t.log.extra_sent[(slot, 200)] >= sent_at - 0.05
            got = {j: at for (s, k, j), at in t.log.extras.items() if s == slot and k == 200}
            assert set(got) == set(range(V)) - {i}, (slot, i)
            assert all(sent_at <= at < sent_at + 0.25 for at in got.values()), (slot, i)
    status = traffic[0].status()
    assert [2, 200, 1] in [row[:3] for row in status["extras"]]
    assert any(row[:2] == [2, 200] for row in status["extra_sent"])
    assert not any(n.misbehaviours for n in nodes)


def test_an_extra_kind_not_in_the_config_is_refused() -> None:
    """A node whose config lists no extras resets a kind-200 stream as an unknown kind;
    the sender's log has it sent, the receiver's nothing received."""
    schedule = SlotSchedule(2, 3, TrafficConfig(slot=0.5, assurance_lead=0.2,
                                                 block_size=2000, first_slot=1,
                                                 extra=(EXTRA,)))

    async def main() -> tuple[list[NodeTraffic], list[Node]]:
        vs, ids = make_set(2)
        nodes = [Node(ids[0], vs, GENESIS, port=vs[0].address.port, core_count=2,
                      extra_kinds=schedule.config.extra_kinds()),
                 Node(ids[1], vs, GENESIS, port=vs[1].address.port, core_count=2)]
        async with _running(nodes, schedule, time.time() + 1.0) as traffic:
            await _wait(lambda: all(len(n.connected_peers()) == 1 for n in nodes))
            await _wait(lambda: bool(nodes[1].misbehaviours))
        return traffic, nodes

    traffic, nodes = asyncio.run(main())
    assert "unknown stream kind 200" in nodes[1].misbehaviours
    assert not traffic[1].log.extras and traffic[0].log.extra_sent
