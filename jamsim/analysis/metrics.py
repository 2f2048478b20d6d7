"""Connection-layer metrics over a :class:`Run`: the one implementation.

The CLI summary, ``summary.json``, the scenario verdicts, the HTML report and
``jamsim.analysis`` all call these functions on the same tables (a run folder
opened by :func:`~jamsim.analysis.run.load_run`), so they cannot disagree.
Each function answers one question a policy comparison or a fidelity check asks;
they all read the derived ``links`` table (pair up intervals), the connectivity
samples or a few columns of the event table, never raw runtime state, so sim and
testnet runs are measured alike.

Conventions, defined here once (docs/analysis.md repeats them):

* **Reconnections are counted per pair**, from ``links``: a pair (both ends
  holding a connection to each other) that goes down at or after ``after`` and
  its next coming up; the latency is the gap. A pair still down at the end is an
  *unrepaired* disconnection (latency ``inf``). Each end's own view of one drop is
  not counted twice, and a duplicate connection closed while its twin survives is
  no drop at all.
* **Quantiles are nearest-rank** (:func:`percentile`): the smallest measured value
  with at least the fraction ``q`` of values at or below it, never interpolated.
* **"after: heal"** (an action name) means the *last* timeline entry of that
  action; a number means that time.
* **Duplicates**: ``max_duplicates`` is the largest number of pairs holding two
  live connections at one connectivity sample; ``duplicate_sessions`` counts the
  times a node opened a second session to a peer it already had one with (each
  JAMNP-S duplicate race, resolved or not).
* **Failed dials per pair** count ``connect_out_failed`` of both ends of an
  unordered pair.

A full-scale run has ~10^6 sessions and ~5x10^5 link intervals, so everything
here is whole-array numpy/pandas work (sort once, shift within groups, reduce
by segment); nothing loops in Python per pair or builds a graph object per
sample. The original per-group versions live on as references in
tests/analysis/test_vectorised.py, which checks the results are identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from jamsim.analysis.components import component_stats
from jamsim.analysis.run import Run
from jamsim.analysis.sessions import links_up_at, live_mask

__all__ = [
    "RECOVERY_ACTIONS", "connected_components", "duplicate_connections_seen",
    "duplicate_sessions", "event_counts", "grid_neighbour_coverage", "grid_neighbours",
    "longest_stale", "max_duplicates", "max_failed_dials_per_pair", "max_stale_links",
    "per_pair_downtime", "percentile",
    "reconnect_latency", "reconnections", "retries_per_pair", "run_metrics",
    "sample_times", "time_to_full_mesh",
]

RECOVERY_ACTIONS = ("heal", "restart", "resume", "epoch", "link")
"""Timeline actions after which the time to a full mesh is reported (a full mesh
"after a partition" would just be the last sample before it)."""


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
    return _tallies(run)[1].copy()


def _tallies(run: Run) -> tuple[dict[str, int], pd.DataFrame]:
    """Rows per event name and :func:`retries_per_pair`, in one pass over the
    event table, computed once per run: the summary, the verdicts and the plots
    all ask, and each pass over a full-scale run's 20 million rows costs seconds.

    Counted batch by batch (a dense pair matrix for the dials): a run in a long
    partition is mostly dial events, tens of millions of rows never held at once."""
    cached = run.cache.get("tallies")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    counts: dict[str, int] = {}
    width = max(run.validators, 1)
    attempts = np.zeros(width * width, dtype=np.int64)
    failures = np.zeros(width * width, dtype=np.int64)
    for batch in run.event_batches(["node", "peer", "event"]):
        names = batch.column(2)
        if not len(names):
            continue
        if not pa.types.is_dictionary(names.type):
            names = names.dictionary_encode()
        codes = names.indices.to_numpy(zero_copy_only=False)
        labels = names.dictionary.to_pylist()
        tally = np.bincount(codes, minlength=len(labels))
        for name, n in zip(labels, tally.tolist(), strict=True):
            if n:
                counts[name] = counts.get(name, 0) + n
        dial_codes = [i for i, name in enumerate(labels)
                      if name in ("connecting_out", "connect_out_failed")]
        if not dial_codes:
            continue
        dial = np.isin(codes, dial_codes)
        failed = codes[dial] == (labels.index("connect_out_failed")
                                 if "connect_out_failed" in labels else -1)
        node = batch.column(0).to_numpy(zero_copy_only=False)[dial].astype(np.int64)
        peer = batch.column(1).to_numpy(zero_copy_only=False)[dial].astype(np.int64)
        keep = peer >= 0
        node, peer, failed = node[keep], peer[keep], failed[keep]
        if not len(node):
            continue
        top = int(max(node.max(), peer.max())) + 1
        if top > width:  # indices beyond the set (epoch rotations): widen
            attempts, failures = (_widen(m, width, top) for m in (attempts, failures))
            width = top
        key = np.minimum(node, peer) * width + np.maximum(node, peer)
        size = width * width
        attempts += np.bincount(key[~failed], minlength=size)
        failures += np.bincount(key[failed], minlength=size)
    columns = ["a", "b", "attempts", "failures", "failure_ratio"]
    used = np.flatnonzero((attempts > 0) | (failures > 0))
    if not len(used):
        retries = pd.DataFrame([], columns=columns)
    else:
        retries = pd.DataFrame({"a": used // width, "b": used % width,
                                "attempts": attempts[used], "failures": failures[used]},
                               columns=columns)
        retries["failure_ratio"] = retries["failures"] / retries["attempts"].where(
            retries["attempts"] > 0)
    result = (dict(sorted(counts.items())), retries)
    run.cache["tallies"] = result
    return result


def _widen(matrix: np.ndarray, width: int, new: int) -> np.ndarray:
    grown = np.zeros((new, new), dtype=matrix.dtype)
    grown[:width, :width] = matrix.reshape(width, width)
    return grown.reshape(-1)


def max_failed_dials_per_pair(run: Run) -> int:
    """The most failed dials (both ends) any one pair needed."""
    retries = retries_per_pair(run)
    return int(retries["failures"].max()) if len(retries) else 0


def event_counts(run: Run) -> dict[str, int]:
    """Rows per event name (counted with :func:`retries_per_pair`, one pass)."""
    return dict(_tallies(run)[0])


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the data
    at or below it. The one quantile rule of summaries, verdicts and reports."""
    ordered = np.sort(np.asarray(values, dtype=float))
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return float(ordered[index])


