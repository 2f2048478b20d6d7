"""Connection-layer metrics over a :class:`Run`.

Each function answers one question a policy comparison or a fidelity check asks;
they all read the derived ``links`` table (pair up intervals) or the connectivity
samples, never raw runtime state, so sim and testnet runs are measured alike.

A full-scale run has ~10^6 sessions and ~5x10^5 link intervals, so everything
here is whole-array numpy/pandas work (sort once, shift within groups, reduce
by segment); nothing loops in Python per pair or builds a graph object per
sample. The original per-group versions live on as references in
tests/analysis/test_vectorised.py, which checks the results are identical.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from jamsim.analysis.components import component_stats
from jamsim.analysis.run import Run
from jamsim.analysis.sessions import links_up_at, live_mask

__all__ = [
    "connected_components", "duplicate_connections_seen", "grid_neighbour_coverage",
    "grid_neighbours", "per_pair_downtime", "reconnect_latency", "retries_per_pair",
    "sample_times", "time_to_full_mesh",
]


def _resolve_after(run: Run, after: float | str) -> float:
    return run.timeline_time(after) if isinstance(after, str) else float(after)


def time_to_full_mesh(run: Run, after: float | str = 0.0) -> float:
    """Seconds from ``after`` (a time or a timeline label such as "heal") until the
    first connectivity sample showing a full mesh; NaN if it never happens.
    Falls back to the link table when the run has no samples."""
    t0 = _resolve_after(run, after)
    c = run.connectivity
    if len(c):
        hit = c[(c["time"] >= t0) & (c["full_mesh"].astype(bool))]
        return float(hit["time"].iloc[0]) - t0 if len(hit) else math.nan
    expected = run.validators * (run.validators - 1) // 2
    times = sorted({t0, *run.links["up_at"][run.links["up_at"] >= t0].tolist()})
    if _one_interval_at_a_time(run.links):
        # pairs up at t = intervals begun by t minus intervals ended by t
        up = np.sort(run.links["up_at"].to_numpy(dtype=float))
        down = run.links["down_at"].to_numpy(dtype=float)
        down = np.sort(down[~np.isnan(down)])
        at = np.asarray(times, dtype=float)
        live = np.searchsorted(up, at, side="right") - np.searchsorted(down, at, side="right")
        hit = np.flatnonzero(live >= expected)
        return float(times[hit[0]] - t0) if len(hit) else math.nan
    for t in times:
        if len(links_up_at(run.links, t)) >= expected:
            return float(t - t0)
    return math.nan


def _one_interval_at_a_time(links: pd.DataFrame) -> bool:
    """Whether no pair has two link intervals covering one instant (true of
    every table derive_links builds), so counting intervals counts pairs."""
    if not len(links):
        return True
    up, down = links["up_at"].to_numpy(dtype=float), links["down_at"].to_numpy(dtype=float)
    if np.isnan(up).any() or (down < up).any():
        return False
    g = _by_pair(links)
    same_pair = ~_group_starts(g["a"].to_numpy(), g["b"].to_numpy())[1:]
    down = g["down_at"].to_numpy(dtype=float)[:-1][same_pair]
    next_up = g["up_at"].to_numpy(dtype=float)[1:][same_pair]
    return bool((down <= next_up).all())  # NaN (still open) compares False


def _by_pair(links: pd.DataFrame) -> pd.DataFrame:
    """Links grouped by pair: rows ordered by (a, b), then by ``up_at`` and the
    original order (the per-group ``sort_values`` of the old code, made stable)."""
    order = np.lexsort((links["up_at"].to_numpy(), links["b"].to_numpy(),
                        links["a"].to_numpy()))
    return links.iloc[order].reset_index(drop=True)


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """Boolean mask of rows that begin a new group in arrays sorted by ``keys``."""
    n = len(keys[0])
    start = np.zeros(n, dtype=bool)
    if n:
        start[0] = True
        for k in keys:
            start[1:] |= k[1:] != k[:-1]
    return start


def _segment_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of each segment ``values[starts[k]:starts[k+1]]``, rounded exactly as
    ``ndarray.sum`` (which Series.sum per group used) rounds it.

    ``np.add.reduceat`` associates differently and can differ in the last bit, so
    short segments (where ``sum`` adds left to right) are added position by
    position across all segments at once, and the rare long ones (where ``sum``
    switches to pairwise summation) are summed one by one with ``sum`` itself.
    """
    ends = np.append(starts[1:], len(values))
    lengths = ends - starts
    out = np.zeros(len(starts))
    short = lengths < 8
    for k in range(int(lengths[short].max(initial=0))):
        at = short & (lengths > k)
        out[at] += values[starts[at] + k]
    for i in np.flatnonzero(~short):
        out[i] = values[starts[i]:ends[i]].sum()
    return out


