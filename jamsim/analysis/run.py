"""Load a results folder into tidy DataFrames.

Everything downstream (metrics, plots, the HTML report, notebooks) starts from a
:class:`Run`, so sessions and pair links are derived exactly once, here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from jamsim.analysis.sessions import derive_links, derive_sessions
from jamsim.core.errors import UsageError
from jamsim.telemetry.records import CONNECTIVITY_COLUMNS, EVENT_COLUMNS

__all__ = ["Run", "load_run", "run_from_tables"]


@dataclass
class Run:
    """One run's tables. ``links`` holds pair-level up intervals (both ends
    consider the pair connected); ``sessions`` holds each node's own view."""

    name: str
    events: pd.DataFrame
    connectivity: pd.DataFrame
    sessions: pd.DataFrame
    links: pd.DataFrame
    timeline: pd.DataFrame
    summary: dict[str, Any]
    validators: int
    end_time: float
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def timeline_time(self, label: str) -> float:
        """When the timeline event ``label`` happened.

        An action name (``"heal"``) means its *last* entry, as ``after: heal`` does
        in scenario expectations and the run summary; anything else is the first
        entry whose label starts with ``label`` (``"heal @ 180s"``).
        """
        by_action = [float(row.at) for row in self.timeline.itertuples()
                     if str(row.action) == label]
        if by_action:
            return max(by_action)
        for row in self.timeline.itertuples():
            if str(row.label).startswith(label):
                return float(row.at)
        raise UsageError(f"run {self.name!r} has no timeline event {label!r}; "
                         f"known: {list(self.timeline['label'])}")


def _timeline_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = [{"at": float(e["at"]), "action": str(e.get("action", "")),
             "label": str(e.get("label", e.get("action", "")))}
            for e in summary.get("timeline", [])]
    return pd.DataFrame(rows, columns=["at", "action", "label"])


def _time_ordered(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` stably sorted by time with a fresh index. Runtimes write rows in
    time order, so the sort (a 2.5-million-row copy, ~2 s) is skipped when it
    would be the identity."""
    if events["time"].is_monotonic_increasing:
        return events.reset_index(drop=True)
    return events.sort_values("time", kind="stable").reset_index(drop=True)


def run_from_tables(events: pd.DataFrame, connectivity: pd.DataFrame | None = None,
                    summary: dict[str, Any] | None = None, *, name: str = "run",
                    validators: int | None = None, end_time: float | None = None,
                    path: Path | None = None) -> Run:
    """Build a :class:`Run` from in-memory tables (used by tests and by load_run)."""
    summary = dict(summary or {})
    events = _time_ordered(events.reindex(columns=list(EVENT_COLUMNS))
                           if list(events.columns) != list(EVENT_COLUMNS) else events)
    if connectivity is None:
        connectivity = pd.DataFrame(columns=list(CONNECTIVITY_COLUMNS))
    connectivity = connectivity.sort_values("time", kind="stable").reset_index(drop=True)
    if validators is None:
        validators = int(summary.get("validators") or 0)
        if not validators and len(events):
            validators = int(max(events["node"].max(), events["peer"].max())) + 1
    if end_time is None:
        candidates = [float(summary.get("simulated_s") or summary.get("duration_s") or 0.0)]
        candidates += [float(events["time"].max())] if len(events) else []
        candidates += [float(connectivity["time"].max())] if len(connectivity) else []
        end_time = max(candidates)
    sessions = derive_sessions(events, end_time)
    links = derive_links(events, end_time)
    return Run(name=str(summary.get("name", name)) if name == "run" else name,
               events=events, connectivity=connectivity, sessions=sessions,
               links=links, timeline=_timeline_frame(summary), summary=summary,
               validators=validators, end_time=end_time, path=path)


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read a results folder (events.parquet, connectivity.parquet, summary.json)."""
    p = Path(path)
    events_file = p / "events.parquet"
    if not events_file.is_file():
        raise UsageError(f"{p}: not a results folder (no events.parquet)")
    events = pd.read_parquet(events_file)
    conn_file = p / "connectivity.parquet"
    connectivity = pd.read_parquet(conn_file) if conn_file.is_file() else None
    summary_file = p / "summary.json"
    summary: dict[str, Any] = (json.loads(summary_file.read_text())
                               if summary_file.is_file() else {})
    return run_from_tables(events, connectivity, summary,
                           name=name or str(summary.get("name") or p.name), path=p)
