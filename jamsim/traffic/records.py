"""Delivery tables every runtime writes: ``blocks.parquet`` and ``assurances.parquet``.

``blocks.parquet``, one row per (slot, validator of the current set):

=============  =======  =====================================================
``slot``       int64    the slot whose block this is
``author``     int64    its author (validator index)
``node``       int64    the validator this row is about
``received_at`` float64 seconds since the run start when ``node`` had the block
                        (the author: the slot start); NaN if never within the run
``hops``       int64    grid hops from the author (0 for the author); -1 if never
``via``        int64    the peer it fetched the block from with CE 128; -1 for
                        the author and for nodes that never got it
=============  =======  =====================================================

``assurances.parquet``, one row per (slot, assurer), the author's own included:

=================  =======  =================================================
``slot``           int64    the slot the assurance is for
``author``         int64    that slot's author, the recipient measured
``assurer``        int64    the sender (validator index)
``sent_at``        float64  when it was sent; NaN if the assurer was down
``delivered_at``   float64  when the author had it; NaN if never. Delivered *in
                            time* means ``delivered_at < slot start``
=================  =======  =================================================

Why one row per assurer rather than a per-slot count: the table stays exact (which
assurers' messages failed: the cut region, the crashed node), the per-slot
aggregates are one ``groupby``, and at V=1023 a 10-minute run is only ~100k rows.
The assurances to the other V-2 validators are sent (and load the links) but not
recorded: the author is the only recipient whose copy decides the block.

Rows are written per slot as columnar batches (:class:`BlockBatch`,
:class:`AssuranceBatch`) through the same crash-tolerant part-file writer as the
event table, a part every ``flush_every`` slots, so a long V=1023 run never holds
more than that many slots in memory. Runtimes that observe deliveries one by one
(real nodes) build rows (:class:`BlockDelivery`, :class:`AssuranceDelivery`) and
turn them into batches with :func:`blocks_batch` / :func:`assurances_batch`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from jamsim.telemetry.writer import TableWriter

__all__ = [
    "ASSURANCES_FILE",
    "ASSURANCE_SCHEMA",
    "BLOCKS_FILE",
    "BLOCK_SCHEMA",
    "AssuranceBatch",
    "AssuranceDelivery",
    "BlockBatch",
    "BlockDelivery",
    "DeliveryTables",
    "DeliveryWriter",
    "assurances_batch",
    "blocks_batch",
]

BLOCKS_FILE: Final = "blocks.parquet"
ASSURANCES_FILE: Final = "assurances.parquet"
NEVER: Final = -1
"""``hops`` / ``via`` of a node that never got the block."""

BLOCK_SCHEMA = pa.schema([
    ("slot", pa.int64()),
    ("author", pa.int64()),
    ("node", pa.int64()),
    ("received_at", pa.float64()),
    ("hops", pa.int64()),
    ("via", pa.int64()),
])
ASSURANCE_SCHEMA = pa.schema([
    ("slot", pa.int64()),
    ("author", pa.int64()),
    ("assurer", pa.int64()),
    ("sent_at", pa.float64()),
    ("delivered_at", pa.float64()),
])

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BlockDelivery:
    """One row of ``blocks.parquet`` (see the module docstring)."""

    slot: int
    author: int
    node: int
    received_at: float
    hops: int
    via: int


@dataclass(frozen=True, slots=True)
class AssuranceDelivery:
    """One row of ``assurances.parquet`` (see the module docstring)."""

    slot: int
    author: int
    assurer: int
    sent_at: float
    delivered_at: float


@dataclass(frozen=True, slots=True, eq=False)
class _SlotBatch:
    """One slot's rows of a delivery table as columns: ``slot`` and ``author`` once,
    then one array per further column of ``SCHEMA``, as a field of that name.

    The schema is the one list of a table's columns: the arrow table and the
    batch built from row objects both follow it, field by field.
    """

    SCHEMA: ClassVar[pa.Schema]

    slot: int
    author: int

    def table(self) -> pa.Table:
        fields = list(self.SCHEMA)[2:]
        columns = [getattr(self, f.name) for f in fields]
        return pa.Table.from_arrays([
            *_slot_columns(self.slot, self.author, len(columns[0])),
            *(pa.array(column, type=f.type) for column, f in zip(columns, fields, strict=True)),
        ], schema=self.SCHEMA)

    @classmethod
    def of_rows(cls, slot: int, author: int,
                rows: Sequence[BlockDelivery] | Sequence[AssuranceDelivery]) -> Self:
        """Columns of ``rows`` (all of ``slot``), as a batch for :class:`DeliveryWriter`."""
        # The dataclasses below take slot, author, then the columns in schema order.
        return cls(slot, author, *(
            np.array([getattr(r, f.name) for r in rows], dtype=f.type.to_pandas_dtype())
            for f in list(cls.SCHEMA)[2:]))


def _slot_columns(slot: int, author: int, rows: int) -> list[pa.Array]:
    """The ``slot`` and ``author`` columns every delivery table starts with."""
    return [pa.array(np.full(rows, slot, dtype=np.int64)),
            pa.array(np.full(rows, author, dtype=np.int64))]


@dataclass(frozen=True, slots=True, eq=False)
class BlockBatch(_SlotBatch):
    """One slot's block rows as columns (``node``, ``received_at``, ``hops``, ``via``)."""

    SCHEMA: ClassVar[pa.Schema] = BLOCK_SCHEMA

    node: IntArray
    received_at: FloatArray
    hops: IntArray
    via: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class AssuranceBatch(_SlotBatch):
    """One slot's assurance rows as columns (``assurer``, ``sent_at``, ``delivered_at``)."""

    SCHEMA: ClassVar[pa.Schema] = ASSURANCE_SCHEMA

    assurer: IntArray
    sent_at: FloatArray
    delivered_at: FloatArray


