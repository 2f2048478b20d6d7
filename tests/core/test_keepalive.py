"""The keep-alive rule every runtime shares (jamsim/core/keepalive.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jamsim.core.keepalive import (
    ACCEPTOR_SILENCE,
    first_ping,
    keepalive_interval,
    pings,
    tick_at_or_after,
    tick_at_or_before,
)

intervals = st.floats(min_value=0.05, max_value=60.0)
times = st.floats(min_value=0.0, max_value=10_000.0)
# Float slack when comparing an instant against the tick grid: the grid is placed
# with a relative epsilon of 1e-9 intervals (TICK_EPSILON), and sums of up to ~2e5
# intervals carry rounding errors far below a microsecond.
SLACK = 1e-6


def test_interval_is_the_policy_keep_alive_but_at_least_three_per_idle_timeout() -> None:
    assert keepalive_interval(15.0, 5.0) == 5.0
    assert keepalive_interval(15.0, None) == 5.0
    assert keepalive_interval(9.0, 20.0) == 3.0
    assert keepalive_interval(None, 20.0) == 20.0
    assert keepalive_interval(None, None) is None


def test_a_dialling_end_always_pings_an_accepting_one_after_one_and_a_half_intervals() -> None:
    assert pings(True, 10.0, 10.0, 5.0)
    assert not pings(False, 10.0, 5.0, 5.0)
    assert not pings(False, 12.4, 5.0, 5.0)
    assert pings(False, 12.5, 5.0, 5.0)
    assert ACCEPTOR_SILENCE == 1.5


@given(dialled=st.booleans(), now=times, heard=times, interval=intervals)
def test_pings_is_the_rule(dialled: bool, now: float, heard: float, interval: float) -> None:
    assert pings(dialled, now, heard, interval) == \
        (dialled or now - heard >= ACCEPTOR_SILENCE * interval)


@given(phase=times, interval=intervals, now=times)
def test_ticks_around_an_instant_are_adjacent_grid_points(
        phase: float, interval: float, now: float) -> None:
    after = tick_at_or_after(phase, interval, now)
    assert after >= phase
    assert after >= now - SLACK
    assert after < max(now, phase) + interval + SLACK
    before = tick_at_or_before(phase, interval, now)
    if now < phase - SLACK:
        assert before is None
    elif before is not None:
        assert phase <= before <= now + SLACK
        assert now - before < interval + SLACK


@given(dialled=st.booleans(), phase=times, interval=intervals, heard=times,
       gap=st.floats(min_value=0.0, max_value=200.0))
def test_first_ping_is_the_first_tick_at_which_the_rule_pings(
        dialled: bool, phase: float, interval: float, heard: float, gap: float) -> None:
    """Against a tick-by-tick walk: the ticks from the first one at or after
    ``after`` on, and the first of them at which ``pings`` holds."""
    after = heard + gap  # a silence starts at or after the peer was last heard
    got = first_ping(dialled, after, heard, phase, interval)
    k = round((got - phase) / interval)
    assert abs(got - (phase + k * interval)) < SLACK  # on the node's tick grid
    assert pings(dialled, got, heard, interval)
    assert got >= after - SLACK
    # No earlier tick at or after ``after`` pings.
    tick = tick_at_or_after(phase, interval, after)
    while tick < got - SLACK:
        assert not pings(dialled, tick, heard, interval)
        tick += interval
    assert abs(tick - got) < SLACK
    # The bounds the docs quote: a dialler PINGs within one interval, an acceptor
    # within one interval of 1.5 intervals' silence.
    if dialled:
        assert got < max(after, phase) + interval + SLACK
    else:
        assert got >= heard + ACCEPTOR_SILENCE * interval
        assert got < max(after, phase, heard + ACCEPTOR_SILENCE * interval) + interval + SLACK
