"""The slot schedule: deterministic, the JAMNP-S grid, the spec's sizes and timing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.errors import UsageError
from jamsim.identity import ValidatorSet
from jamsim.traffic.config import ExtraMessage, TrafficConfig, assurance_size, slot_of_payload
from jamsim.traffic.schedule import MessageKind, SlotSchedule, grid_neighbours

counts = st.integers(min_value=1, max_value=1100)
seeds = st.integers(min_value=0, max_value=2**32)
slots = st.integers(min_value=0, max_value=10**6)


@given(counts, seeds, slots)
def test_author_is_deterministic_and_in_range(v: int, seed: int, slot: int) -> None:
    a = SlotSchedule(v, seed).author(slot)
    assert 0 <= a < v
    assert SlotSchedule(v, seed).author(slot) == a


def test_authors_spread_over_the_set() -> None:
    schedule = SlotSchedule(10, seed=3)
    authors = [schedule.author(s) for s in range(2000)]
    counts_by = [authors.count(i) for i in range(10)]
    assert min(counts_by) > 150  # uniform: 200 each, far from a constant
    assert [SlotSchedule(10, seed=4).author(s) for s in range(50)] != authors[:50]


@given(st.integers(min_value=1, max_value=1100), st.data())
@settings(max_examples=60)
def test_grid_neighbours_share_row_or_column(v: int, data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=v - 1))
    w = max(1, math.isqrt(v))
    nb = grid_neighbours(i, v)
    assert i not in nb
    assert nb == sorted(set(nb))
    assert set(nb) == {j for j in range(v) if j != i and (j // w == i // w or j % w == i % w)}
    for j in nb:  # symmetric
        assert i in grid_neighbours(j, v)


@pytest.mark.parametrize("v", [1, 2, 9, 10, 78])
def test_grid_matches_the_identity_grid(v: int) -> None:
    validators = ValidatorSet.dev(v, seed=1)
    schedule = SlotSchedule(v, seed=1)
    for i in range(v):
        assert schedule.grid_neighbours(i) == validators.grid_neighbours(i)


def test_full_set_grid_has_about_64_neighbours() -> None:
    assert {len(grid_neighbours(i, 1023)) for i in range(1023)} <= {61, 62, 63}


def test_assurance_size_follows_the_spec_layout() -> None:
    # 341 cores: anchor 32 + bitfield 43 + signature 64 (JAMNP-S CE 141)
    assert assurance_size(341) == 139
    assert SlotSchedule(1023, 0).assurance_size == 139
    assert SlotSchedule(9, 0).assurance_size == 32 + 1 + 64
    assert SlotSchedule(9, 0, TrafficConfig(assurance_size=500)).assurance_size == 500
    assert SlotSchedule(9, 0, TrafficConfig(core_count=16)).assurance_size == 32 + 2 + 64


@given(st.floats(min_value=0.1, max_value=60), st.integers(min_value=0, max_value=10**5))
def test_clock(slot_len: float, slot: int) -> None:
    lead = slot_len / 3
    s = SlotSchedule(5, 0, TrafficConfig(slot=slot_len, assurance_lead=lead))
    assert s.slot_start(slot) == slot * slot_len
    assert s.assurance_time(slot) == pytest.approx(s.slot_start(slot) - lead)
    assert s.slot_end(slot) == (slot + 1) * slot_len
    assert s.slot_at(s.slot_start(slot) + slot_len / 2) == slot


def test_default_slot_timing() -> None:
    s = SlotSchedule(4, 0)
    assert s.slot_start(3) == 18.0
    assert s.assurance_time(3) == 16.0
    # slot 0 is genesis (nothing authored); a slot counts once it has ended
    assert list(s.slots(20.0)) == [1, 2]
    assert list(s.slots(18.0)) == [1, 2]
    assert list(s.slots(17.9)) == [1]
    assert list(s.slots(6.0)) == []
    assert not s.has_assurances(0)
    assert s.has_assurances(1)


@given(st.integers(min_value=2, max_value=40), seeds, st.integers(min_value=0, max_value=50))
@settings(max_examples=40)
def test_messages_of_a_slot(v: int, seed: int, slot: int) -> None:
    s = SlotSchedule(v, seed, TrafficConfig(extra=(ExtraMessage(kind=200, size=10, fanout=2),)))
    author = s.author(slot)
    for node in range(v):
        msgs = s.messages(slot, node)
        assert [m.at for m in msgs] == sorted(m.at for m in msgs)
        assurances = [m for m in msgs if m.kind is MessageKind.ASSURANCE]
        if s.has_assurances(slot):
            assert sorted(m.dst for m in assurances) == [j for j in range(v) if j != node]
            assert {m.at for m in assurances} == {s.assurance_time(slot)}
            assert {m.stream_kind for m in assurances} == {141}
        else:
            assert assurances == []
        announcements = [m for m in msgs if m.kind is MessageKind.ANNOUNCEMENT]
        if node == author:
            assert [m.dst for m in announcements] == s.grid_neighbours(node)
            assert {m.at for m in announcements} == {s.slot_start(slot)}
            assert {m.size for m in announcements} == {s.announcement_size}
        else:
            assert announcements == []
        extras = [m for m in msgs if m.kind is MessageKind.EXTRA]
        assert len(extras) == min(2, v - 1)
        assert node not in {m.dst for m in extras}
        assert {m.stream_kind for m in extras} == {200}
        assert extras == [m for m in s.messages(slot, node) if m.kind is MessageKind.EXTRA]


def test_extra_fanout_grid_and_all() -> None:
    cfg = TrafficConfig(extra=(ExtraMessage(fanout="grid"),
                               ExtraMessage(kind=254, fanout="all")))
    s = SlotSchedule(9, 1, cfg)
    assert s.extra_targets(2, 4, 0) == s.grid_neighbours(4)
    assert s.extra_targets(2, 4, 1) == [0, 1, 2, 3, 5, 6, 7, 8]


def test_first_slot_silences_earlier_slots() -> None:
    s = SlotSchedule(4, 0, TrafficConfig(first_slot=5))
    assert s.messages(4, s.author(4)) == []
    assert list(s.slots(36.0)) == [5]
    assert list(s.slots(35.9)) == []
    assert s.messages(5, 0)


@pytest.mark.parametrize("kwargs", [
    {"slot": 0}, {"assurance_lead": 6.0}, {"block_size": -1}, {"core_count": 0},
    {"extra": (ExtraMessage(offset=7.0),)},
    {"extra": (ExtraMessage(kind=200), ExtraMessage(kind=200, size=5))},
])
def test_bad_config_is_a_usage_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        TrafficConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_extra_and_index() -> None:
    with pytest.raises(UsageError):
        ExtraMessage(kind=5)
    for taken in (128, 141):
        with pytest.raises(UsageError, match="slot traffic's own"):
            ExtraMessage(kind=taken)
    with pytest.raises(UsageError):
        SlotSchedule(4, 0).messages(0, 4)
    with pytest.raises(UsageError):
        SlotSchedule(0, 0)


@pytest.mark.parametrize(("size", "slot", "payload", "back"), [
    (10, 7, b"\x07\0\0\0" + bytes(6), 7), (4, 0x01020304, b"\x04\x03\x02\x01", 0x01020304),
    (2, 7, b"\x07\0", None), (0, 7, b"", None)])
def test_extra_payload_names_its_slot(size: int, slot: int, payload: bytes,
                                      back: int | None) -> None:
    got = ExtraMessage(kind=200, size=size).payload(slot)
    assert got == payload and slot_of_payload(got) == back
