"""DialControl, the adaptive dial limit, on its own: bounds, signals, determinism.

Pure: the controller is fed signals by hand and by hypothesis; no manager.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.dial_control import DialControl
from jamsim.core.errors import UsageError

WINDOW = 5.0

# One signal: ("stalled", started_before_now, in_flight, recent), ("done", duration,
# waiting) or ("drops", 0, in_flight, recent): the host's socket dropped datagrams.
stalled = st.tuples(st.just("stalled"), st.floats(0, 20), st.integers(0, 200),
                    st.integers(0, 200))
completed = st.tuples(st.just("done"), st.floats(0, 2 * WINDOW), st.booleans())
drops = st.tuples(st.just("drops"), st.just(0.0), st.integers(0, 200), st.integers(0, 200))
signals = st.lists(st.one_of(stalled, completed, drops), max_size=200)


def replay(control: DialControl, sequence: list[tuple[object, ...]]) -> list[tuple[bool, int]]:
    """Feed ``sequence`` one signal per second; the (engaged, limit) after each."""
    states = []
    for now, signal in enumerate(sequence):
        if signal[0] == "stalled":
            _, age, in_flight, recent = signal
            assert isinstance(age, float) and isinstance(in_flight, int)
            assert isinstance(recent, int)
            control.on_overload(now - age, float(now), in_flight, recent)
        elif signal[0] == "drops":
            _, _, in_flight, recent = signal
            assert isinstance(in_flight, int) and isinstance(recent, int)
            control.on_host_overload(float(now), in_flight, recent)
        else:
            _, duration, waiting = signal
            assert isinstance(duration, float) and isinstance(waiting, bool)
            control.on_completed(duration, waiting)
        states.append((control.engaged, control.limit))
    return states


@settings(max_examples=200, deadline=None)
@given(bounds=st.tuples(st.integers(1, 8), st.integers(0, 40)), sequence=signals)
def test_the_limit_stays_within_its_bounds_and_is_deterministic(
    bounds: tuple[int, int], sequence: list[tuple[object, ...]],
) -> None:
    minimum, extra = bounds
    control = DialControl(minimum, minimum + extra, WINDOW)
    states = replay(control, sequence)
    for engaged, limit in states:
        if engaged:
            assert minimum <= limit <= minimum + extra
    assert replay(DialControl(minimum, minimum + extra, WINDOW), sequence) == states


@settings(max_examples=200, deadline=None)
@given(sequence=st.lists(completed, max_size=100))
def test_successes_alone_never_engage_a_limit(sequence: list[tuple[object, ...]]) -> None:
    control = DialControl(1, 16, WINDOW)
    assert all(not engaged for engaged, _ in replay(control, sequence))
    assert control.allows(10_000)


@pytest.mark.parametrize(("in_flight", "recent", "expected"), [
    (31, 3, 3),     # the host finished 3 handshakes in the last timeout: that many
    (31, 100, 16),  # fast host: half of the 32 that were in flight
    (31, 0, 2),     # nothing finished: the floor
    (200, 90, 40),  # never above the maximum
])
def test_the_first_stall_engages_at_what_the_host_achieved(
    in_flight: int, recent: int, expected: int,
) -> None:
    control = DialControl(2, 40, WINDOW)
    assert control.on_overload(0.0, WINDOW, in_flight, recent)
    assert control.engaged and control.limit == expected
    assert control.allows(expected - 1) and not control.allows(expected)


def test_stalls_of_dials_sent_under_the_old_limit_decrease_once() -> None:
    control = DialControl(1, 32, WINDOW)
    control.on_overload(0.0, 5.0, 31, 100)  # engaged at 16, decreased at t=5
    assert control.limit == 16
    # The rest of that wave started before t=5: no further halving.
    assert not control.on_overload(0.1, 5.1, 30, 0)
    assert not control.on_overload(4.9, 9.9, 30, 0)
    assert control.limit == 16
    # A dial started after the decrease that stalls too: halve again.
    assert control.on_overload(5.2, 10.2, 15, 0)
    assert control.limit == 8


def test_fast_successes_grow_the_limit_by_one_per_window_and_slow_ones_hold() -> None:
    control = DialControl(1, 32, WINDOW)
    control.on_overload(0.0, 5.0, 7, 4)
    assert control.limit == 4
    for _ in range(3):
        assert not control.on_completed(0.1, True)
    assert control.on_completed(0.1, True)
    assert control.limit == 5
    for _ in range(20):  # more than half the connect timeout: handshakes queue
        assert not control.on_completed(WINDOW / 2 + 0.01, True)
    assert control.limit == 5


def test_at_its_maximum_the_limit_opens_once_no_dial_waits() -> None:
    control = DialControl(1, 2, WINDOW)
    control.on_overload(0.0, 5.0, 1, 1)
    assert control.limit == 1
    control.on_completed(0.1, True)
    assert control.limit == 2
    assert not control.on_completed(0.1, True)  # dials wait: stay limited
    assert control.engaged
    assert control.on_completed(0.1, False)
    assert not control.engaged and control.allows(1_000)


@pytest.mark.parametrize(("in_flight", "recent", "expected"), [
    (32, 3, 3),     # what the host finished in the last timeout
    (32, 100, 16),  # half the dials in flight
    (1, 100, 2),    # never below the floor
])
def test_host_drops_engage_like_a_stall(in_flight: int, recent: int, expected: int) -> None:
    control = DialControl(2, 40, WINDOW)
    assert control.on_host_overload(1.0, in_flight, recent)
    assert control.engaged and control.limit == expected


def test_host_drops_while_no_dial_is_in_flight_change_nothing() -> None:
    control = DialControl(1, 32, WINDOW)
    assert not control.on_host_overload(1.0, 0, 10)
    assert not control.engaged and control.allows(1_000)


def test_host_drops_halve_an_engaged_limit_once_per_window() -> None:
    control = DialControl(1, 32, WINDOW)
    control.on_host_overload(0.0, 32, 100)
    assert control.limit == 16
    assert not control.on_host_overload(WINDOW - 0.1, 16, 0)  # the backlog of before
    assert control.on_host_overload(WINDOW, 16, 0)
    assert control.limit == 8


@settings(max_examples=200, deadline=None)
@given(reports=st.lists(st.tuples(st.floats(0, 2 * WINDOW), st.integers(0, 64)),
                        max_size=100))
def test_host_drops_decrease_at_most_once_per_window_and_never_open(
    reports: list[tuple[float, int]],
) -> None:
    control = DialControl(1, 32, WINDOW)
    now, decreases = 0.0, []
    for gap, in_flight in reports:
        now += gap
        engaged_before, before = control.engaged, control.limit
        if control.on_host_overload(now, in_flight, 64):
            decreases.append(now)
            assert in_flight > 0
            assert control.limit == max(1, before // 2 if engaged_before else in_flight // 2)
        assert control.engaged or not decreases  # drops never open a limit
    assert all(b - a >= WINDOW for a, b in itertools.pairwise(decreases))


@pytest.mark.parametrize(("minimum", "maximum", "window"), [(0, 4, 5.0), (5, 4, 5.0),
                                                            (1, 4, 0.0)])
def test_invalid_bounds_are_refused(minimum: int, maximum: int, window: float) -> None:
    with pytest.raises(UsageError):
        DialControl(minimum, maximum, window)
