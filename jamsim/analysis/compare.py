"""Line up headline metrics of several runs (policies, seeds, sim vs testnet).

Two views: :func:`compare` recomputes metrics from the event tables (per *pair*,
for analysis in notebooks); :func:`summary_table` reads the numbers each run
wrote to its ``summary.json`` (per node view, as ``jamsim run`` printed them),
which is what the HTML report shows, so the report never disagrees with a
run's own summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from jamsim.analysis import metrics
from jamsim.analysis.run import Run

__all__ = ["compare", "completeness", "run_kind", "run_metrics", "summary_metrics",
           "summary_table", "unique_labels"]


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
    index = unique_labels(list(labels) if labels is not None else [r.name for r in runs])
    df = pd.DataFrame([run_metrics(r) for r in runs], index=index)
    df.index.name = "run"
    return df


def unique_labels(names: Sequence[str]) -> list[str]:
    """``names`` with repeats told apart by ``#2``, ``#3`` (a legend or table
    that says ``quickstart`` twice cannot be read)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def run_kind(summary: dict[str, Any]) -> str:
    """What produced a run: ``simulation (model)``, ``simulation (quic)`` or
    ``testnet (local|docker|swarm)``; the summary's ``fidelity`` describes only
    simulations, so a testnet run is named by its ``runtime``."""
    runtime = str(summary.get("runtime") or "")
    if runtime.startswith("testnet:"):
        return f"testnet ({runtime.partition(':')[2]})"
    if runtime:
        return runtime
    return f"simulation ({summary.get('fidelity') or 'model'})"


def completeness(summary: dict[str, Any]) -> str:
    """``complete``, or ``incomplete: <why>`` for a run cut short."""
    if summary.get("complete", True) is not False:
        return "complete"
    return f"incomplete: {summary.get('error') or 'stopped early'}"


SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("time_to_full_mesh_s", "time to full mesh", "until"),
    ("final_links_believed", "final links believed", "count"),
    ("final_links_usable", "final links usable", "count"),
    ("final_links_expected", "links expected", "count"),
    ("final_links_stale", "final stale links", "count"),
    ("max_links_stale", "max stale links", "count"),
    ("reconnections", "reconnections", "count"),
    ("reconnect_p50_s", "reconnect p50", "s"),
    ("reconnect_p99_s", "reconnect p99", "s"),
    ("reconnect_max_s", "reconnect max", "s"),
    ("unrepaired_disconnections", "never repaired", "count"),
    ("max_duplicates", "max duplicate pairs", "count"),
)
"""Headline metrics of ``summary.json`` (key, label, unit), in reading order. Unit
``until``: seconds until something happened, None if it never did."""


def summary_metrics(summary: dict[str, Any]) -> list[tuple[str, object, str]]:
    """``(label, value, unit)`` rows of a run's summary metrics, values exactly as
    ``summary.json`` holds them (unit ``s``, ``until``, ``count`` or ``""``).

    Known metrics first, then full mesh after each recovery, then any metric a
    newer runner added (``*_s`` read as seconds), so nothing recorded is hidden.
    A mapping metric (``event_counts``) gives one row per entry.
    """
    metrics_ = dict(summary.get("metrics") or {})
    rows: list[tuple[str, object, str]] = []
    for key, label, unit in SUMMARY_ROWS:
        if key in metrics_:
            rows.append((label, metrics_.pop(key), unit))
        if key == "time_to_full_mesh_s":
            rows.extend((f"full mesh after {event}", took, "until") for event, took in
                        (metrics_.pop("time_to_full_mesh_after_s", None) or {}).items())
    metrics_.pop("final_full_mesh", None)  # final links up / expected say it
    for key, value in metrics_.items():
        if isinstance(value, dict):
            rows.extend((f"{key.removesuffix('_s').replace('_', ' ')}: {sub}", v,
                         _unit(key, v)) for sub, v in value.items()
                        if not isinstance(v, dict | list))
        elif not isinstance(value, list):
            rows.append((key.removesuffix("_s").replace("_", " "), value, _unit(key, value)))
    return rows


def _unit(key: str, value: object) -> str:
    if key.endswith("_s"):
        return "s"
    if isinstance(value, int) and not isinstance(value, bool):
        return "count"
    return ""


def summary_table(runs: Sequence[Run], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Headline metrics of several runs read from their ``summary.json`` (so the
    numbers are the ones each run reported), one column per run, one row per
    metric; the ``unit`` column says how to read a row. A metric a run did not
    record is ``pd.NA`` (a recorded None, e.g. a mesh that never formed, stays
    None). Columns are the run labels, repeats told apart (``#2``)."""
    names = unique_labels(list(labels) if labels is not None else [r.name for r in runs])
    facts: dict[str, dict[str, object]] = {}
    units: dict[str, str] = {}
    for name, run in zip(names, runs, strict=True):
        s = run.summary
        column: dict[str, object] = {
            "kind": run_kind(s), "completeness": completeness(s),
            "validators": s.get("validators", run.validators), "policy": s.get("policy"),
            "seed": s.get("seed"), "run length": s.get("simulated_s"),
            "expectations passed": _passed(s)}
        units.update({"validators": "count", "run length": "s"})
        for label, value, unit in summary_metrics(s):
            column[label] = value
            units.setdefault(label, unit)
        facts[name] = column
    rows: list[str] = []
    for column in facts.values():
        for label in column:
            if label not in rows:
                rows.insert(_slot(rows, label), label)

    def cell(column: dict[str, object], row: str) -> object:
        if row in column:
            return column[row]
        # event_counts lists only the events that happened; other metrics a run
        # did not record (an older runner, another recovery event) are NA
        return 0 if row.startswith("event counts: ") else pd.NA

    table = pd.DataFrame({name: [cell(column, row) for row in rows]
                          for name, column in facts.items()}, index=rows, dtype=object)
    table.insert(0, "unit", [units.get(row, "") for row in rows])
    table.index.name = "metric"
    return table


def _slot(rows: list[str], label: str) -> int:
    """Where a row first seen in a later run goes: beside its kind (another run's
    "full mesh after ..." next to the first run's), else at the end."""
    for prefix in ("full mesh after ", "event counts: "):
        if label.startswith(prefix):
            same = [i for i, row in enumerate(rows) if row.startswith(prefix)
                    or (prefix == "full mesh after " and row == "time to full mesh")]
            if same:
                return same[-1] + 1
    return len(rows)


def _passed(summary: dict[str, Any]) -> str:
    verdicts = summary.get("expectations") or []
    unmeasured = sum(1 for v in verdicts if v.get("outcome") == "not measured")
    shown = f"{sum(1 for v in verdicts if v.get('passed'))}/{len(verdicts)}"
    return shown + (f" ({unmeasured} not measured)" if unmeasured else "")
