"""The vectorised analysis must give exactly what the original per-row code gave.

The original implementations (per-group pandas, a networkx graph per sample,
Python loops over the event table) are kept below, verbatim apart from names, as
the reference. Every rewritten function is compared with ``assert_frame_equal``
(values, dtypes, index, row order) on real simulated runs -- the quickstart and
mini scenarios, one with churn, crashes and a three-way partition, one with no
faults at all -- and on hand-built and randomly generated event tables that
hit the odd cases (unknown connection ids, re-used ids, duplicate sessions,
disconnects for connections that never came up, no events at all).

The reference link derivation is the replay's own algorithm, so the link
derivation is also checked against answers worked out by hand and against a
brute-force recount of open sessions at every instant (the end of this file).
"""

from __future__ import annotations

import copy
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from jamsim.analysis import metrics, sessions
from jamsim.analysis.run import Run, load_run, run_from_tables
from jamsim.analysis.sessions import (
    LINK_COLUMNS,
    SESSION_COLUMNS,
    derive_links,
    derive_sessions,
    links_up_at,
    pair_of,
)
from jamsim.scenario.runner import run_scenario
from jamsim.telemetry.records import EventRecord

from .conftest import KIND, SUMMARY, ev, events_frame, samples

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------
# Reference: the implementations as they were before vectorisation.
# --------------------------------------------------------------------------

_UP = {"connected_out": "out", "connected_in": "in"}


_ENDS = ["node_crashed", "node_restarted"]


def _relevant_rows(events: pd.DataFrame) -> pd.DataFrame:
    return events[(events["event"].isin([*_UP, "disconnected"]) & (events["peer"] >= 0))
                  | events["event"].isin(_ENDS)]


def ref_derive_sessions(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    open_: dict[tuple[int, int], dict[str, object]] = {}
    rows: list[dict[str, object]] = []
    for e in _relevant_rows(events).itertuples(index=False):
        node, peer, cid = int(e.node), int(e.peer), int(e.conn_id)
        if e.event in _ENDS:  # the process is gone: every session it held ends
            for key in [k for k, s in open_.items() if s["node"] == node]:
                s = open_.pop(key)
                up = float(s["up_at"])  # type: ignore[arg-type]
                rows.append({**s, "down_at": float(e.time), "duration": float(e.time) - up,
                             "reason": "node crashed", "open": False})
            continue
        if e.event in _UP:
            a, b = pair_of(node, peer)
            open_[(node, cid if cid >= 0 else -1 - peer)] = {
                "a": a, "b": b, "node": node, "peer": peer, "direction": _UP[e.event],
                "conn_id": cid, "up_at": float(e.time)}
            continue
        key = (node, cid) if cid >= 0 and (node, cid) in open_ else None
        if key is None:
            cands = [k for k, s in open_.items() if s["node"] == node and s["peer"] == peer]
            key = cands[0] if cands else None
        if key is None:
            continue
        s = open_.pop(key)
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": float(e.time), "duration": float(e.time) - up,
                     "reason": str(e.reason), "open": False})
    for s in open_.values():
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": math.nan, "duration": end_time - up,
                     "reason": "", "open": True})
    df = pd.DataFrame(rows, columns=SESSION_COLUMNS)
    return df.sort_values(["up_at", "node", "peer"], kind="stable").reset_index(drop=True)


