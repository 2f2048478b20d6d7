"""Connection-layer metrics over a :class:`Run`.

Each function answers one question a policy comparison or a fidelity check asks;
they all read the derived ``links`` table (pair up intervals) or the connectivity
samples, never raw runtime state, so sim and testnet runs are measured alike.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd

from jamsim.analysis.run import Run
from jamsim.analysis.sessions import links_up_at

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
    for t in times:
        if len(links_up_at(run.links, t)) >= expected:
            return float(t - t0)
    return math.nan


def per_pair_downtime(run: Run) -> pd.DataFrame:
    """For each pair that was ever up: seconds it was down between its first
    up and the end of the run, and how many times it went down."""
    rows = []
    for (a, b), g in run.links.groupby(["a", "b"]):
        first = float(g["up_at"].min())
        up_total = float(g["duration"].sum())
        rows.append({"a": a, "b": b, "first_up": first, "downs": int((~g["open"]).sum()),
                     "downtime": (run.end_time - first) - up_total})
    return pd.DataFrame(rows, columns=["a", "b", "first_up", "downs", "downtime"])


def _cause(run: Run, t: float) -> str:
    before = run.timeline[run.timeline["at"] <= t]
    return str(before["label"].iloc[-1]) if len(before) else "(start)"


def reconnect_latency(run: Run) -> pd.DataFrame:
    """Every time a pair went down: when, when it came back (NaN if never),
    the latency, and ``after`` = the latest timeline event at or before the drop,
    so latencies can be grouped by the fault that caused them."""
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
                         "latency": back - down, "after": _cause(run, down)})
    return pd.DataFrame(rows, columns=["a", "b", "down_at", "up_at", "latency", "after"])


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


def sample_times(run: Run, times: list[float] | None = None) -> list[float]:
    """The connectivity sample times, or 1 s steps if the run has none."""
    if times is not None:
        return list(times)
    if len(run.connectivity):
        return [float(t) for t in run.connectivity["time"]]
    return [float(t) for t in np.arange(0.0, run.end_time + 1e-9, 1.0)]


def connected_components(run: Run, times: list[float] | None = None) -> pd.DataFrame:
    """Graph snapshots rebuilt from links: number of components among all
    validators (isolated nodes count) and the size of the largest one."""
    rows = []
    for t in sample_times(run, times):
        g = nx.Graph()
        g.add_nodes_from(range(run.validators))
        g.add_edges_from(links_up_at(run.links, t))
        comps = list(nx.connected_components(g))
        rows.append({"time": t, "components": len(comps),
                     "largest": max((len(c) for c in comps), default=0)})
    return pd.DataFrame(rows, columns=["time", "components", "largest"])


def grid_neighbours(v: int) -> list[tuple[int, int]]:
    """JAMNP-S grid neighbour pairs for ``v`` validators: width W = floor(sqrt(V));
    i, j are neighbours if they share a row (i // W) or a column (i % W)."""
    w = max(1, math.isqrt(v))
    return [(i, j) for i in range(v) for j in range(i + 1, v)
            if i // w == j // w or i % w == j % w]


def grid_neighbour_coverage(run: Run, times: list[float] | None = None) -> pd.DataFrame:
    """Fraction of grid-neighbour pairs that are linked at each time."""
    grid = set(grid_neighbours(run.validators))
    rows = []
    for t in sample_times(run, times):
        up = grid.intersection(links_up_at(run.links, t))
        rows.append({"time": t, "covered": len(up), "grid_pairs": len(grid),
                     "coverage": len(up) / len(grid) if grid else math.nan})
    return pd.DataFrame(rows, columns=["time", "covered", "grid_pairs", "coverage"])