def per_pair_downtime(run: Run) -> pd.DataFrame:
    """For each pair that was ever up: seconds it was down between its first
    up and the end of the run, and how many times it went down."""
    columns = ["a", "b", "first_up", "downs", "downtime"]
    if not len(run.links):
        return pd.DataFrame([], columns=columns)
    g = _by_pair(run.links)
    a, b = g["a"].to_numpy(), g["b"].to_numpy()
    starts = np.flatnonzero(_group_starts(a, b))
    first = np.minimum.reduceat(g["up_at"].to_numpy(), starts)
    up_total = _segment_sums(g["duration"].to_numpy(dtype=float), starts)
    downs = np.add.reduceat((~g["open"].to_numpy(dtype=bool)).astype(np.int64), starts)
    return pd.DataFrame({"a": a[starts], "b": b[starts], "first_up": first,
                         "downs": downs, "downtime": (run.end_time - first) - up_total},
                        columns=columns)


def _causes(run: Run, times: np.ndarray) -> np.ndarray:
    """Label of the last timeline row (in timeline order) at or before each time."""
    out = np.full(len(times), "(start)", dtype=object)
    for at, label in zip(run.timeline["at"], run.timeline["label"], strict=True):
        out[times >= at] = str(label)
    return out


def reconnect_latency(run: Run) -> pd.DataFrame:
    """Every time a pair went down: when, when it came back (NaN if never),
    the latency, and ``after`` = the latest timeline event at or before the drop,
    so latencies can be grouped by the fault that caused them."""
    columns = ["a", "b", "down_at", "up_at", "latency", "after"]
    if not len(run.links):
        return pd.DataFrame([], columns=columns)
    g = _by_pair(run.links)
    a, b = g["a"].to_numpy(), g["b"].to_numpy()
    down = g["down_at"].to_numpy(dtype=float)
    # the next interval of the same pair is the reconnection
    back = np.full(len(g), np.nan)
    same_next = ~_group_starts(a, b)[1:]
    back[:-1][same_next] = g["up_at"].to_numpy(dtype=float)[1:][same_next]
    keep = ~np.isnan(down)
    if not keep.any():
        return pd.DataFrame([], columns=columns)
    down, back = down[keep], back[keep]
    return pd.DataFrame({"a": a[keep], "b": b[keep], "down_at": down, "up_at": back,
                         "latency": back - down,
                         "after": pd.array(_causes(run, down), dtype="str")},
                        columns=columns)


def retries_per_pair(run: Run) -> pd.DataFrame:
    """Outbound attempts (connecting_out) and failures (connect_out_failed) per
    pair, with the failure ratio: a policy that hammers dead peers shows here."""
    e = run.events[run.events["peer"] >= 0]
    pairs = pd.DataFrame({"a": np.minimum(e["node"], e["peer"]),
                          "b": np.maximum(e["node"], e["peer"]), "event": e["event"]})
    att = pairs[pairs["event"] == "connecting_out"].groupby(["a", "b"]).size()
    fail = pairs[pairs["event"] == "connect_out_failed"].groupby(["a", "b"]).size()
    df = pd.concat([att.rename("attempts"), fail.rename("failures")], axis=1).fillna(0)
    df = df.astype(int).reset_index()
    df["failure_ratio"] = df["failures"] / df["attempts"].where(df["attempts"] > 0)
    return df


