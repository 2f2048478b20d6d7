"""The analytic overlay on a hand-computed 3x3 grid (9 validators).

    0 1 2
    3 4 5      neighbours share a row or a column
    6 7 8
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.overlay import SlotOverlay
from jamsim.traffic.schedule import SlotSchedule, grid_neighbours
from tests.traffic.fake_network import FakeNetwork

L = 0.01  # one-way latency


def slot_with_author(schedule: SlotSchedule, author: int) -> int:
    return next(s for s in range(1, 500) if schedule.author(s) == author)


def run_block(net: FakeNetwork, author: int, cfg: TrafficConfig | None = None
              ) -> tuple[float, dict[int, tuple[float, int, int]]]:
    schedule = SlotSchedule(9, seed=5, config=cfg)
    slot = slot_with_author(schedule, author)
    batch = SlotOverlay(schedule, net).block(slot)
    assert batch.author == author and batch.slot == slot
    t0 = schedule.slot_start(slot)
    rows = {int(n): (float(r) - t0, int(h), int(v))
            for n, r, h, v in zip(batch.node, batch.received_at, batch.hops, batch.via,
                                  strict=True)}
    return t0, rows


def test_centre_author_reaches_all_in_two_hops() -> None:
    _, rows = run_block(FakeNetwork(lat=L), author=4)
    # announce (L), request (L), block (L): 3L per hop
    expected = {4: (0.0, 0, -1)}
    expected |= {n: (3 * L, 1, 4) for n in (1, 3, 5, 7)}
    # corners: both announcers arrive together; the first popped (lowest index) serves
    expected |= {0: (6 * L, 2, 1), 2: (6 * L, 2, 1), 6: (6 * L, 2, 3), 8: (6 * L, 2, 5)}
    assert rows.keys() == expected.keys()
    for n, (t, h, v) in expected.items():
        assert rows[n][0] == pytest.approx(t, abs=1e-12), n
        assert rows[n][1:] == (h, v), n


def test_serialisation_at_link_bandwidth() -> None:
    cfg = TrafficConfig(block_size=100_000, header_size=400)
    _, rows = run_block(FakeNetwork(lat=L, bw=8e6), author=0, cfg=cfg)
    announce = (400 + 36) * 8 / 8e6
    request = 37 * 8 / 8e6
    block = 100_000 * 8 / 8e6  # 0.1 s
    hop = 3 * L + announce + request + block
    for n in (1, 2, 3, 6):
        assert rows[n][0] == pytest.approx(hop) and rows[n][1] == 1
    for n in (4, 5, 7, 8):
        assert rows[n][0] == pytest.approx(2 * hop) and rows[n][1] == 2


def test_partition_cuts_a_row_off() -> None:
    net = FakeNetwork(lat=L)
    net.partition({0, 1, 2}, {3, 4, 5, 6, 7, 8})
    _, rows = run_block(net, author=4)
    for n in (0, 1, 2):
        assert math.isnan(rows[n][0]) and rows[n][1:] == (-1, -1)
    assert {n: rows[n][1] for n in (3, 5, 7)} == {3: 1, 5: 1, 7: 1}
    assert {n: rows[n][1:] for n in (6, 8)} == {6: (2, 3), 8: (2, 5)}
    _, rows = run_block(net, author=0)
    assert {n for n, r in rows.items() if not math.isnan(r[0])} == {0, 1, 2}


def test_dead_node_is_routed_around() -> None:
    net = FakeNetwork(lat=L, dead={4})
    _, rows = run_block(net, author=1)
    assert math.isnan(rows[4][0]) and rows[4][1] == -1
    assert {n: rows[n][1:] for n in (0, 2, 7)} == {0: (1, 1), 2: (1, 1), 7: (1, 1)}
    assert {n: rows[n][1:] for n in (3, 5, 6, 8)} == {3: (2, 0), 5: (2, 2), 6: (2, 0),
                                                      8: (2, 2)}
    assert rows[3][0] == pytest.approx(6 * L)


def test_dead_author_produces_nothing() -> None:
    _, rows = run_block(FakeNetwork(lat=L, dead={4}), author=4)
    assert all(math.isnan(t) and h == -1 for t, h, _ in rows.values())


def test_fetch_goes_to_the_first_announcer_even_if_slower() -> None:
    # Author 4. Node 5 gets the block at 3L; node 7 at 3L too. Node 8 hears 5 first
    # (5->8 latency 1 ms) but 5->8 bandwidth is tiny, so fetching from 7 would be
    # faster: the protocol still asks the first announcer.
    net = FakeNetwork(lat=L, latencies={(5, 8): 0.001},
                      bandwidths={(5, 8): 8e4})  # 100 kB at 80 kbit/s: 10 s
    cfg = TrafficConfig(block_size=100_000, header_size=0)
    _, rows = run_block(net, author=4, cfg=cfg)
    ann = 36 * 8 / 8e4
    assert rows[8][1:] == (2, 5)
    assert rows[8][0] == pytest.approx(3 * L + 0.001 + ann + L + 0.001 + 10.0)


def test_assurances_to_the_author_before_the_slot() -> None:
    net = FakeNetwork(lat=L, dead={8})
    net.partition({0, 1, 2}, {3, 4, 5, 6, 7, 8})
    schedule = SlotSchedule(9, seed=5)
    slot = slot_with_author(schedule, 4)
    batch = SlotOverlay(schedule, net).assurances(slot)
    at = schedule.assurance_time(slot)
    assert batch.author == 4
    assert np.isnan(batch.sent_at[8]) and np.isnan(batch.delivered_at[8])
    assert list(np.isnan(batch.delivered_at)) == [True] * 3 + [False] * 5 + [True]
    assert batch.delivered_at[4] == at
    assert batch.delivered_at[3] == pytest.approx(at + L)


def test_usable_checks_stay_near_one_per_node() -> None:
    net = FakeNetwork(lat=L)
    schedule = SlotSchedule(1023, seed=1)
    overlay = SlotOverlay(schedule, net)
    batch = overlay.block(3)
    assert (batch.hops[np.arange(1023) != batch.author] >= 1).all()
    assert set(batch.hops.tolist()) == {0, 1, 2}
    assert net.usable_calls < 3 * 1023


def test_extra_messages_on_the_grid_by_hand() -> None:
    """Extra kind 200, 1000 bytes, to the grid, 1.5 s into the slot, 8 Mbit/s links:
    each of the 4 grid neighbours gets it after L + 1 ms; a dead receiver and a cut
    pair get nothing; a dead sender sends nothing."""
    extra = ExtraMessage(kind=200, size=1000, fanout="grid", offset=1.5)
    net = FakeNetwork(lat=L, bw=8e6, dead={8})
    net.partition({0, 1, 2}, {3, 4, 5, 6, 7, 8})
    schedule = SlotSchedule(9, seed=5, config=TrafficConfig(extra=(extra,)))
    batch = SlotOverlay(schedule, net).messages(7, 0)
    at = schedule.slot_start(7) + 1.5
    assert batch.slot == 7 and set(batch.kind.tolist()) == {200}
    rows = {(int(s), int(r)): (float(t), float(d)) for s, r, t, d in zip(
        batch.sender, batch.receiver, batch.sent_at, batch.delivered_at, strict=True)}
    assert rows.keys() == {(s, r) for s in range(9) for r in grid_neighbours(s, 9)}
    on_time = at + L + 1000 * 8 / 8e6
    for (s, r), (sent, delivered) in rows.items():
        assert math.isnan(sent) == (s == 8)
        cut = (s < 3) != (r < 3)
        if s == 8 or r == 8 or cut:
            assert math.isnan(delivered), (s, r)
        else:
            assert delivered == pytest.approx(on_time), (s, r)
    assert rows[(4, 3)][1] == pytest.approx(at + 0.011) == rows[(1, 0)][1]
    assert math.isnan(rows[(1, 4)][1]) and math.isnan(rows[(7, 8)][1])


def test_extra_fanout_count_draws_distinct_peers() -> None:
    extra = ExtraMessage(kind=250, size=10, fanout=3, offset=0.0)
    schedule = SlotSchedule(9, seed=5, config=TrafficConfig(extra=(extra,)))
    batch = SlotOverlay(schedule, FakeNetwork(lat=L)).messages(2, 0)
    for s in range(9):
        targets = batch.receiver[batch.sender == s].tolist()
        assert len(set(targets)) == 3 and s not in targets
    assert np.allclose(batch.delivered_at, schedule.slot_start(2) + L)
