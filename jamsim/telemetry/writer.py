"""Crash-tolerant, streaming Parquet writers for a run's tables.

A run may be interrupted (Ctrl-C, SIGTERM, a killed container, SIGKILL, an OOM)
and must keep what it recorded, and a full-scale run records tens of millions of
events, which must never all be in memory at once. So rows are buffered only up to
``flush_every`` and then written as a *complete, closed* small Parquet file
``<name>.parts/part-00001.parquet`` (written under a temporary name and renamed, so
a crash mid-write leaves no half file). Why closed part files and not one
``ParquetWriter`` or an Arrow IPC stream: a Parquet file is unreadable until its
footer is written, and an IPC stream of dictionary-encoded batches needs its
dictionaries replayed in order and a reader that tolerates a torn last message;
a directory of closed Parquet files is readable at every instant by pyarrow,
pandas and DuckDB alike, and reading only some columns or row groups of it stays
cheap. :meth:`TableWriter.close` then finishes the table one of two ways:

* the event table (tens of millions of rows) keeps its parts as its final form:
  the directory is renamed, atomically, to ``events.parquet/`` -- a directory
  dataset that pyarrow, pandas and DuckDB read like one file. Consolidating the
  parts into one file re-read and re-wrote every row (a tenth of a full-scale
  run's time) to gain nothing a reader needs;
* small tables (connectivity samples, delivery batches) are merged, one part at a
  time, into one ``<name>.parquet`` file.

:func:`read_table` and :func:`open_dataset` read either final form and otherwise
the parts, so an un-closed run is readable with the same call;
:func:`table_is_closed` says which.

Schemas are fixed (``EVENT_SCHEMA``, ``CONNECTIVITY_SCHEMA``, ``NODE_SCHEMA``),
with columns exactly ``records.EVENT_COLUMNS`` / ``CONNECTIVITY_COLUMNS`` /
``NODE_COLUMNS``: an empty run and a busy one produce the same dtypes, and sim and
testnet tables concatenate. Event rows are compact: validator indices are int32,
the event name, direction and reason are dictionary-encoded (pandas loads them
as categoricals), time is float64 seconds.

The simulator hands the event writer *compact rows* (:data:`COMPACT_COLUMNS`:
numbers only, the event name implied by its JIP-3 kind, the direction and the
reason as small codes), packed as ``records.COMPACT_ROW`` in blocks
(:meth:`EventTableWriter.append_compact_rows`): a block is viewed as numpy
records, so its columns need no per-row conversion, and the dictionary columns
are built from the codes directly (converting strings was half the cost of
turning rows into columns).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from jamsim.core.types import NodeLifecycle, TelemetryKind
from jamsim.telemetry.records import (
    COMPACT_COLUMNS,
    COMPACT_ROW,
    CONNECTIVITY_COLUMNS,
    EVENT_COLUMNS,
    NODE_COLUMNS,
    ConnectivitySample,
    EventRecord,
    NodeRecord,
)

__all__ = [
    "COMPACT_COLUMNS",
    "CONNECTIVITY_SCHEMA",
    "DIRECTION_CODES",
    "EVENT_SCHEMA",
    "NODE_SCHEMA",
    "ConnectivityWriter",
    "EventTableWriter",
    "TableWriter",
    "open_dataset",
    "read_nodes",
    "read_table",
    "table_exists",
    "table_files",
    "table_is_closed",
    "write_nodes",
]

_EVENT_TYPES: dict[str, pa.DataType] = {
    "time": pa.float64(),
    "node": pa.int32(),
    "peer": pa.int32(),
    # JIP-3 event names and directions are a fixed small set; reasons are free text
    # from transports and peers, so their dictionary may grow past 127 entries.
    "event": pa.dictionary(pa.int8(), pa.string()),
    "kind": pa.int16(),
    "direction": pa.dictionary(pa.int8(), pa.string()),
    "reason": pa.dictionary(pa.int32(), pa.string()),
    "attempt": pa.int32(),
    "side": pa.int8(),
}
_CONNECTIVITY_TYPES: dict[str, pa.DataType] = {
    "time": pa.float64(),
    "full_mesh": pa.bool_(),
    "longest_stale": pa.float64(),
}
_NODE_TYPES: dict[str, pa.DataType] = {
    "index": pa.int32(),
    "key": pa.string(),
    "alt_name": pa.string(),
    "region": pa.string(),
    "epoch": pa.int32(),
}

EVENT_SCHEMA = pa.schema([(c, _EVENT_TYPES.get(c, pa.int64())) for c in EVENT_COLUMNS])
CONNECTIVITY_SCHEMA = pa.schema(
    [(c, _CONNECTIVITY_TYPES.get(c, pa.int64())) for c in CONNECTIVITY_COLUMNS])
NODE_SCHEMA = pa.schema([(c, _NODE_TYPES[c]) for c in NODE_COLUMNS])

R = TypeVar("R")

DIRECTION_CODES: dict[str, int] = {"": 0, "out": 1, "in": 2}
_DIRECTIONS = sorted(DIRECTION_CODES, key=DIRECTION_CODES.__getitem__)
_KIND_LABELS: dict[int, str] = {int(k): k.label for k in (*TelemetryKind, *NodeLifecycle)}
_PACK_ROW = COMPACT_ROW.pack
_COMPACT_DTYPE = np.dtype([  # records.COMPACT_ROW as a numpy record (same layout)
    (name, "<" + code) for name, code in zip(
        COMPACT_COLUMNS, ("f8", "i4", "i4", "i2", "i1", "i4", "i4", "i8", "i8", "i8", "i1"),
        strict=True)])
assert _COMPACT_DTYPE.itemsize == COMPACT_ROW.size


class TableWriter(Generic[R]):
    """Append rows; every ``flush_every`` rows (or on :meth:`flush`) write a part.

    Memory held is at most ``flush_every`` rows, however long the run. Rows are
    kept as plain tuples in column order (:meth:`append_row`; :meth:`append` takes
    a record and reads its attributes).
    """

    consolidate = True
    """Whether :meth:`close` merges the parts into one file (else the parts
    directory, renamed, is the final table)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: pa.Schema,
        *,
        flush_every: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.parts_dir = _parts_dir(self.path)
        self.schema = schema
        # Rows are records whose attributes (fields, or properties for derived
        # columns such as ``full_mesh``) are the schema's column names.
        self._columns_of = attrgetter(*schema.names)
        self.flush_every = flush_every
        self._pending: list[Any] = []  # records, or row tuples from append_row
        self._parts = 0
        self.rows_written = 0
        self.closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def rows(self) -> int:
        """Rows appended so far (written or pending)."""
        return self.rows_written + len(self._pending)

    def append(self, row: R) -> None:
        self.append_row(row)

    def append_row(self, row: R | tuple[object, ...]) -> None:
        """One row as a record, or as a tuple of the schema's columns in order.

        Called once per event of a run (tens of millions): kept to an append and a
        length check; a closed writer refuses at the next flush."""
        pending = self._pending
        pending.append(row)
        if len(pending) >= self.flush_every:
            self.flush()

    def extend(self, rows: Iterable[R]) -> None:
        for row in rows:
            self.append(row)

    def flush(self) -> None:
        """Write pending rows as one complete part file (atomic rename)."""
        if self.closed:
            raise ValueError(f"{self.path} writer is closed")
        if not self._pending:
            return
        self._write_part(self._table(self._pending))
        self.rows_written += len(self._pending)
        self._pending.clear()

    def _write_part(self, table: pa.Table) -> None:
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._parts += 1
        final = self.parts_dir / f"part-{self._parts:05d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        # Compressed: a part may be the table's final form (consolidate=False),
        # and zstd cost ~10% more than no compression to write, about the same to read.
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)

    def close(self) -> Path:
        """Flush, then finish the table: consolidate the parts into the final file,
        or (``consolidate`` False) rename the parts directory to the final name."""
        if self.closed:
            return self.path
        self.flush()
        if not self.consolidate:
            self._finish_as_directory()
            return self.path
        # Part by part into one file (a row group each): merging them into one
        # table first held every row in memory at once, the peak of a large run.
        tmp = self.path.with_suffix(".parquet.tmp")
        with pq.ParquetWriter(tmp, self.schema) as merged:
            for part in _part_files(self.parts_dir):
                merged.write_table(pq.read_table(part, schema=self.schema))
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        self.closed = True
        self.flush_every = 0  # the next append flushes, and flush refuses
        return self.path

    def _finish_as_directory(self) -> None:
        if not _part_files(self.parts_dir):  # no rows: one empty part keeps the schema
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.schema.empty_table(), self.parts_dir / "part-00000.parquet")
        if self.path.is_dir():
            shutil.rmtree(self.path)
        elif self.path.exists():
            self.path.unlink()
        os.replace(self.parts_dir, self.path)  # the one step that marks it closed
        self.closed = True
        self.flush_every = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _table(self, rows: list[Any]) -> pa.Table:
        # The row tuples converted in one call, as a struct array of plain value
        # types, then split into columns: ~0.4 us a row, where transposing with
        # zip(*rows) alone cost twice that. Records become tuples of their fields.
        getter = self._columns_of
        tuples = [row if row.__class__ is tuple else getter(row) for row in rows]
        plain = pa.struct([pa.field(f.name, _value_type(f.type)) for f in self.schema])
        columns = pa.array(tuples, type=plain).flatten()
        arrays = [_encoded(column, field.type)
                  for column, field in zip(columns, self.schema, strict=True)]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _value_type(type_: pa.DataType) -> pa.DataType:
    return type_.value_type if pa.types.is_dictionary(type_) else type_