def ref_derive_links(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    counts: dict[tuple[int, int], int] = defaultdict(int)
    conn_peer: dict[tuple[int, int], int] = {}
    up_since: dict[tuple[int, int], float] = {}
    rows: list[dict[str, object]] = []

    def close_if_down(pair: tuple[int, int], t: float) -> None:
        a, b = pair
        if pair in up_since and not (counts[(a, b)] > 0 and counts[(b, a)] > 0):
            start = up_since.pop(pair)
            rows.append({"a": a, "b": b, "up_at": start, "down_at": t,
                         "duration": t - start, "open": False})

    for e in _relevant_rows(events).itertuples(index=False):
        node, peer, cid, t = int(e.node), int(e.peer), int(e.conn_id), float(e.time)
        if e.event in _ENDS:  # the process is gone: every session it held ends
            for key in [k for k in conn_peer if k[0] == node]:
                del conn_peer[key]
            for (n, p) in [k for k, c in counts.items() if k[0] == node and c > 0]:
                counts[(n, p)] = 0
                close_if_down(pair_of(n, p), t)
            continue
        pair = pair_of(node, peer)
        before = counts[(node, peer)] > 0 and counts[(peer, node)] > 0
        if e.event in _UP:
            counts[(node, peer)] += 1
            conn_peer[(node, cid)] = peer
        else:
            if cid >= 0 and (node, cid) not in conn_peer:
                continue
            conn_peer.pop((node, cid), None)
            counts[(node, peer)] = max(0, counts[(node, peer)] - 1)
        after = counts[(node, peer)] > 0 and counts[(peer, node)] > 0
        if after and not before:
            up_since[pair] = t
        elif before and not after:
            start = up_since.pop(pair)
            rows.append({"a": pair[0], "b": pair[1], "up_at": start, "down_at": t,
                         "duration": t - start, "open": False})
    for pair, start in up_since.items():
        rows.append({"a": pair[0], "b": pair[1], "up_at": start, "down_at": math.nan,
                     "duration": end_time - start, "open": True})
    df = pd.DataFrame(rows, columns=LINK_COLUMNS)
    return df.sort_values(["up_at", "a", "b"], kind="stable").reset_index(drop=True)


def ref_links_up_at(links: pd.DataFrame, t: float) -> list[tuple[int, int]]:
    mask = (links["up_at"] <= t) & (links["down_at"].isna() | (links["down_at"] > t))
    sub = links[mask]
    return sorted({(int(a), int(b)) for a, b in zip(sub["a"], sub["b"], strict=True)})


def ref_time_to_full_mesh(run: Run, after: float | str = 0.0) -> float:
    t0 = run.timeline_time(after) if isinstance(after, str) else float(after)
    c = run.connectivity
    if len(c):
        hit = c[(c["time"] >= t0) & (c["full_mesh"].astype(bool))]
        return float(hit["time"].iloc[0]) - t0 if len(hit) else math.nan
    expected = run.validators * (run.validators - 1) // 2
    times = sorted({t0, *run.links["up_at"][run.links["up_at"] >= t0].tolist()})
    for t in times:
        if len(ref_links_up_at(run.links, t)) >= expected:
            return float(t - t0)
    return math.nan


def ref_per_pair_downtime(run: Run) -> pd.DataFrame:
    rows = []
    for (a, b), g in run.links.groupby(["a", "b"]):
        first = float(g["up_at"].min())
        up_total = float(g["duration"].sum())
        rows.append({"a": a, "b": b, "first_up": first, "downs": int((~g["open"]).sum()),
                     "downtime": (run.end_time - first) - up_total})
    return pd.DataFrame(rows, columns=["a", "b", "first_up", "downs", "downtime"])


def _ref_cause(run: Run, t: float) -> str:
    before = run.timeline[run.timeline["at"] <= t]
    return str(before["label"].iloc[-1]) if len(before) else "(start)"


def ref_reconnect_latency(run: Run) -> pd.DataFrame:
    rows = []
    for (a, b), g in run.links.groupby(["a", "b"]):
        g = g.sort_values("up_at")
        downs = g["down_at"].tolist()
        ups = g["up_at"].tolist()
        for k, down in enumerate(downs):
            if isinstance(down, float) and math.isnan(down):
                continue
            back = ups[k + 1] if k + 1 < len(ups) else math.nan
            rows.append({"a": a, "b": b, "down_at": down, "up_at": back,
                         "latency": back - down, "after": _ref_cause(run, down)})
    return pd.DataFrame(rows, columns=["a", "b", "down_at", "up_at", "latency", "after"])


def ref_duplicate_connections_seen(run: Run) -> int:
    count = 0
    s = run.sessions.assign(end=run.sessions["down_at"].fillna(math.inf))
    for _, g in s.groupby(["node", "peer"]):
        g = g.sort_values("up_at")
        latest_end = -math.inf
        for up, end in zip(g["up_at"], g["end"], strict=True):
            if up < latest_end:
                count += 1
            latest_end = max(latest_end, end)
    sampled = int(run.connectivity["duplicates"].max()) if len(run.connectivity) else 0
    return max(count, sampled)


def ref_connected_components(run: Run, times: list[float] | None = None) -> pd.DataFrame:
    rows = []
    for t in metrics.sample_times(run, times):
        g = nx.Graph()
        g.add_nodes_from(range(run.validators))
        g.add_edges_from(ref_links_up_at(run.links, t))
        comps = list(nx.connected_components(g))
        rows.append({"time": t, "components": len(comps),
                     "largest": max((len(c) for c in comps), default=0)})
    return pd.DataFrame(rows, columns=["time", "components", "largest"])


def ref_grid_neighbours(v: int) -> list[tuple[int, int]]:
    w = max(1, math.isqrt(v))
    return [(i, j) for i in range(v) for j in range(i + 1, v)
            if i // w == j // w or i % w == j % w]


def ref_grid_neighbour_coverage(run: Run, times: list[float] | None = None) -> pd.DataFrame:
    grid = set(ref_grid_neighbours(run.validators))
    rows = []
    for t in metrics.sample_times(run, times):
        up = grid.intersection(ref_links_up_at(run.links, t))
        rows.append({"time": t, "covered": len(up), "grid_pairs": len(grid),
                     "coverage": len(up) / len(grid) if grid else math.nan})
    return pd.DataFrame(rows, columns=["time", "covered", "grid_pairs", "coverage"])


# --------------------------------------------------------------------------
# Runs to compare on.
# --------------------------------------------------------------------------

FAULTS_YAML = """\
name: faults
seed: 11
duration: 150s
sample_interval: 2s
validators:
  count: 24
network:
  latency: {default: 30ms}
  loss: 2%
policy:
  preset: jamnp-s
timeline:
  - at: 20s
    partition: [["0..7"], ["8..15"], ["16..23"]]
  - at: 50s
    heal: all
  - at: 60s
    kill: ["3", "17"]
  - at: 70s
    churn: {fraction: 20%, downtime: 5s..15s, until: 110s}
  - at: 95s
    restart: ["3"]
"""

CALM_YAML = """\
name: calm
seed: 5
duration: 20s
validators:
  count: 5
network:
  latency: {default: 20ms}
  loss: 0%
policy:
  preset: jamixir
"""


def _simulate(tmp: Path, name: str, source: str | Path) -> Run:
    run_scenario(source, out_dir=tmp / name, plots=False)
    return load_run(tmp / name)


@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Real simulated runs (about 5 s of simulation in all), built once."""
    tmp = tmp_path_factory.mktemp("vectorised")
    (tmp / "faults.yaml").write_text(FAULTS_YAML)
    (tmp / "calm.yaml").write_text(CALM_YAML)
    return {"quickstart": _simulate(tmp, "quickstart", "quickstart"),
            "mini": _simulate(tmp, "mini", ROOT / "scenarios" / "mini.yaml"),
            "faults": _simulate(tmp, "faults", tmp / "faults.yaml"),
            "calm": _simulate(tmp, "calm", tmp / "calm.yaml")}


def _random_events(seed: int, n: int = 400, nodes: int = 6) -> pd.DataFrame:
    """A messy event table: ids re-used, unknown (-1), disconnects that match
    nothing, duplicate sessions, equal timestamps, irrelevant events mixed in."""
    rnd = random.Random(seed)
    names = [n for n in KIND if not n.startswith("node_")]
    rows = []
    t = 0.0
    for _ in range(n):
        t += rnd.choice([0.0, 0.0, 0.5, 1.0, 2.5])
        node = rnd.randrange(nodes)
        peer = rnd.choice([p for p in range(nodes) if p != node] + [-1])
        event = rnd.choice(names + ["connected_out", "connected_in", "disconnected"] * 3)
        conn = rnd.choice([-1, rnd.randrange(8)])
        if rnd.random() < 0.03:  # the harness crashed or restarted the node
            event, peer, conn = rnd.choice(["node_crashed", "node_restarted"]), -1, -1
        rows.append(ev(t, node, peer, event, conn).as_dict())
    return pd.DataFrame(rows)


def _regular_events(seed: int, conns: int = 160, nodes: int = 7,
                    stray: bool = False) -> pd.DataFrame:
    """Events the vectorised path takes: every connection has an id; ids restart
    (a crashed node re-uses them without a disconnect), sessions overlap
    (duplicates), times tie and intervals can be zero long. ``stray`` adds
    disconnects that close nothing (which only the link derivation can take)."""
    rnd = random.Random(seed)
    rows: list[tuple[float, int, EventRecord]] = []
    for k in range(conns):
        node = rnd.randrange(nodes)
        peer = rnd.choice([p for p in range(nodes) if p != node])
        cid = 3 * peer + rnd.randrange(3)  # ids collide (as after a restart), peers agree
        up = rnd.randrange(60) * 0.5
        kind = rnd.choice(["connected_out", "connected_in"])
        rows.append((up, 2 * k, ev(up, node, peer, kind, cid)))
        if rnd.random() < 0.6:
            down = up + rnd.choice([0.0, 0.5, 1.0, 3.0, 10.0])
            rows.append((down, 2 * k + 1, replace(ev(down, node, peer, "disconnected", cid),
                                                  reason=rnd.choice(["idle", "dup", ""]))))
    rows.sort(key=lambda x: (x[0], x[1]))
    last_up: dict[tuple[int, int], bool] = {}
    kept = []
    for row in rows:  # a session replaced by a re-used id is never disconnected
        key, up = (row[2].node, row[2].conn_id), row[2].event != "disconnected"
        if up or last_up.get(key, False):
            kept.append(row)
            last_up[key] = up
    rows = kept
    if stray:
        for i in range(5):
            node = rnd.randrange(nodes)
            rows.append((rnd.randrange(80) * 0.5, 10**6 + i,
                         ev(0.0, node, (node + 1) % nodes, "disconnected", 99)))
    rows.sort(key=lambda x: (x[0], x[1]))
    table = pd.DataFrame([r.as_dict() for _, _, r in rows])
    table["time"] = [t for t, _, _ in rows]
    return table


def _hand_runs() -> Iterator[tuple[str, Run]]:
    yield "hand", run_from_tables(events_frame(), samples(), SUMMARY)
    yield "hand-no-samples", run_from_tables(events_frame(), None, SUMMARY)
    dup = events_frame([ev(30.0, 2, 3, "connected_out", 14, 1, "out"),
                        ev(31.0, 2, 3, "connected_out", 14, 1, "out"),
                        ev(32.0, 2, 3, "disconnected", 14),
                        ev(33.0, 0, 2, "disconnected", -1),
                        ev(34.0, 1, 3, "disconnected", 99)])
    yield "duplicates", run_from_tables(dup, None, SUMMARY)
    empty = events_frame()[:0]
    yield "empty", run_from_tables(empty, None, {"validators": 3, "simulated_s": 5.0})
    unsorted = {**SUMMARY, "timeline": [*SUMMARY["timeline"][::-1],  # type: ignore[index]
                                         {"at": 10.0, "action": "x", "label": "again"}]}
    yield "unsorted-timeline", run_from_tables(events_frame(), samples(), unsorted)
    # summary says fewer validators than the events name: networkx added them
    yield "undercounted", run_from_tables(events_frame(), samples(), {**SUMMARY,
                                                                     "validators": 2})
    for seed in range(6):
        yield f"regular{seed}", run_from_tables(_regular_events(seed, stray=seed % 2 == 1),
                                                None, {"validators": 7, "simulated_s": 90.0,
                                                       "timeline": SUMMARY["timeline"]})
        yield f"random{seed}", run_from_tables(_random_events(seed), None,
                                               {"validators": 6, "simulated_s": 500.0,
                                                "timeline": SUMMARY["timeline"]})


def _all_runs(sim_runs: dict[str, Run]) -> Iterator[tuple[str, Run]]:
    yield from sim_runs.items()
    yield from _hand_runs()


def test_sim_runs_cover_the_edge_cases(sim_runs: dict[str, Run]) -> None:
    """The comparisons below are only worth something if the runs really have
    several components, crashed nodes, drops and a run without any."""
    faults = sim_runs["faults"]
    assert (ref_connected_components(faults)["components"] >= 3).any()
    assert len(ref_reconnect_latency(faults)) > 0
    assert ref_reconnect_latency(faults)["latency"].isna().any()  # 17 never comes back
    assert len(ref_reconnect_latency(sim_runs["calm"])) == 0
    assert ref_duplicate_connections_seen(next(r for n, r in _hand_runs()
                                               if n == "duplicates")) > 0


def _same(got: object, want: object) -> None:
    if isinstance(want, pd.DataFrame):
        assert isinstance(got, pd.DataFrame)
        assert_frame_equal(got, want, check_exact=True)
    elif isinstance(want, float) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got)
    else:
        assert got == want and type(got) is type(want)


METRICS: dict[str, tuple[Callable[[Run], object], Callable[[Run], object]]] = {
    "per_pair_downtime": (metrics.per_pair_downtime, ref_per_pair_downtime),
    "reconnect_latency": (metrics.reconnect_latency, ref_reconnect_latency),
    "duplicate_connections_seen": (metrics.duplicate_connections_seen,
                                   ref_duplicate_connections_seen),
    "connected_components": (metrics.connected_components, ref_connected_components),
    "grid_neighbour_coverage": (metrics.grid_neighbour_coverage,
                                ref_grid_neighbour_coverage),
}


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_matches_reference(name: str, sim_runs: dict[str, Run]) -> None:
    new, ref = METRICS[name]
    for label, run in _all_runs(sim_runs):
        try:
            _same(new(run), ref(run))
        except AssertionError as exc:
            raise AssertionError(f"{name} differs on run {label!r}") from exc


def test_sampled_metrics_at_other_times(sim_runs: dict[str, Run]) -> None:
    """Explicit times, between and beyond samples and exactly at link changes."""
    for label, run in _all_runs(sim_runs):
        edges = run.links[["up_at", "down_at"]].stack().dropna().astype(float).tolist()
        times = sorted({0.0, 1e9, -1.0, *edges[:40], *(t + 0.25 for t in edges[:40])})
        for new, ref in [(metrics.connected_components, ref_connected_components),
                         (metrics.grid_neighbour_coverage, ref_grid_neighbour_coverage)]:
            try:
                _same(new(run, times), ref(run, times))
                _same(new(run, []), ref(run, []))
            except AssertionError as exc:
                raise AssertionError(f"{new.__name__} differs on {label!r}") from exc


def test_time_to_full_mesh_matches_reference(sim_runs: dict[str, Run]) -> None:
    for label, run in _all_runs(sim_runs):
        no_samples = run_from_tables(run.events, None, run.summary,
                                     validators=run.validators, end_time=run.end_time)
        for r in (run, no_samples):
            for after in (0.0, 5.0, 30.0, 1e9):
                got, want = metrics.time_to_full_mesh(r, after), ref_time_to_full_mesh(r, after)
                assert (math.isnan(got) and math.isnan(want)) or got == want, label


def _with_links(run: Run, links: pd.DataFrame) -> Run:
    """A copy of ``run`` whose derived ``links`` table is ``links``."""
    other = copy.copy(run)
    other.__dict__["links"] = links
    return other


def test_time_to_full_mesh_on_overlapping_link_tables(sim_runs: dict[str, Run]) -> None:
    """A hand-made links table may hold one pair twice at once; counting
    intervals would then over-count, so such tables take the per-time path."""
    qs = sim_runs["quickstart"]
    base = run_from_tables(qs.events, None, qs.summary, validators=qs.validators,
                           end_time=qs.end_time)
    doubled = _with_links(base, pd.concat([base.links, base.links.iloc[:3]],
                                          ignore_index=True))
    backwards = _with_links(base, base.links.assign(down_at=base.links["up_at"] - 1.0))
    assert not metrics._one_interval_at_a_time(doubled.links)
    assert not metrics._one_interval_at_a_time(backwards.links)
    for r in (doubled, backwards):
        for after in (0.0, 20.0):
            got, want = metrics.time_to_full_mesh(r, after), ref_time_to_full_mesh(r, after)
            assert (math.isnan(got) and math.isnan(want)) or got == want


def test_links_up_at_matches_reference(sim_runs: dict[str, Run]) -> None:
    for _label, run in _all_runs(sim_runs):
        for t in [0.0, *metrics.sample_times(run)[:5], 1e9]:
            assert links_up_at(run.links, t) == ref_links_up_at(run.links, t)


def test_sessions_and_links_match_reference(sim_runs: dict[str, Run]) -> None:
    for label, run in _all_runs(sim_runs):
        try:
            assert_frame_equal(derive_sessions(run.events, run.end_time),
                               ref_derive_sessions(run.events, run.end_time),
                               check_exact=True)
            assert_frame_equal(derive_links(run.events, run.end_time),
                               ref_derive_links(run.events, run.end_time), check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"sessions/links differ on run {label!r}") from exc


def test_grid_neighbours_matches_reference() -> None:
    for v in [0, 1, 2, 3, 4, 5, 16, 17, 78, 1023]:
        assert metrics.grid_neighbours(v) == ref_grid_neighbours(v)


def test_vectorised_derivation_is_what_runs_on_regular_tables(
        sim_runs: dict[str, Run], monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated runs and the regular random tables must not fall back to the
    replay, or the comparisons above would not test the array code at all."""
    def no_replay(*_args: object) -> pd.DataFrame:
        raise AssertionError("fell back to the replay")

    monkeypatch.setattr(sessions, "_replay_links", no_replay)
    for label, run in [*sim_runs.items(),
                       *((f"regular{s}", None) for s in range(6))]:
        events = run.events if run is not None else _regular_events(int(label[7:]),
                                                                    stray=True)
        derive_links(events, 90.0)
    monkeypatch.setattr(sessions, "_replay_sessions", no_replay)
    for run in sim_runs.values():
        derive_sessions(run.events, run.end_time)
    derive_sessions(_regular_events(0), 90.0)
    restarted = sim_runs["faults"].events  # v3 is killed and restarted: ids re-used
    ups = restarted[restarted["event"].isin(["connected_out", "connected_in"])]
    assert ups.duplicated(["node", "conn_id"]).any()


def test_segment_sums_round_like_ndarray_sum() -> None:
    """Per-pair downtime sums each pair's durations; it must round as the
    per-group Series.sum did, for short (sequential) and long (pairwise) groups."""
    rng = np.random.default_rng(1)
    for trial in range(50):
        lengths = rng.integers(1, 300 if trial % 5 == 0 else 9, size=40)
        values = rng.random(int(lengths.sum())) * rng.choice([1.0, 1e-9, 1e9],
                                                             size=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        want = [float(pd.Series(values[s:s + n]).sum())
                for s, n in zip(starts, lengths, strict=True)]
        assert metrics._segment_sums(values, starts).tolist() == want


@pytest.mark.parametrize("n", [0, 1, 2, 7, 40])
def test_component_labels_against_networkx(n: int) -> None:
    from jamsim.analysis.components import component_stats

    rng = np.random.default_rng(n)
    for density in (0.0, 0.02, 0.1, 0.5):
        pairs = [(i, j) for i in range(n) for j in range(i, n) if rng.random() < density]
        a = np.array([p[0] for p in pairs], dtype=np.int64)
        b = np.array([p[1] for p in pairs], dtype=np.int64)
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from(pairs)
        comps = list(nx.connected_components(g))
        assert component_stats(n, a, b) == (len(comps), max(map(len, comps), default=0))


def test_component_stats_with_ids_outside_the_validators() -> None:
    """networkx added any node an edge named, negative or beyond the validators."""
    from jamsim.analysis.components import component_stats

    rng = np.random.default_rng(3)
    for _ in range(300):
        v, m = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        a, b = rng.integers(-3, 10, size=m), rng.integers(-3, 10, size=m)
        g = nx.Graph()
        g.add_nodes_from(range(v))
        g.add_edges_from(zip(a.tolist(), b.tolist(), strict=True))
        comps = list(nx.connected_components(g))
        assert component_stats(v, a, b) == (len(comps), max(map(len, comps), default=0))


def test_replay_matches_reference_on_every_table(sim_runs: dict[str, Run]) -> None:
    """The fallback replay (lists instead of itertuples, an index instead of a
    scan over all open sessions) on regular tables too, not only irregular ones."""
    tables = [(label, run.events, run.end_time) for label, run in _all_runs(sim_runs)]
    tables += [(f"messy{seed}", _random_events(seed, n=1500, nodes=4), 900.0)
               for seed in range(10, 14)]
    for label, events, end in tables:
        relevant = sessions._relevant(events)[0]
        try:
            assert_frame_equal(sessions._replay_sessions(relevant, end),
                               ref_derive_sessions(events, end), check_exact=True)
            assert_frame_equal(sessions._replay_links(relevant, end),
                               ref_derive_links(events, end), check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"replay differs on {label!r}") from exc


# --------------------------------------------------------------------------
# Oracles that share no code with the replay: ``ref_derive_links`` above is
# the replay's own algorithm, so agreeing with it proves only that the two
# copies were not edited apart. These catch a wrong algorithm in both.
# --------------------------------------------------------------------------


def _pairs_up_after(events: pd.DataFrame, t: float) -> list[tuple[int, int]]:
    """Brute force: replay every event up to ``t`` from scratch and list the
    pairs whose two ends both hold an open session (the definition of a link).

    A node's session with a peer opens at its connected_in/out; a disconnect
    closes the session its connection id opened (or one of the peer's sessions
    when the id is unknown, -1), and closes nothing for an id that is not open.
    A crash or restart of a node ends
    every session of that node (its process and its connections are gone).
    """
    open_ids: dict[tuple[int, int], int] = {}  # (node, conn_id) -> peer, as last opened
    sessions_: dict[tuple[int, int], int] = defaultdict(int)  # (node, peer) -> open count
    for e in events.itertuples(index=False):
        if float(e.time) > t:
            continue
        if e.event in ("node_crashed", "node_restarted"):  # the process's sessions end
            gone = int(e.node)
            open_ids = {k: v for k, v in open_ids.items() if k[0] != gone}
            for key in [k for k in sessions_ if k[0] == gone]:
                sessions_[key] = 0
            continue
        if int(e.peer) < 0:
            continue
        node, peer, cid = int(e.node), int(e.peer), int(e.conn_id)
        if e.event in _UP:
            open_ids[(node, cid)] = peer
            sessions_[(node, peer)] += 1
        elif e.event == "disconnected" and (cid < 0 or (node, cid) in open_ids):
            open_ids.pop((node, cid), None)
            sessions_[(node, peer)] = max(0, sessions_[(node, peer)] - 1)
    return sorted({pair_of(n, p) for (n, p), k in sessions_.items()
                   if k > 0 and sessions_.get((p, n), 0) > 0})


def test_replay_links_against_hand_built_answers() -> None:
    """Known answers worked out by hand: a half-open pair is no link, a second
    session keeps a link up when the first closes, a disconnect for an id that
    never came up changes nothing, and a reconnect opens a new interval."""
    events = pd.DataFrame([e.as_dict() for e in [
        ev(1.0, 0, 1, "connected_out", 1),
        ev(1.0, 1, 0, "connected_in", 2),     # link 0-1 up at 1
        ev(1.0, 2, 3, "connected_out", 5),    # 3 never answers: half-open, no link
        ev(3.0, 0, 1, "connected_out", 3),    # a duplicate session 0->1
        ev(4.0, 0, 1, "disconnected", 1),     # one of two closes: still up
        ev(5.0, 0, 1, "disconnected", 99),    # unknown id: ignored
        ev(6.0, 0, 1, "disconnected", 3),     # the last closes: down at 6
        ev(8.0, 0, 1, "connected_out", 4),    # 1's session (id 2) is still open
        ev(9.0, 2, 4, "connected_out", 6),
        ev(9.0, 4, 2, "connected_in", 7),     # link 2-4 up at 9 ...
        ev(9.0, 4, 2, "disconnected", 7),     # ... and down in the same instant
    ]])
    want = pd.DataFrame({"a": [0, 2, 0], "b": [1, 4, 1], "up_at": [1.0, 9.0, 8.0],
                         "down_at": [6.0, 9.0, math.nan], "duration": [5.0, 0.0, 12.0],
                         "open": [False, False, True]}, columns=LINK_COLUMNS)
    want = want.sort_values(["up_at", "a", "b"], kind="stable").reset_index(drop=True)
    relevant = sessions._relevant(events)[0]
    got = sessions._replay_links(relevant, 20.0)
    assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    assert_frame_equal(derive_links(events, 20.0), got, check_exact=True)


def test_links_agree_with_a_brute_force_recount_at_every_instant() -> None:
    """At every event time (and between them), the pairs the derived link table
    says are up equal a from-scratch recount of open sessions: a link opened
    or closed at the wrong event, or lost, fails here."""
    tables = [_random_events(seed, n=150, nodes=5) for seed in range(20, 24)]
    tables += [_regular_events(seed, conns=60, stray=True) for seed in range(3)]
    for k, events in enumerate(tables):
        end = float(events["time"].max()) + 1.0
        replayed = sessions._replay_links(sessions._relevant(events)[0], end)
        derived = derive_links(events, end)
        instants = sorted(set(events["time"].astype(float)))
        for t in [*instants, *(x + 0.25 for x in instants)]:
            want = _pairs_up_after(events, t)
            assert links_up_at(replayed, t) == want, (k, t)
            assert links_up_at(derived, t) == want, (k, t)
