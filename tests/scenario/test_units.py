"""Human units: durations, fractions, bandwidths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.scenario.units import parse_bandwidth, parse_duration, parse_fraction


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("2s", 2.0), ("2m", 120.0), ("1m30s", 90.0), ("1h", 3600.0),
    ("8m30s", 510.0), (5, 5.0), (0.5, 0.5), ("1.5s", 1.5), ("100us", 1e-4),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5", "5 parsecs", "s", "-1s", -1, True, [1], "1s2"])
def test_bad_durations_say_what_is_allowed(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 999))
def test_duration_composition(minutes: int, seconds: int, millis: int) -> None:
    text = f"{minutes}m{seconds}s{millis}ms"
    assert parse_duration(text) == pytest.approx(minutes * 60 + seconds + millis / 1000)


@given(st.floats(0, 100, allow_nan=False))
def test_percentages_round_trip(percent: float) -> None:
    assert parse_fraction(f"{percent}%") == pytest.approx(percent / 100)


@pytest.mark.parametrize("bad", ["150%", 1.5, -0.1, "x%", "abc", None])
def test_bad_fractions(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_fraction(bad)


@pytest.mark.parametrize(("text", "bps"), [
    ("100Mbit", 1e8), ("1Gbit", 1e9), ("500kbit", 5e5), ("10Mbit/s", 1e7), (2000, 2000.0),
])
def test_bandwidth(text: object, bps: float) -> None:
    assert parse_bandwidth(text) == bps


@pytest.mark.parametrize("bad", ["fast", "0Mbit", 0, -5, "10MB"])
def test_bad_bandwidth(bad: object) -> None:
    with pytest.raises(ValueError, match=r"rate|positive"):
        parse_bandwidth(bad)
