"""Overlay properties on random grids, cuts and dead nodes (uniform latency).

With every link taking the same time, the block reaches exactly the author's
component of the usable grid graph, each node in its breadth-first distance of
hops, 3 one-way latencies per hop, fetched from a usable neighbour one hop closer.
"""

from __future__ import annotations

import math
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.overlay import SlotOverlay
from jamsim.traffic.schedule import SlotSchedule
from tests.traffic.fake_network import FakeNetwork

L = 0.02


def bfs(v: int, schedule: SlotSchedule, net: FakeNetwork, author: int) -> dict[int, int]:
    if not net.alive(author):
        return {}
    dist = {author: 0}
    queue = deque([author])
    while queue:
        u = queue.popleft()
        for w in schedule.grid_neighbours(u):
            if w not in dist and net.link_usable(u, w):
                dist[w] = dist[u] + 1
                queue.append(w)
    return dist


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, int, FakeNetwork]:
    v = draw(st.integers(min_value=2, max_value=40))
    slot = draw(st.integers(min_value=0, max_value=1000))
    dead = draw(st.sets(st.integers(min_value=0, max_value=v - 1), max_size=v // 3))
    pairs = [(a, b) for a in range(v) for b in range(a + 1, v)]
    cut = draw(st.sets(st.sampled_from(pairs), max_size=len(pairs) // 2)) if pairs else set()
    return v, slot, FakeNetwork(lat=L, dead=set(dead), cut={frozenset(p) for p in cut})


@given(cases())
@settings(max_examples=150, deadline=None)
def test_block_follows_breadth_first_distance(case: tuple[int, int, FakeNetwork]) -> None:
    v, slot, net = case
    schedule = SlotSchedule(v, seed=9)
    batch = SlotOverlay(schedule, net).block(slot)
    author = schedule.author(slot)
    dist = bfs(v, schedule, net, author)
    t0 = schedule.slot_start(slot)
    for n in range(v):
        got, hops, via = float(batch.received_at[n]), int(batch.hops[n]), int(batch.via[n])
        if n not in dist:
            assert math.isnan(got) and hops == -1 and via == -1
            continue
        assert hops == dist[n]
        assert math.isclose(got, t0 + 3 * L * hops, abs_tol=1e-9)
        if hops:
            assert dist[via] == hops - 1 and net.link_usable(via, n)
            assert via in schedule.grid_neighbours(n)
        else:
            assert via == -1


@given(cases())
@settings(max_examples=50, deadline=None)
def test_assurances_need_a_usable_link_to_a_live_author(case: tuple[int, int, FakeNetwork]
                                                        ) -> None:
    v, slot, net = case
    schedule = SlotSchedule(v, seed=9)
    batch = SlotOverlay(schedule, net).assurances(slot)
    author = schedule.author(slot)
    at = schedule.assurance_time(slot)
    for j in range(v):
        sent, delivered = float(batch.sent_at[j]), float(batch.delivered_at[j])
        assert math.isnan(sent) == (j in net.dead)
        if j == author and j not in net.dead:
            assert delivered == at
        elif j in net.dead or author in net.dead or not net.link_usable(j, author):
            assert math.isnan(delivered)
        else:
            assert math.isclose(delivered, at + L)


@given(cases(), st.sampled_from([1, 3, "grid", "all"]))
@settings(max_examples=50, deadline=None)
def test_extras_need_a_live_sender_receiver_and_usable_link(
        case: tuple[int, int, FakeNetwork], fanout: int | str) -> None:
    v, slot, net = case
    extra = ExtraMessage(kind=222, size=0, fanout=fanout, offset=0.5)  # type: ignore[arg-type]
    schedule = SlotSchedule(v, seed=9, config=TrafficConfig(extra=(extra,)))
    batch = SlotOverlay(schedule, net).messages(slot, 0)
    at = schedule.slot_start(slot) + 0.5
    expected = [(j, r) for j in range(v) for r in schedule.extra_targets(slot, j, 0)]
    assert list(zip(batch.sender.tolist(), batch.receiver.tolist(), strict=True)) == expected
    for j, r, sent, delivered in zip(batch.sender.tolist(), batch.receiver.tolist(),
                                     batch.sent_at.tolist(), batch.delivered_at.tolist(),
                                     strict=True):
        assert math.isnan(sent) == (j in net.dead)
        if j in net.dead or r in net.dead or not net.link_usable(j, r):
            assert math.isnan(delivered)
        else:
            assert math.isclose(delivered, at + L)
