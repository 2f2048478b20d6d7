"""relaxed_gc raises thresholds only inside its body and restores them after."""

from __future__ import annotations

import gc

import pytest

from jamsim.sim.gc_tuning import relaxed_gc


def test_thresholds_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with relaxed_gc((50_000, 20, 30)):
        inside = gc.get_threshold()
    assert inside == tuple(max(a, b) for a, b in zip(before, (50_000, 20, 30), strict=True))
    assert gc.get_threshold() == before


def test_restored_when_the_body_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), relaxed_gc():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before


def test_never_lowers_a_callers_higher_threshold() -> None:
    before = gc.get_threshold()
    gc.set_threshold(1_000_000, before[1], before[2])
    try:
        with relaxed_gc((10, 1, 1)):
            assert gc.get_threshold()[0] == 1_000_000
    finally:
        gc.set_threshold(*before)