def duplicate_connections_seen(run: Run) -> int:
    """How many times a node held two overlapping sessions to the same peer
    (from sessions), or the samples' max ``duplicates`` if that is larger."""
    s = run.sessions
    count = 0
    if len(s):
        node, peer = s["node"].to_numpy(), s["peer"].to_numpy()
        up = s["up_at"].to_numpy(dtype=float)
        order = np.lexsort((up, peer, node))
        node, peer, up = node[order], peer[order], up[order]
        end = s["down_at"].to_numpy(dtype=float)[order]
        end = np.where(np.isnan(end), math.inf, end)
        starts = _group_starts(node, peer)
        # latest end among the earlier sessions of the same (node, peer)
        group = np.cumsum(starts) - 1
        running = pd.Series(end).groupby(group).cummax().to_numpy()
        latest = np.empty_like(running)
        latest[0] = -math.inf
        latest[1:] = running[:-1]
        latest[starts] = -math.inf
        count = int(np.count_nonzero(up < latest))
    sampled = int(run.connectivity["duplicates"].max()) if len(run.connectivity) else 0
    return max(count, sampled)


def sample_times(run: Run, times: list[float] | None = None) -> list[float]:
    """The connectivity sample times, or 1 s steps if the run has none."""
    if times is not None:
        return list(times)
    if len(run.connectivity):
        return [float(t) for t in run.connectivity["time"]]
    return [float(t) for t in np.arange(0.0, run.end_time + 1e-9, 1.0)]


def connected_components(run: Run, times: list[float] | None = None) -> pd.DataFrame:
    """Graph snapshots rebuilt from links: number of components among all
    validators (isolated nodes count) and the size of the largest one.

    Nodes named by a link but outside ``range(validators)`` count from the
    moment one of their links is up, as they did when the graph was networkx."""
    links = run.links
    a = links["a"].to_numpy(dtype=np.int64)
    b = links["b"].to_numpy(dtype=np.int64)
    rows = []
    for t in sample_times(run, times):
        live = live_mask(links, t)
        components, largest = component_stats(run.validators, a[live], b[live])
        rows.append({"time": t, "components": components, "largest": largest})
    return pd.DataFrame(rows, columns=["time", "components", "largest"])


def grid_neighbours(v: int) -> list[tuple[int, int]]:
    """JAMNP-S grid neighbour pairs for ``v`` validators: width W = floor(sqrt(V));
    i, j are neighbours if they share a row (i // W) or a column (i % W)."""
    i, j = _grid_arrays(v)
    return list(zip(i.tolist(), j.tolist(), strict=True))


def _grid_arrays(v: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid pairs (i < j) in the row-major order of the double loop."""
    w = max(1, math.isqrt(v))
    i, j = np.triu_indices(max(v, 0), 1)
    keep = (i // w == j // w) | (i % w == j % w)
    return i[keep], j[keep]


def _is_grid_pair(v: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each (a, b) is one of ``grid_neighbours(v)``."""
    w = max(1, math.isqrt(v))
    ordered = (a >= 0) & (a < b) & (b < v)  # grid pairs are (i, j), 0 <= i < j < v
    grid: np.ndarray = ordered & ((a // w == b // w) | (a % w == b % w))
    return grid


def grid_neighbour_coverage(run: Run, times: list[float] | None = None) -> pd.DataFrame:
    """Fraction of grid-neighbour pairs that are linked at each time."""
    n_grid = len(_grid_arrays(run.validators)[0])
    links = run.links
    a = links["a"].to_numpy(dtype=np.int64)
    b = links["b"].to_numpy(dtype=np.int64)
    grid = _is_grid_pair(run.validators, a, b)
    key = a * max(run.validators, 1) + b
    rows = []
    for t in sample_times(run, times):
        # distinct pairs, as the set intersection counted them
        covered = len(np.unique(key[grid & live_mask(links, t)]))
        rows.append({"time": t, "covered": covered, "grid_pairs": n_grid,
                     "coverage": covered / n_grid if n_grid else math.nan})
    return pd.DataFrame(rows, columns=["time", "covered", "grid_pairs", "coverage"])
