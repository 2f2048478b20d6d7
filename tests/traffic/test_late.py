"""Which late deliveries are recorded: the shared rule and the ``model`` overlay's use of it.

The rule (:mod:`jamsim.traffic.late`) is the real node's: a block or extra message
of slot ``s`` is recorded until the end of slot ``s + 64`` (its status window), an
assurance until the end of slot ``s + 1`` (how far back an author looks for the
anchor), nothing at or after the run's end. The overlay cases are computed by hand
on the 3x3 grid of tests/traffic/test_overlay.py:

    0 1 2
    3 4 5      neighbours share a row or a column
    6 7 8

Slots of 1 s and an assurance lead of 0.25 s, so every time below is a sum of
binary fractions and the boundaries are exact.
"""

from __future__ import annotations

import math

import pytest

from jamsim.core.errors import UsageError
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.late import (
    ASSURANCE_LATE_SLOTS,
    LATE_SLOTS,
    STATUS_WINDOW,
    recorded_before,
)
from jamsim.traffic.overlay import SlotOverlay
from jamsim.traffic.records import NEVER
from jamsim.traffic.schedule import MessageKind, SlotSchedule, grid_neighbours
from tests.traffic.fake_network import FakeNetwork

L = 0.0078125  # one-way latency, 2**-7 s
CONFIG = TrafficConfig(slot=1.0, assurance_lead=0.25, block_size=1000, header_size=0)


def slot_with_author(schedule: SlotSchedule, author: int) -> int:
    return next(s for s in range(1, 500) if schedule.author(s) == author)


def test_the_bounds_are_the_real_nodes() -> None:
    assert LATE_SLOTS == STATUS_WINDOW == 64
    assert ASSURANCE_LATE_SLOTS == 1
    # slot 10 of 6 s slots ends at 66 s
    assert recorded_before(10, MessageKind.BLOCK, 6.0) == (10 + 1 + 64) * 6.0
    assert recorded_before(10, MessageKind.EXTRA, 6.0) == (10 + 1 + 64) * 6.0
    assert recorded_before(10, MessageKind.ASSURANCE, 6.0) == (10 + 1 + 1) * 6.0
    # the run's end, when earlier, is the bound
    assert recorded_before(10, MessageKind.ASSURANCE, 6.0, run_end=70.0) == 70.0
    assert recorded_before(10, MessageKind.BLOCK, 6.0, run_end=100.0) == 100.0
    with pytest.raises(UsageError):
        recorded_before(10, MessageKind.ANNOUNCEMENT, 6.0)


def test_an_assurance_is_recorded_until_the_end_of_the_next_slot() -> None:
    """Author 4; assurances for slot ``s`` leave at ``s - 0.25``. Node 3's link to the
    author takes 1.5 s: it arrives at ``s + 1.25``, inside slot ``s + 1``, late but
    recorded with its time. Node 5's takes 2.5 s: ``s + 2.25``, in slot ``s + 2``,
    after the author stopped recognising its anchor: never. Node 1's takes exactly
    2.25 s: ``s + 2``, the first instant of slot ``s + 2``, already outside the
    window. Everyone else: one latency, on time."""
    net = FakeNetwork(lat=L, latencies={(3, 4): 1.5, (5, 4): 2.5, (1, 4): 2.25})
    schedule = SlotSchedule(9, seed=5, config=CONFIG)
    slot = slot_with_author(schedule, 4)
    batch = SlotOverlay(schedule, net).assurances(slot)
    at = schedule.assurance_time(slot)
    assert at == slot - 0.25
    got = batch.delivered_at.tolist()
    assert got[3] == slot + 1.25
    assert schedule.slot_end(slot) < got[3] < schedule.slot_end(slot + 1)
    assert math.isnan(got[5])
    assert math.isnan(got[1])
    assert got[4] == at
    for j in (0, 2, 6, 7, 8):
        assert got[j] == at + L, j
    assert batch.sent_at.tolist() == [at] * 9  # sent by every live validator all the same


def test_an_assurance_arriving_after_the_run_end_is_not_recorded() -> None:
    """The same 1.5 s link, in a run that ends at ``s + 1``: the arrival at
    ``s + 1.25`` is inside its window but after the run."""
    net = FakeNetwork(lat=L, latencies={(3, 4): 1.5})
    schedule = SlotSchedule(9, seed=5, config=CONFIG)
    slot = slot_with_author(schedule, 4)
    batch = SlotOverlay(schedule, net, run_end=slot + 1.0).assurances(slot)
    got = batch.delivered_at.tolist()
    assert math.isnan(got[3])
    assert got[0] == schedule.assurance_time(slot) + L


def slow_node_5(latency: float) -> FakeNetwork:
    """Every link into node 5 (from its neighbours 2, 3, 4, 8) takes ``latency``."""
    slow = {(u, 5): latency for u in grid_neighbours(5, 9)}
    return FakeNetwork(lat=L, latencies=slow)


