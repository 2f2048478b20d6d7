"""Open a results folder lazily; derive sessions and pair links once.

Everything downstream (metrics, plots, the HTML report, notebooks, the run summary
and the scenario verdicts) starts from a :class:`Run`, so sessions and pair links
are derived exactly once, here.

A full-scale run records tens of millions of events, so :func:`load_run` reads
nothing but ``summary.json`` up front. ``run.links`` and ``run.sessions`` read
only the connect/disconnect rows and the six columns they need (a small fraction
of a run dominated by failed dials); ``run.events`` loads the whole table into
pandas only when asked; :meth:`Run.scan_events` reads chosen columns and events.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from jamsim.analysis.sessions import (
    PROCESS_ENDS,
    SESSION_EVENTS,
    derive_links,
    derive_sessions,
)
from jamsim.core.errors import UsageError
from jamsim.telemetry.records import CONNECTIVITY_COLUMNS, EVENT_COLUMNS, NODE_COLUMNS
from jamsim.telemetry.writer import (
    open_dataset,
    read_nodes,
    read_table,
    table_exists,
    table_is_closed,
)

if TYPE_CHECKING:
    from jamsim.analysis.delivery import Delivery

__all__ = ["Run", "load_run", "run_from_tables"]

_SESSION_COLUMNS = ["time", "node", "peer", "event", "conn_id", "reason"]


class Run:
    """One run's tables. ``links`` holds pair-level up intervals (both ends
    consider the pair connected); ``sessions`` holds each node's own view.

    ``complete`` is False for a run that was interrupted, crashed or killed
    (``incomplete_reason`` says why, as far as the folder tells).
    """

    def __init__(self, name: str, *, events: pd.DataFrame | None = None,
                 events_path: Path | None = None, connectivity: pd.DataFrame,
                 summary: dict[str, Any], validators: int, end_time: float,
                 timeline: pd.DataFrame, path: Path | None = None,
                 nodes: pd.DataFrame | None = None, complete: bool = True,
                 incomplete_reason: str | None = None) -> None:
        self.name = name
        self._events = events
        self._events_path = events_path
        self.connectivity = connectivity
        self.summary = summary
        self.validators = validators
        self.end_time = end_time
        self.timeline = timeline
        self.path = path
        self._nodes = nodes
        self.complete = complete
        self.incomplete_reason = incomplete_reason
        self.meta: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}
        """Results derived from the tables, computed once (``jamsim.analysis.metrics``)."""

    # ------------------------------------------------------------------ tables

    @property
    def events(self) -> pd.DataFrame:
        """The whole event table in pandas (loaded on first use; event,
        direction and reason are categoricals)."""
        if self._events is None:
            assert self._events_path is not None
            self._events = _time_ordered(read_table(self._events_path).to_pandas())
        return self._events

    def scan_events(self, columns: Sequence[str] | None = None,
                    events: Sequence[str] | None = None) -> pd.DataFrame:
        """Only ``columns`` of the rows whose event is one of ``events`` (all when
        None), in time order, without loading the rest of the table."""
        cols = list(columns) if columns is not None else list(EVENT_COLUMNS)
        if self._events is not None:
            frame = self._events
            if events is not None:
                frame = frame[frame["event"].isin(list(events))]
            return frame[cols].reset_index(drop=True)
        return _time_ordered(_scan(self._dataset(), cols, events).to_pandas())

    def event_table(self, columns: Sequence[str], events: Sequence[str] | None = None,
                    ) -> pa.Table:
        """As :meth:`scan_events`, as a pyarrow table in the stored row order."""
        if self._events is not None:
            frame = self.scan_events(columns, events)
            return pa.Table.from_pandas(frame, preserve_index=False)
        return _scan(self._dataset(), list(columns), events)

    def event_batches(self, columns: Sequence[str], events: Sequence[str] | None = None,
                      ) -> Iterator[pa.RecordBatch]:
        """``columns`` of the rows whose event is one of ``events``, a record batch
        (a row group) at a time: memory stays bounded however large the run."""
        if self._events is not None:
            yield from self.event_table(columns, events).to_batches()
            return
        yield from _filtered_batches(self._dataset(), list(columns), events)

    def _dataset(self) -> ds.Dataset:
        assert self._events_path is not None
        return open_dataset(self._events_path)

    @property
    def nodes(self) -> pd.DataFrame:
        """The run's validators: index, key (hex), alt_name, region, epoch."""
        if self._nodes is None:
            self._nodes = read_nodes(self.path).to_pandas() if self.path is not None \
                else pd.DataFrame(columns=list(NODE_COLUMNS))
        return self._nodes

    def events_with_keys(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The events with ``node_key`` and ``peer_key`` (hex) joined back from
        ``nodes``; ``peer_key`` is empty where ``peer`` is -1."""
        frame = self.scan_events(columns) if columns is not None else self.events.copy()
        keys = pd.Series(self.nodes["key"].to_numpy(), index=self.nodes["index"].to_numpy())
        frame["node_key"] = frame["node"].map(keys).fillna("").astype(str)
        frame["peer_key"] = frame["peer"].map(keys).fillna("").astype(str)
        return frame

    @cached_property
    def delivery(self) -> Delivery | None:
        """The block and assurance tables of a run with slot traffic, else None."""
        if self.path is None:
            return None
        from jamsim.analysis.delivery import load_delivery

        return load_delivery(self.path)

    @cached_property
    def sessions(self) -> pd.DataFrame:
        return _in_parts(derive_sessions, self._session_rows, self.end_time, links=False)

    @cached_property
    def links(self) -> pd.DataFrame:
        return _in_parts(derive_links, self._session_rows, self.end_time, links=True)

    @cached_property
    def _session_rows(self) -> pd.DataFrame:
        rows = self.scan_events(_SESSION_COLUMNS, SESSION_EVENTS)
        # the derivations compare event names as plain strings
        for column in ("event", "reason"):
            rows[column] = rows[column].astype(object)
        return rows

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

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete: {self.incomplete_reason}"
        return f"Run({self.name!r}, {self.validators} validators, {state})"


PART_ROWS = 300_000
"""Session rows derived at once at most: the whole-array derivations hold a few
dozen temporaries per row, ~0.5 GB for the 2 million rows of a 1023-validator
region cut, so larger tables are derived in parts of whole nodes (sessions) or
whole pairs (links) and concatenated; the result is the same table."""


def _in_parts(derive: Callable[[pd.DataFrame, float], pd.DataFrame], rows: pd.DataFrame,
              end_time: float, *, links: bool) -> pd.DataFrame:
    """``derive(rows, end_time)``, a range of nodes (sessions: by ``node``; links:
    by the pair's smaller index) at a time when ``rows`` is large. A node's
    lifecycle rows (crash, restart) end its sessions, so for links they go to
    every part; for sessions they go with their node."""
    if len(rows) <= PART_ROWS:
        return derive(rows, end_time)
    node = rows["node"].to_numpy(dtype=np.int64)
    peer = rows["peer"].to_numpy(dtype=np.int64)
    lifecycle = rows["event"].isin(list(PROCESS_ENDS)).to_numpy()
    key = np.where(lifecycle, -1, np.minimum(node, peer)) if links else node
    parts = -(-len(rows) // PART_ROWS)
    keyed = key[key >= 0]
    bounds: list[int] = np.unique(np.quantile(
        keyed, np.linspace(0, 1, parts + 1)[1:-1], method="lower")).astype(int).tolist() \
        if len(keyed) else []
    edges = [-1, *bounds, int(key.max(initial=0))]
    tables = []
    for low, high in itertools.pairwise(edges):
        take = (key > low) & (key <= high)
        if links:
            take |= lifecycle
        tables.append(derive(rows[take], end_time))
    order = ["up_at", "a", "b"] if links else ["up_at", "node", "peer"]
    merged = pd.concat([t for t in tables if len(t)] or tables[:1], ignore_index=True)
    return merged.sort_values(order, kind="stable").reset_index(drop=True)


def _filtered_batches(dataset: ds.Dataset, columns: list[str],
                      events: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    """Batches of ``columns``, rows filtered on the event name by its dictionary
    code, one row group at a time and on this thread: pyarrow's own filtered,
    threaded scan held ~30% more memory at once on a 21-million-row table."""
    wanted = list(events) if events is not None else None
    read = columns if wanted is None or "event" in columns else [*columns, "event"]
    for batch in dataset.to_batches(columns=read, use_threads=False, batch_readahead=1,
                                    fragment_readahead=1):
        if wanted is not None:
            names = batch.column(read.index("event"))
            if pa.types.is_dictionary(names.type):
                known = np.isin(names.dictionary.to_numpy(zero_copy_only=False), wanted)
                keep = known[names.indices.to_numpy(zero_copy_only=False)]
            else:
                keep = np.isin(names.to_numpy(zero_copy_only=False), wanted)
            batch = batch.filter(pa.array(keep))
            if read is not columns:
                batch = batch.select(columns)
        if batch.num_rows:
            yield batch


def _scan(dataset: ds.Dataset, columns: list[str], events: Sequence[str] | None) -> pa.Table:
    batches = list(_filtered_batches(dataset, columns, events))
    schema = pa.schema([dataset.schema.field(c) for c in columns])
    return pa.Table.from_batches(batches, schema=schema)


def _timeline_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = [{"at": float(e["at"]), "action": str(e.get("action", "")),
             "label": str(e.get("label", e.get("action", "")))}
            for e in summary.get("timeline", [])]
    return pd.DataFrame(rows, columns=["at", "action", "label"])


def _time_ordered(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` stably sorted by time with a fresh index. Runtimes write rows in
    time order, so the sort (a 2.5-million-row copy, ~2 s) is skipped when it
    would be the identity."""
    if "time" not in events or events["time"].is_monotonic_increasing:
        return events.reset_index(drop=True)
    return events.sort_values("time", kind="stable").reset_index(drop=True)


def run_from_tables(events: pd.DataFrame, connectivity: pd.DataFrame | None = None,
                    summary: dict[str, Any] | None = None, *, name: str = "run",
                    validators: int | None = None, end_time: float | None = None,
                    path: Path | None = None) -> Run:
    """Build a :class:`Run` from in-memory tables (used by tests and notebooks)."""
    summary = dict(summary or {})
    events = _time_ordered(events.reindex(columns=list(EVENT_COLUMNS))
                           if list(events.columns) != list(EVENT_COLUMNS) else events)
    connectivity = _connectivity_frame(connectivity)
    if validators is None:
        validators = int(summary.get("validators") or 0)
        if not validators and len(events):
            validators = int(max(events["node"].max(), events["peer"].max())) + 1
    if end_time is None:
        end_time = _end_time(summary, float(events["time"].max()) if len(events) else None,
                             connectivity)
    return Run(str(summary.get("name", name)) if name == "run" else name, events=events,
               connectivity=connectivity, summary=summary, validators=validators,
               end_time=end_time, timeline=_timeline_frame(summary), path=path,
               complete=bool(summary.get("complete", True)),
               incomplete_reason=summary.get("error"))


def _connectivity_frame(connectivity: pd.DataFrame | None) -> pd.DataFrame:
    if connectivity is None:
        connectivity = pd.DataFrame(columns=list(CONNECTIVITY_COLUMNS))
    return connectivity.sort_values("time", kind="stable").reset_index(drop=True)


def _end_time(summary: dict[str, Any], last_event: float | None,
              connectivity: pd.DataFrame) -> float:
    candidates = [float(summary.get("simulated_s") or summary.get("duration_s") or 0.0)]
    candidates += [last_event] if last_event is not None else []
    candidates += [float(connectivity["time"].max())] if len(connectivity) else []
    return max(candidates)


def _last_event_time(dataset: ds.Dataset) -> float | None:
    """Latest event time, one column batch at a time (bounded memory)."""
    latest: float | None = None
    for batch in dataset.to_batches(columns=["time"]):
        if batch.num_rows:
            value = pc.max(batch.column(0)).as_py()
            latest = value if latest is None else max(latest, value)
    return latest


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Open a results folder (events, connectivity, nodes, summary.json) lazily.

    A folder whose run was interrupted or killed loads too: ``run.complete`` is
    False and ``run.incomplete_reason`` says why.
    """
    p = Path(path)
    events_file = p / "events.parquet"
    if not table_exists(events_file):
        raise UsageError(f"{p}: not a results folder (no events.parquet)")
    conn_file = p / "connectivity.parquet"
    connectivity = _connectivity_frame(
        read_table(conn_file).to_pandas() if table_exists(conn_file) else None)
    summary_file = p / "summary.json"
    summary: dict[str, Any] = (json.loads(summary_file.read_text())
                               if summary_file.is_file() else {})
    complete, reason = _completeness(summary, events_file, conn_file)
    simulated = summary.get("simulated_s")
    last = None if complete and simulated is not None \
        else _last_event_time(open_dataset(events_file))
    validators = int(summary.get("validators") or 0) or len(read_nodes(p))
    return Run(name or str(summary.get("name") or p.name), events_path=events_file,
               connectivity=connectivity, summary=summary, validators=validators,
               end_time=_end_time(summary, last, connectivity),
               timeline=_timeline_frame(summary), path=p, complete=complete,
               incomplete_reason=reason)


def _completeness(summary: dict[str, Any], *tables: Path) -> tuple[bool, str | None]:
    if not summary:
        return False, "no summary.json: the run was killed before it wrote one"
    if summary.get("complete") is not True:
        return False, str(summary.get("error") or "the run did not finish")
    for table in tables:
        if not table_is_closed(table):
            return False, f"{table.name} was never closed"
    return True, None
