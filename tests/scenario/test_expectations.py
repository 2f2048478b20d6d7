"""Expectations judged on usable and stale links, not on what managers believe."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jamsim.analysis.metrics import longest_stale
from jamsim.analysis.run import Run, run_from_tables
from jamsim.scenario.expectations import Outcome, evaluate
from jamsim.scenario.loader import parse_scenario
from jamsim.scenario.runner import run_scenario
from jamsim.telemetry.records import EVENT_COLUMNS, ConnectivitySample

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _row(t: float, usable: int, stale: int, longest: float) -> ConnectivitySample:
    return ConnectivitySample(t, usable, usable + stale, stale, 6, 4, longest_stale=longest)


SAMPLES = [_row(0.0, 6, 0, 0.0), _row(10.0, 2, 4, 0.0), _row(11.0, 2, 4, 1.0),
           _row(20.0, 2, 4, 10.0), _row(21.0, 6, 0, 0.0), _row(30.0, 5, 1, 3.0)]


def _run(samples: list[ConnectivitySample]) -> Run:
    """A run with these samples and no events."""
    return run_from_tables(pd.DataFrame(columns=list(EVENT_COLUMNS)),
                           pd.DataFrame([row.as_dict() for row in samples]),
                           validators=4, end_time=40.0)


def _verdicts(expect: str) -> list[tuple[bool, float | None, float | None]]:
    scenario = parse_scenario(
        "name: x\nduration: 40s\nvalidators: {count: 4}\n"
        "timeline:\n  - {at: 10s, partition: [[v0, v1], [v2, v3]]}\n  - {at: 21s, heal: all}\n"
        f"expect:\n{expect}")
    return [(v.passed, v.measured, v.bound) for v in evaluate(scenario, _run(SAMPLES))]


def test_full_mesh_needs_every_pair_usable() -> None:
    stale_mesh = [ConnectivitySample(5.0, 2, 6, 4, 6, 4)]  # believed everywhere, 4 cut
    assert not stale_mesh[0].full_mesh
    # t=10 to 20: 2 usable of 6 (4 believed but stale); usable again at t=21
    assert _verdicts("  - full_mesh: {within: 5s, after: partition}\n"
                     "  - full_mesh: {within: 11s, after: partition}\n") == \
        [(False, 11.0, 5.0), (True, 11.0, 11.0)]


def test_full_mesh_after_the_last_sample_is_not_measured() -> None:
    scenario = parse_scenario(
        "name: x\nduration: 40s\nvalidators: {count: 4}\n"
        "expect:\n  - full_mesh: {within: 5s, after: 35s}\n")
    (verdict,) = evaluate(scenario, _run(SAMPLES))  # the last sample is at t=30
    assert verdict.outcome is Outcome.NOT_MEASURED and not verdict.failed
    assert "no connectivity sample at or after t=35s" in verdict.detail


def test_max_stale_links_measures_the_worst_sample() -> None:
    assert _verdicts("  - max_stale_links: 4\n  - max_stale_links: 3\n") == \
        [(True, 4.0, 4.0), (False, 4.0, 3.0)]


def test_stale_for_counts_the_longest_episode_from_after() -> None:
    run = _run(SAMPLES)
    assert longest_stale(run, 0.0) == 10.0
    assert longest_stale(run, 15.0) == 5.0  # counted from t=15 only
    assert longest_stale(run, 25.0) == 3.0
    assert _verdicts("  - stale_for: {below: 10s}\n  - stale_for: {below: 4s, after: heal}\n"
                     "  - stale_for: {below: 30s, after: partition}\n") == \
        [(False, 10.0, 10.0), (True, 3.0, 4.0), (True, 10.0, 30.0)]


def test_quickstart_under_jamixir_reports_no_mesh_during_its_partition(tmp_path: Path) -> None:
    """jamixir has no idle timeout: without slot traffic its connections outlive the
    cut, believed but stale."""
    result = run_scenario(SCENARIOS / "quickstart.yaml", out_dir=tmp_path / "run", plots=False,
                          overrides={"policy.preset": "jamixir", "traffic": "none",
                                     "expect": [{"max_stale_links": 0},
                                                {"stale_for": {"below": "30s"}},
                                                {"full_mesh": {"within": "15s",
                                                               "after": "partition"}}]})
    metrics = result.summary["metrics"]
    assert metrics["max_links_stale"] == 9  # every pair across the 3 | 3 cut
    assert 19.0 <= metrics["longest_stale_s"] <= 20.0  # the whole 20 s cut, at 1 s samples
    assert metrics["final_links_usable"] == 15 and metrics["final_links_stale"] == 0
    stale, stale_for, mesh = result.summary["expectations"]
    assert not stale["passed"] and stale["measured"] == 9
    assert stale_for["passed"] and stale_for["measured"] == metrics["longest_stale_s"]
    assert not mesh["passed"]  # no sample between partition (15 s) and heal (35 s)
    assert result.summary["metrics"]["time_to_full_mesh_after_s"]["heal @ 35s"] == 0.0
