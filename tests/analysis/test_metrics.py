"""Sessions, links and every metric against values worked out by hand (conftest)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from jamsim.analysis import metrics
from jamsim.analysis.run import Run, run_from_tables
from jamsim.core.errors import UsageError

from .conftest import SUMMARY, ev, events_frame


def test_sessions_per_node_view(run: Run) -> None:
    s = run.sessions
    assert len(s) == 8  # 8 connected_out/connected_in rows
    first = s[(s["node"] == 0) & (s["conn_id"] == 10)].iloc[0]
    assert (first["a"], first["b"], first["direction"]) == (0, 1, "out")
    assert (first["up_at"], first["down_at"], first["duration"]) == (1.0, 12.0, 11.0)
    still = s[(s["node"] == 1) & (s["conn_id"] == 23)].iloc[0]
    assert bool(still["open"]) and math.isnan(still["down_at"]) and still["duration"] == 17.0


def test_links_need_both_ends(run: Run) -> None:
    got = [(r.a, r.b, r.up_at, r.down_at) for r in run.links.itertuples()]
    assert got[:3] == [(0, 1, 1.5, 12.0), (2, 3, 2.0, pytest.approx(math.nan, nan_ok=True)),
                       (0, 2, 6.0, pytest.approx(math.nan, nan_ok=True))]
    assert (got[3][0], got[3][1], got[3][2]) == (0, 1, 23.0)
    assert len(got) == 4


def test_time_to_full_mesh_from_samples(run: Run) -> None:
    assert metrics.time_to_full_mesh(run) == 8.0
    assert metrics.time_to_full_mesh(run, after="heal") == 4.0
    assert metrics.time_to_full_mesh(run, after=9.0) == 15.0
    assert math.isnan(metrics.time_to_full_mesh(run, after=30.0))
    with pytest.raises(UsageError):
        metrics.time_to_full_mesh(run, after="restart")


def test_time_to_full_mesh_from_links_without_samples() -> None:
    pair_only = events_frame()
    pair_only = pair_only[(pair_only["node"] < 2) & (pair_only["peer"] < 2)]
    two = run_from_tables(pair_only, None, {**SUMMARY, "validators": 2})
    assert metrics.time_to_full_mesh(two) == 1.5
    assert metrics.time_to_full_mesh(two, after="heal") == 3.0


def test_reconnect_latency_grouped_by_cause(run: Run) -> None:
    lat = metrics.reconnect_latency(run)
    assert lat.to_dict("records") == [{"a": 0, "b": 1, "down_at": 12.0, "up_at": 23.0,
                                       "latency": 11.0, "after": "partition 0,2,3 | 1"}]


def test_per_pair_downtime(run: Run) -> None:
    d = metrics.per_pair_downtime(run).set_index(["a", "b"])
    assert d.loc[(0, 1), "downtime"] == pytest.approx(11.0)
    assert d.loc[(0, 1), "downs"] == 1
    assert d.loc[(0, 2), "downtime"] == 0.0
    assert len(d) == 3


def test_retries_per_pair(run: Run) -> None:
    r = metrics.retries_per_pair(run).set_index(["a", "b"])
    assert (r.loc[(0, 2), "attempts"], r.loc[(0, 2), "failures"]) == (2, 1)
    assert r.loc[(0, 2), "failure_ratio"] == 0.5
    assert (r.loc[(0, 1), "attempts"], r.loc[(0, 1), "failures"]) == (1, 0)


def test_duplicates() -> None:
    base = run_from_tables(events_frame(), None, SUMMARY)
    assert metrics.duplicate_connections_seen(base) == 0
    dup = run_from_tables(events_frame([ev(30.0, 2, 3, "connected_out", 14, 1, "out")]),
                          None, SUMMARY)
    assert metrics.duplicate_connections_seen(dup) == 1
    # a second connection does not change the pair-level link
    assert len(dup.links) == len(base.links)


def test_components_over_time(run: Run) -> None:
    cc = metrics.connected_components(run, times=[0.0, 7.0, 15.0, 25.0])
    assert cc["components"].tolist() == [4, 1, 2, 1]
    assert cc["largest"].tolist() == [1, 4, 3, 4]


def test_grid_neighbours_and_coverage(run: Run) -> None:
    assert metrics.grid_neighbours(4) == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert len(metrics.grid_neighbours(16)) == 16 * 6 // 2  # 3 row + 3 column mates each
    cov = metrics.grid_neighbour_coverage(run, times=[7.0, 15.0, 25.0])
    assert cov["coverage"].tolist() == [0.75, 0.5, 0.75]


def test_default_sample_times_follow_connectivity(run: Run) -> None:
    assert metrics.sample_times(run) == [0.0, 8.0, 15.0, 24.0]
    assert isinstance(metrics.connected_components(run), pd.DataFrame)
