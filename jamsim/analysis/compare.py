"""Line up headline metrics of several runs (policies, seeds, sim vs testnet)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from jamsim.analysis import metrics
from jamsim.analysis.run import Run

__all__ = ["compare", "run_metrics"]


def run_metrics(run: Run) -> dict[str, object]:
    """One row of headline metrics: exactly the numbers of the run's summary
    (:func:`jamsim.analysis.metrics.run_metrics`, the one implementation), with
    time-to-full-mesh after each recovery event as its own column."""
    computed = metrics.run_metrics(run)
    row: dict[str, object] = {
        "validators": run.validators,
        "policy": run.summary.get("policy", ""),
        "seed": run.summary.get("seed", ""),
        "fidelity": run.summary.get("fidelity", ""),
        "complete": run.complete,
    }
    for key, value in computed.items():
        if key == "time_to_full_mesh_after_s":
            assert isinstance(value, dict)
            row.update({f"ttfm_after[{label}]_s": took for label, took in value.items()})
        elif not isinstance(value, dict):
            row[key] = value
    downtime = metrics.per_pair_downtime(run)["downtime"]
    row["mean_pair_downtime_s"] = float(downtime.mean()) if len(downtime) else None
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