@pytest.mark.parametrize(("run_end", "recorded"), [(0.5, False), (0.75, True)])
def test_a_block_arriving_after_the_run_end_is_not_recorded(run_end: float,
                                                           recorded: bool) -> None:
    """Author 4, every link into node 5 takes 0.25 s. Node 5 first hears the author
    (0.25 s; its other neighbours have the block at 3L and their announcements
    reach it 0.25 s after that), requests the block (L) and has it
    ``0.25 + L + 0.25`` after the slot start. A run ending half a second into the
    slot ends before that: never, with no hops and no sender; one ending at 0.75 s
    records it. The rest of the grid has it in one or two hops either way."""
    schedule = SlotSchedule(9, seed=5, config=CONFIG)
    slot = slot_with_author(schedule, 4)
    t0 = schedule.slot_start(slot)
    batch = SlotOverlay(schedule, slow_node_5(0.25), run_end=t0 + run_end).block(slot)
    arrival = 0.25 + L + 0.25
    rows = {int(n): (float(r), int(h), int(v)) for n, r, h, v in
            zip(batch.node, batch.received_at, batch.hops, batch.via, strict=True)}
    if recorded:
        assert rows[5] == (t0 + arrival, 1, 4)
    else:
        assert math.isnan(rows[5][0]) and rows[5][1:] == (NEVER, NEVER)
    assert rows[4] == (t0, 0, NEVER)
    for n in (1, 3, 7):
        assert rows[n] == (pytest.approx(t0 + 3 * L), 1, 4), n
    for n in (0, 2, 6, 8):
        assert rows[n][0] == pytest.approx(t0 + 6 * L) and rows[n][1] == 2, n


def test_a_block_is_recorded_for_the_status_window_only() -> None:
    """No run end: a block that takes ``2 * 32 + L`` s to reach node 5 arrives in slot
    ``s + 64`` and is recorded; one taking ``2 * 33 + L`` arrives in slot ``s + 66``,
    after slot ``s + 64`` left every real node's status reply: never."""
    schedule = SlotSchedule(9, seed=5, config=CONFIG)
    slot = slot_with_author(schedule, 4)
    t0 = schedule.slot_start(slot)
    kept = SlotOverlay(schedule, slow_node_5(32.0)).block(slot)
    assert kept.received_at[5] == t0 + 64 + L
    assert kept.received_at[5] < schedule.slot_end(slot + LATE_SLOTS)
    dropped = SlotOverlay(schedule, slow_node_5(33.0)).block(slot)
    assert math.isnan(dropped.received_at[5])
    assert (dropped.hops[5], dropped.via[5]) == (NEVER, NEVER)


def test_the_relays_of_a_block_too_late_are_too_late_as_well() -> None:
    """A node left without the block leaves every node that could only get it through
    it without it too, so no row names a sender that has no time. Author 0; every link
    out of node 0 but the one to node 1 takes 10 s, and 1 is the only way on: node 1
    has the block at 3L, then everything else hangs on 1's relays (2, 4 and 7 at 6L,
    the rest at 9L); a run ending at 5L leaves only node 1 and the author."""
    slow = {(0, v): 10.0 for v in grid_neighbours(0, 9) if v != 1}
    net = FakeNetwork(lat=L, latencies=slow)
    schedule = SlotSchedule(9, seed=5, config=CONFIG)
    slot = slot_with_author(schedule, 0)
    t0 = schedule.slot_start(slot)
    batch = SlotOverlay(schedule, net, run_end=t0 + 5 * L).block(slot)
    recorded = {int(n) for n, r in zip(batch.node, batch.received_at, strict=True)
                if not math.isnan(r)}
    assert recorded == {0, 1}
    for n in range(9):
        via = int(batch.via[n])
        assert via == NEVER or int(via) in recorded, n
    assert (batch.hops[2:] == NEVER).all()


def test_an_extra_message_arriving_after_the_run_end_is_not_recorded() -> None:
    """One 1 kB extra message from each node to its grid neighbours half a second into
    the slot; the link from 0 to 1 takes 0.75 s, so it arrives at ``s + 1.25``
    (late, in its window); a run ending at ``s + 1`` never records it."""
    cfg = TrafficConfig(slot=1.0, assurance_lead=0.25,
                        extra=(ExtraMessage(kind=200, size=1000, fanout="grid", offset=0.5),))
    net = FakeNetwork(lat=L, latencies={(0, 1): 0.75})
    schedule = SlotSchedule(9, seed=5, config=cfg)
    for run_end, expected in ((math.inf, 4 + 1.25), (4 + 1.0, math.nan)):
        batch = SlotOverlay(schedule, net, run_end=run_end).messages(4, 0)
        pairs = list(zip(batch.sender.tolist(), batch.receiver.tolist(), strict=True))
        got = batch.delivered_at[pairs.index((0, 1))]
        assert got == expected or (math.isnan(expected) and math.isnan(got))
        assert batch.delivered_at[pairs.index((1, 0))] == 4.5 + L