def reconnections(run: Run, after: float | str = 0.0) -> np.ndarray:
    """Latency of every pair drop at or after ``after`` until the pair was up
    again; ``inf`` for a drop never repaired within the run (see the module's
    conventions)."""
    t0 = _resolve_after(run, after)
    lat = reconnect_latency(run)
    if not len(lat):
        return np.zeros(0)
    lat = lat[lat["down_at"].to_numpy(dtype=float) >= t0]
    values = lat["latency"].to_numpy(dtype=float)
    return np.where(np.isnan(values), math.inf, values)


def max_duplicates(run: Run) -> int:
    """Most pairs holding two live connections at one connectivity sample."""
    c = run.connectivity
    return int(c["duplicates"].max()) if len(c) else 0


def max_stale_links(run: Run) -> tuple[int, float]:
    """Most stale links at one sample, and the first sample time it was seen."""
    c = run.connectivity
    if not len(c) or "links_stale" not in c:
        return 0, 0.0
    stale = c["links_stale"].to_numpy(dtype=np.int64)
    first = int(np.argmax(stale))
    return int(stale[first]), float(c["time"].iloc[first]) if stale[first] else 0.0


def longest_stale(run: Run, after: float | str = 0.0) -> float:
    """The longest any link stayed stale, counted from ``after`` on (seconds).

    From each sample's ``longest_stale`` (age of the oldest stale pair): exact at
    the samples, so an episode ending between two samples is short by less than
    one sample interval.
    """
    t0 = _resolve_after(run, after)
    c = run.connectivity
    if not len(c) or "longest_stale" not in c:
        return 0.0
    time = c["time"].to_numpy(dtype=float)
    keep = time >= t0
    if not keep.any():
        return 0.0
    ages = np.minimum(c["longest_stale"].to_numpy(dtype=float)[keep], time[keep] - t0)
    return float(ages.max())


