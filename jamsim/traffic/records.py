"""Delivery tables every runtime writes: ``blocks.parquet``, ``assurances.parquet``
and, with extra CE messages, ``messages.parquet``.

``blocks.parquet``, one row per (slot, validator of the current set):

=============  =======  =====================================================
``slot``       int64    the slot whose block this is
``author``     int64    its author (validator index)
``node``       int64    the validator this row is about
``received_at`` float64 seconds since the run start when ``node`` had the block
                        (the author: the slot start); NaN if never, or too late
                        to be recorded (:mod:`jamsim.traffic.late`)
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
``delivered_at``   float64  when the author had it; NaN if never or too late
                            to be recorded (:mod:`jamsim.traffic.late`).
                            Delivered *in time* means ``delivered_at < slot
                            start``
=================  =======  =================================================

``messages.parquet``, only for runs with extra CE messages (``traffic: extra``),
one row per scheduled (slot, kind, sender, receiver):

=================  =======  =================================================
``slot``           int64    the slot the message was sent in
``kind``           int64    its CE stream kind (128-255)
``sender``         int64    validator index
``receiver``       int64    validator index
``sent_at``        float64  when its sender sent its messages of that kind
                            in that slot; NaN if the sender was down (a live
                            sender without a connection to the receiver has
                            a time here and NaN below)
``delivered_at``   float64  when the receiver had the whole message; NaN if
                            never or too late to be recorded
                            (:mod:`jamsim.traffic.late`). Delivered *within
                            the slot* means
                            ``delivered_at < (slot + 1) * slot length``
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
    "MESSAGES_FILE",
    "MESSAGE_SCHEMA",
    "AssuranceBatch",
    "AssuranceDelivery",
    "BlockBatch",
    "BlockDelivery",
    "DeliveryTables",
    "DeliveryWriter",
    "MessageBatch",
    "MessageDelivery",
    "assurances_batch",
    "blocks_batch",
    "messages_batch",
]

BLOCKS_FILE: Final = "blocks.parquet"
ASSURANCES_FILE: Final = "assurances.parquet"
MESSAGES_FILE: Final = "messages.parquet"
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

MESSAGE_SCHEMA = pa.schema([
    ("slot", pa.int64()),
    ("kind", pa.int64()),
    ("sender", pa.int64()),
    ("receiver", pa.int64()),
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


@dataclass(frozen=True, slots=True)
class MessageDelivery:
    """One row of ``messages.parquet`` (see the module docstring)."""

    slot: int
    kind: int
    sender: int
    receiver: int
    sent_at: float
    delivered_at: float


@dataclass(frozen=True, slots=True, eq=False)
class _SlotBatch:
    """One slot's rows of a delivery table as columns.

    A subclass declares one field per column of its ``SCHEMA``, in schema order:
    the first ``SHARED`` (the slot, and its author where the table has one) are
    one value for the whole slot, every further one is an array. The schema is
    the one list of a table's columns: the arrow table and the batch built from
    row objects both follow it, field by field.
    """

    SCHEMA: ClassVar[pa.Schema]
    SHARED: ClassVar[int]

    def table(self) -> pa.Table:
        fields = list(self.SCHEMA)
        shared, varying = fields[:self.SHARED], fields[self.SHARED:]
        columns = [getattr(self, f.name) for f in varying]
        rows = len(columns[0])
        return pa.Table.from_arrays([
            *(pa.array(np.full(rows, getattr(self, f.name), dtype=np.int64)) for f in shared),
            *(pa.array(column, type=f.type) for column, f in zip(columns, varying, strict=True)),
        ], schema=self.SCHEMA)

    @classmethod
    def of_rows(cls, shared: tuple[int, ...],
                rows: Sequence[BlockDelivery] | Sequence[AssuranceDelivery]
                | Sequence[MessageDelivery]) -> Self:
        """Columns of ``rows`` (all of one slot; ``shared``: the slot-wide values)."""
        return cls(*shared, *(
            np.array([getattr(r, f.name) for r in rows], dtype=f.type.to_pandas_dtype())
            for f in list(cls.SCHEMA)[cls.SHARED:]))


@dataclass(frozen=True, slots=True, eq=False)
class BlockBatch(_SlotBatch):
    """One slot's block rows as columns (``node``, ``received_at``, ``hops``, ``via``)."""

    SCHEMA: ClassVar[pa.Schema] = BLOCK_SCHEMA
    SHARED: ClassVar[int] = 2

    slot: int
    author: int
    node: IntArray
    received_at: FloatArray
    hops: IntArray
    via: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class AssuranceBatch(_SlotBatch):
    """One slot's assurance rows as columns (``assurer``, ``sent_at``, ``delivered_at``)."""

    SCHEMA: ClassVar[pa.Schema] = ASSURANCE_SCHEMA
    SHARED: ClassVar[int] = 2

    slot: int
    author: int
    assurer: IntArray
    sent_at: FloatArray
    delivered_at: FloatArray