def _encoded(column: pa.Array, type_: pa.DataType) -> pa.Array:
    """``column`` as ``type_``: dictionary columns are encoded from plain strings
    (building a dictionary array from Python values directly costs ~10 us a
    value, encoding a string array ~0.05 us)."""
    if not pa.types.is_dictionary(type_):
        return column
    encoded = column.dictionary_encode()
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(type_.index_type),
                                          encoded.dictionary)


def _parts_dir(path: Path) -> Path:
    return path.with_name(path.stem + ".parts")


def _part_files(parts_dir: Path) -> list[Path]:
    return sorted(parts_dir.glob("part-*.parquet")) if parts_dir.is_dir() else []


def table_files(path: str | os.PathLike[str]) -> list[Path]:
    """The Parquet files holding table ``<name>.parquet``, whatever its state: the
    one consolidated file, the parts of a directory table (a closed event table),
    or the parts an un-closed writer left in ``<name>.parts/``. The one place
    readers learn where a table's rows are."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return _part_files(path)
    return _part_files(_parts_dir(path))


def _schema_for(path: Path) -> pa.Schema:
    stem = path.stem
    if stem.startswith("connectivity"):
        return CONNECTIVITY_SCHEMA
    if stem.startswith("nodes"):
        return NODE_SCHEMA
    return EVENT_SCHEMA


def table_exists(path: str | os.PathLike[str]) -> bool:
    """Whether ``<name>.parquet`` or parts of it exist."""
    return bool(table_files(path))


def table_is_closed(path: str | os.PathLike[str]) -> bool:
    """Whether the table's writer closed normally (a consolidated file or a
    finished directory, and no parts left beside it)."""
    path = Path(path)
    return (path.is_file() or path.is_dir()) and not _part_files(_parts_dir(path))


def open_dataset(path: str | os.PathLike[str], schema: pa.Schema | None = None) -> ds.Dataset:
    """A lazy pyarrow dataset over ``<name>.parquet`` or its parts: nothing is
    read until a scan asks for columns (and, with a filter, row groups)."""
    path = Path(path)
    schema = schema if schema is not None else _schema_for(path)
    return ds.dataset([str(p) for p in table_files(path)], schema=schema, format="parquet")


def read_table(path: str | os.PathLike[str], schema: pa.Schema | None = None,
               columns: Sequence[str] | None = None) -> pa.Table:
    """Read ``<name>.parquet``, or the parts an un-closed writer left behind.

    ``schema`` defaults from the file name (``events``/``connectivity``/``nodes``);
    ``columns`` reads only those.
    """
    dataset = open_dataset(path, schema)
    return dataset.to_table(columns=list(columns) if columns is not None else None)


def _table_file(path: str | os.PathLike[str], default_name: str) -> Path:
    """``path`` itself when it names a ``.parquet`` file, else ``default_name`` inside it."""
    path = Path(path)
    return path if path.suffix == ".parquet" else path / default_name


class EventTableWriter(TableWriter[EventRecord]):
    """Writer of ``events.parquet`` (``directory/events.parquet`` by default), a
    directory table once closed (see the module docstring).

    Takes records (:meth:`append`), full row tuples (:meth:`append_row`) or compact
    rows (:meth:`append_compact` one row tuple at a time, :meth:`append_compact_rows`
    a block of packed rows: the simulator's path), never two kinds at once in one
    part. ``reason_codes`` maps each reason of the compact rows to its code;
    whoever builds the rows fills it (new reasons get the next code).
    """

    consolidate = False

    def __init__(self, path: str | os.PathLike[str], *, flush_every: int = 262_144) -> None:
        super().__init__(_table_file(path, "events.parquet"), EVENT_SCHEMA,
                         flush_every=flush_every)
        self.reason_codes: dict[str, int] = {"": 0}
        self._packed = bytearray()  # compact rows, records.COMPACT_ROW one after another

    @property
    def rows(self) -> int:
        return self.rows_written + len(self._pending) + self._packed_rows()

    def _packed_rows(self) -> int:
        return len(self._packed) // COMPACT_ROW.size

    def append_compact(self, row: tuple[float | int, ...]) -> None:
        """One compact row (:data:`COMPACT_COLUMNS`)."""
        self._packed += _PACK_ROW(*row)
        if self._packed_rows() >= self.flush_every:
            self.flush()

    def append_compact_rows(self, block: bytes | bytearray) -> None:
        """Compact rows packed as :data:`records.COMPACT_ROW` one after another
        (``Simulation(on_rows=...)``): one call per block, not per event."""
        if len(block) % COMPACT_ROW.size:
            raise ValueError(f"a block of compact rows is a multiple of "
                             f"{COMPACT_ROW.size} bytes, not {len(block)}")
        self._packed += block
        if self._packed_rows() >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._packed:
            if self.closed:
                raise ValueError(f"{self.path} writer is closed")
            packed, self._packed = self._packed, bytearray()
            self._write_part(self._compact_table(packed))
            self.rows_written += len(packed) // COMPACT_ROW.size
        super().flush()

    def _compact_table(self, packed: bytearray) -> pa.Table:
        # The packed rows are already columns, strided: one copy each makes them
        # contiguous arrays of the table's types. The three dictionary columns
        # are made from their codes, each dictionary holding just the values used.
        rows = np.frombuffer(packed, dtype=_COMPACT_DTYPE)
        columns = {name: np.ascontiguousarray(rows[name]) for name in COMPACT_COLUMNS}
        del rows  # no view of ``packed`` outlives the conversion
        reasons = {code: reason for reason, code in self.reason_codes.items()}
        coded = {
            "event": _dictionary(columns["kind"], _KIND_LABELS, pa.int8()),
            "direction": _dictionary(columns["direction"], dict(enumerate(_DIRECTIONS)),
                                     pa.int8()),
            "reason": _dictionary(columns["reason"], reasons, pa.int32()),
        }
        arrays = [coded[name] if name in coded else pa.array(columns[name])
                  for name in EVENT_COLUMNS]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _dictionary(column: np.ndarray, names: dict[int, str],
                index_type: pa.DataType) -> pa.DictionaryArray:
    """A dictionary array of the codes in ``column`` whose dictionary holds the
    names of the codes present only, in code order."""
    codes = column.astype(np.int64)
    used = np.flatnonzero(np.bincount(codes)) if len(codes) else np.zeros(0, np.int64)
    unknown = [int(c) for c in used if int(c) not in names]
    if unknown:
        raise ValueError(f"event row codes without a name: {unknown}")
    remap = np.zeros(int(used[-1]) + 1 if len(used) else 1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return pa.DictionaryArray.from_arrays(
        pa.array(remap[codes]).cast(index_type),
        pa.array([names[int(c)] for c in used], type=pa.string()))


class ConnectivityWriter(TableWriter[ConnectivitySample]):
    """Writer of ``connectivity.parquet`` (``directory/connectivity.parquet`` by default)."""

    def __init__(self, path: str | os.PathLike[str], *, flush_every: int = 1_000) -> None:
        super().__init__(_table_file(path, "connectivity.parquet"), CONNECTIVITY_SCHEMA,
                         flush_every=flush_every)


def write_nodes(path: str | os.PathLike[str], nodes: Iterable[NodeRecord]) -> Path:
    """Write (or replace, atomically) ``nodes.parquet`` (``directory/nodes.parquet``).

    Small (one row per validator) and rewritten whole when an epoch adds
    validators, so it is complete at every instant a run can be killed.
    """
    path = Path(path)
    if path.suffix != ".parquet":
        path = path / "nodes.parquet"
    rows = sorted(nodes, key=attrgetter("index"))
    columns = {name: [getattr(r, name) for r in rows] for name in NODE_COLUMNS}
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pydict(columns, schema=NODE_SCHEMA), tmp)
    os.replace(tmp, path)
    return path


def read_nodes(path: str | os.PathLike[str]) -> pa.Table:
    """``nodes.parquet`` of a results folder (or that file); empty if absent."""
    path = Path(path)
    if path.suffix != ".parquet":
        path = path / "nodes.parquet"
    return pq.read_table(path, schema=NODE_SCHEMA) if path.is_file() \
        else NODE_SCHEMA.empty_table()