def blocks_batch(slot: int, author: int, rows: Sequence[BlockDelivery]) -> BlockBatch:
    """Columns of ``rows`` (all of ``slot``), as a batch for :class:`DeliveryWriter`."""
    return BlockBatch.of_rows(slot, author, rows)


def assurances_batch(slot: int, author: int,
                     rows: Sequence[AssuranceDelivery]) -> AssuranceBatch:
    """Columns of ``rows`` (all of ``slot``), as a batch for :class:`DeliveryWriter`."""
    return AssuranceBatch.of_rows(slot, author, rows)


Batch = BlockBatch | AssuranceBatch


class DeliveryWriter(TableWriter[Batch]):
    """Appends per-slot batches; writes a crash-safe part every ``flush_every`` slots.

    ``close()`` merges the parts into the final file;
    :func:`jamsim.telemetry.writer.read_table` reads it (or the parts of an
    interrupted run) with the schema.
    """

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema, *,
                 flush_every: int = 20) -> None:
        super().__init__(path, schema, flush_every=flush_every)

    def _table(self, rows: list[Batch]) -> pa.Table:
        return pa.concat_tables([batch.table() for batch in rows])


class DeliveryTables:
    """A run's two delivery tables, ``blocks.parquet`` and ``assurances.parquet`` in
    ``out_dir``, written side by side: every traffic source (the ``model`` overlay,
    the ``quic`` fidelity's streams, a testnet's receipts) appends its per-slot
    batches here, so all of them produce the same files."""

    def __init__(self, out_dir: str | os.PathLike[str], *, flush_every: int = 20) -> None:
        self.blocks = DeliveryWriter(os.path.join(out_dir, BLOCKS_FILE), BLOCK_SCHEMA,
                                     flush_every=flush_every)
        self.assurances = DeliveryWriter(os.path.join(out_dir, ASSURANCES_FILE),
                                         ASSURANCE_SCHEMA, flush_every=flush_every)

    def close(self) -> None:
        """Merge both tables' parts into their final files."""
        self.blocks.close()
        self.assurances.close()