@dataclass(frozen=True, slots=True, eq=False)
class MessageBatch(_SlotBatch):
    """Extra CE messages of one slot as columns (one kind or several)."""

    SCHEMA: ClassVar[pa.Schema] = MESSAGE_SCHEMA
    SHARED: ClassVar[int] = 1

    slot: int
    kind: IntArray
    sender: IntArray
    receiver: IntArray
    sent_at: FloatArray
    delivered_at: FloatArray


def messages_batch(slot: int, rows: Sequence[MessageDelivery]) -> MessageBatch:
    """Columns of ``rows`` (all of ``slot``), as a batch for :class:`DeliveryWriter`."""
    return MessageBatch.of_rows((slot,), rows)


def blocks_batch(slot: int, author: int, rows: Sequence[BlockDelivery]) -> BlockBatch:
    """Columns of ``rows`` (all of ``slot``), as a batch for :class:`DeliveryWriter`."""
    return BlockBatch.of_rows((slot, author), rows)


def assurances_batch(slot: int, author: int,
                     rows: Sequence[AssuranceDelivery]) -> AssuranceBatch:
    """Columns of ``rows`` (all of ``slot``), as a batch for :class:`DeliveryWriter`."""
    return AssuranceBatch.of_rows((slot, author), rows)


Batch = BlockBatch | AssuranceBatch | MessageBatch


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
    """A run's delivery tables, ``blocks.parquet`` and ``assurances.parquet`` in
    ``out_dir`` (and ``messages.parquet`` when ``messages`` is true: the run sends
    extra CE messages), written side by side: every traffic source (the ``model``
    overlay, the ``quic`` fidelity's streams, a testnet's receipts) appends its
    per-slot batches here, so all of them produce the same files."""

    def __init__(self, out_dir: str | os.PathLike[str], *, flush_every: int = 20,
                 messages: bool = False) -> None:
        self.blocks = DeliveryWriter(os.path.join(out_dir, BLOCKS_FILE), BLOCK_SCHEMA,
                                     flush_every=flush_every)
        self.assurances = DeliveryWriter(os.path.join(out_dir, ASSURANCES_FILE),
                                         ASSURANCE_SCHEMA, flush_every=flush_every)
        self.messages: DeliveryWriter | None = (
            DeliveryWriter(os.path.join(out_dir, MESSAGES_FILE), MESSAGE_SCHEMA,
                           flush_every=flush_every) if messages else None)

    def append_messages(self, batch: MessageBatch) -> None:
        """Add extra messages (a run without them has no table to add them to)."""
        if self.messages is None:
            raise ValueError("these delivery tables were opened without messages.parquet")
        self.messages.append(batch)

    def close(self) -> None:
        """Merge the tables' parts into their final files."""
        self.blocks.close()
        self.assurances.close()
        if self.messages is not None:
            self.messages.close()
