"""Stream a run's tables to its results folder while the run goes.

:class:`RunRecorder` is the sink every runtime feeds (the simulator's ``on_event``
and ``on_sample``, the testnet collector's rows): events go straight to a
streaming :class:`~jamsim.telemetry.writer.EventTableWriter`, so memory holds at
most one row group however long the run, and whatever was flushed is on disk if
the process dies. Only the latest connectivity sample is kept (for progress).

:func:`signals_interrupt` turns SIGTERM (and SIGINT) into :class:`RunInterrupted`,
a ``KeyboardInterrupt``, so a terminated run unwinds through the same ``finally``
as Ctrl-C: tables closed, summary written, folder marked ``"complete": false``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from jamsim.identity import alt_name
from jamsim.telemetry.records import ConnectivitySample, EventRecord, NodeRecord
from jamsim.telemetry.writer import ConnectivityWriter, EventTableWriter, write_nodes

__all__ = ["RunInterrupted", "RunRecorder", "node_records", "signals_deferred",
           "signals_interrupt"]


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``str()`` is the reason."""


class RunRecorder:
    """The tables of one results folder, written as the run goes."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.events = EventTableWriter(out / "events.parquet")
        self.samples = ConnectivityWriter(out / "connectivity.parquet")
        self.latest: ConnectivitySample | None = None
        self.nodes_written = 0

    @property
    def event_count(self) -> int:
        return self.events.rows

    def on_event(self, record: EventRecord) -> None:
        self.events.append(record)

    def on_sample(self, sample: ConnectivitySample) -> None:
        self.latest = sample
        self.samples.append(sample)

    def write_nodes(self, nodes: list[NodeRecord]) -> None:
        """(Re)write ``nodes.parquet`` when the run has more validators than last time."""
        if len(nodes) != self.nodes_written:
            write_nodes(self.out, nodes)
            self.nodes_written = len(nodes)

    def flush(self) -> None:
        """Put every row received so far on disk (a part file per table)."""
        self.events.flush()
        self.samples.flush()

    def close(self) -> None:
        self.events.close()
        self.samples.close()


def node_records(nodes: Iterable[tuple[int, bytes, str, int]]) -> list[NodeRecord]:
    """``(index, key, region, epoch)`` tuples as table rows."""
    return [NodeRecord(index, key.hex(), alt_name(key), region, epoch)
            for index, key, region, epoch in nodes]


@contextmanager
def _run_signals_handled_by(
        handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGTERM and SIGINT go to ``handler`` while inside; the previous handlers after."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGINT raise :class:`RunInterrupted` (main thread
    only: elsewhere signals cannot be handled and this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise RunInterrupted(f"interrupted by {signal.Signals(signum).name}")

    with _run_signals_handled_by(interrupt):
        yield


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT while inside (finishing a results folder must not be
    cut half way by a second Ctrl-C); on leaving, raise :class:`RunInterrupted`
    for the first one that came, unless an exception is already on its way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    with _run_signals_handled_by(hold):
        yield
    if pending:
        raise RunInterrupted(f"interrupted by {signal.Signals(pending[0]).name}")