def _final(final: pd.Series | None, column: str) -> int:
    return int(final[column]) if final is not None else 0


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def run_metrics(run: Run) -> dict[str, Any]:
    """The headline metrics of a run: ``summary.json``'s ``metrics``, the CLI
    summary, the report's comparison table. Times in seconds, None when the
    thing measured never happened."""
    after_events: dict[str, float | None] = {}
    for entry in run.timeline.itertuples():
        if str(entry.action) in RECOVERY_ACTIONS:
            after_events[f"{entry.label} @ {float(entry.at):g}s"] = _none_if_nan(
                time_to_full_mesh(run, float(entry.at)))
    first_fault = float(run.timeline["at"].min()) if len(run.timeline) else 0.0
    latencies = reconnections(run, first_fault)
    repaired = latencies[np.isfinite(latencies)]
    c = run.connectivity
    final = c.iloc[-1] if len(c) else None
    retries = retries_per_pair(run)
    return {
        "time_to_full_mesh_s": _none_if_nan(time_to_full_mesh(run)),
        "time_to_full_mesh_after_s": after_events,
        "final_links_usable": _final(final, "links_usable"),
        "final_links_believed": _final(final, "links_believed"),
        "final_links_stale": _final(final, "links_stale"),
        "max_links_stale": max_stale_links(run)[0],
        "longest_stale_s": float(c["longest_stale"].max()) if len(c) else 0.0,
        "final_links_expected": _final(final, "links_expected"),
        "final_full_mesh": bool(final["full_mesh"]) if final is not None else False,
        "max_duplicates": max_duplicates(run),
        "duplicate_sessions": duplicate_sessions(run),
        "reconnections": len(repaired),
        "unrepaired_disconnections": int(len(latencies) - len(repaired)),
        "reconnect_p50_s": percentile(repaired, 0.5) if len(repaired) else None,
        "reconnect_p99_s": percentile(repaired, 0.99) if len(repaired) else None,
        "reconnect_max_s": float(repaired.max()) if len(repaired) else None,
        "connect_attempts": int(retries["attempts"].sum()) if len(retries) else 0,
        "connect_failures": int(retries["failures"].sum()) if len(retries) else 0,
        "max_failed_dials_per_pair": int(retries["failures"].max()) if len(retries) else 0,
        "event_counts": event_counts(run),
        **_delivery_metrics(run),
    }


def _delivery_metrics(run: Run) -> dict[str, Any]:
    """``{"delivery": ...}`` for a run with slot traffic (jamsim/analysis/delivery.py:
    overall and from each recovery action on), else nothing."""
    delivery = run.delivery
    if delivery is None:
        return {}
    from jamsim.analysis.delivery import delivery_metrics

    recoveries = [(float(entry.at), str(entry.label)) for entry in run.timeline.itertuples()
                  if str(entry.action) in RECOVERY_ACTIONS]
    return {"delivery": delivery_metrics(delivery, recoveries)}


def duplicate_connections_seen(run: Run) -> int:
    """The larger of :func:`duplicate_sessions` and :func:`max_duplicates`."""
    return max(duplicate_sessions(run), max_duplicates(run))


def duplicate_sessions(run: Run) -> int:
    """How many times a node opened a session to a peer while it still held
    another one to it (from sessions)."""
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
    return count


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
