"""Line up headline metrics of several runs (policies, seeds, sim vs testnet)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from jamsim.analysis import metrics
from jamsim.analysis.run import Run
from jamsim.scenario.expectations import percentile

__all__ = ["compare", "run_metrics"]


def run_metrics(run: Run) -> dict[str, object]:
    """One row of headline metrics; time-to-full-mesh after each timeline event.

    Reconnect quantiles use the nearest-rank rule of the run summary and the
    scenario verdicts (:func:`jamsim.scenario.expectations.percentile`), but
    count *pairs* (a link going down and coming back), where the summary counts
    each end's view of it; so ``reconnects`` here is about half the summary's.
    """
    lat = metrics.reconnect_latency(run)["latency"].dropna()
    values = [float(v) for v in lat]
    retries = metrics.retries_per_pair(run)
    row: dict[str, object] = {
        "validators": run.validators,
        "policy": run.summary.get("policy", ""),
        "seed": run.summary.get("seed", ""),
        "fidelity": run.summary.get("fidelity", ""),
        "time_to_full_mesh_s": metrics.time_to_full_mesh(run),
        "reconnects": len(lat),
        "reconnect_p50_s": percentile(values, 0.5) if values else math.nan,
        "reconnect_p99_s": percentile(values, 0.99) if values else math.nan,
        "connect_attempts": int(retries["attempts"].sum()) if len(retries) else 0,
        "connect_failures": int(retries["failures"].sum()) if len(retries) else 0,
        "duplicates_seen": metrics.duplicate_connections_seen(run),
        "mean_pair_downtime_s": float(metrics.per_pair_downtime(run)["downtime"].mean()),
    }
    for entry in run.timeline.itertuples():
        row[f"ttfm_after[{entry.label}]_s"] = metrics.time_to_full_mesh(run, float(entry.at))
    return row


def compare(runs: Sequence[Run], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """DataFrame with one row per run, indexed by label (default: run names,
    de-duplicated with a #n suffix)."""
    names = list(labels) if labels is not None else [r.name for r in runs]
    seen: dict[str, int] = {}
    index = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        index.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    df = pd.DataFrame([run_metrics(r) for r in runs], index=index)
    df.index.name = "run"
    return df
