"""Turn real nodes' slot-traffic receipts into the simulator's delivery tables.

Each node running :class:`jamsim.net.traffic.NodeTraffic` reports, in its status
reply on the control channel, when it had each recent block (and from whom) and
when each assurance for a slot it authors arrived (Unix seconds). The harness
polls status every sample interval anyway; :class:`TrafficReceipts` merges those
replies (a node killed later keeps what it reported before) and builds the same
per-slot :class:`~jamsim.traffic.records.BlockBatch` /
:class:`~jamsim.traffic.records.AssuranceBatch` rows the ``model`` overlay writes,
so ``blocks.parquet`` and ``assurances.parquet`` compare row for row across
runtimes. Times become seconds since slot 0 started (the run start).

With extra CE messages each node also reports when it sent each kind's
messages of a slot and when each one it received arrived whole;
:meth:`TrafficReceipts.messages` lays them on the schedule's rows, the same
``messages.parquet`` rows the other carriers write.

``hops`` is not measured by a node (it only knows whom it fetched from); it is
the length of the ``via`` chain back to the author, which is exactly the overlay's
definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jamsim.traffic.receipts import hops_from_via
from jamsim.traffic.records import (
    NEVER,
    AssuranceBatch,
    AssuranceDelivery,
    BlockBatch,
    BlockDelivery,
    DeliveryTables,
    MessageBatch,
    MessageDelivery,
    assurances_batch,
    blocks_batch,
    messages_batch,
)
from jamsim.traffic.schedule import SlotSchedule

__all__ = ["TrafficReceipts", "write_delivery_tables"]


class TrafficReceipts:
    """Receipts merged from every node's status replies, by slot."""

    def __init__(self, schedule: SlotSchedule, start_unix: float) -> None:
        self.schedule = schedule
        self.start_unix = start_unix
        n = schedule.validator_count
        self._blocks: list[dict[int, tuple[float, int]]] = [{} for _ in range(n)]
        self._assured: list[dict[int, float]] = [{} for _ in range(n)]
        self._assurances: list[dict[tuple[int, int], float]] = [{} for _ in range(n)]
        self._extra_sent: list[dict[tuple[int, int], float]] = [{} for _ in range(n)]
        self._extras: list[dict[tuple[int, int, int], float]] = [{} for _ in range(n)]

    def update(self, node: int, status: Mapping[str, Any] | None) -> None:
        """Merge one node's ``traffic`` status body (first report of a row wins)."""
        if status is None or not 0 <= node < self.schedule.validator_count:
            return
        for slot, t, via in status.get("blocks", ()):
            self._blocks[node].setdefault(int(slot), (float(t), int(via)))
        for slot, t in status.get("assured", ()):
            self._assured[node].setdefault(int(slot), float(t))
        for slot, assurer, t in status.get("assurances", ()):
            self._assurances[node].setdefault((int(slot), int(assurer)), float(t))
        for slot, kind, t in status.get("extra_sent", ()):
            self._extra_sent[node].setdefault((int(slot), int(kind)), float(t))
        for slot, kind, sender, t in status.get("extras", ()):
            self._extras[node].setdefault((int(slot), int(kind), int(sender)), float(t))

    def _rel(self, t: float | None) -> float:
        return math.nan if t is None else t - self.start_unix

    def blocks(self, slot: int) -> BlockBatch:
        author = self.schedule.author(slot)
        n = self.schedule.validator_count
        seen = [self._blocks[i].get(slot) for i in range(n)]
        hops = hops_from_via(author, [None if e is None else e[1] for e in seen])
        rows = []
        for i in range(n):
            entry = seen[i]
            rows.append(BlockDelivery(
                slot, author, i, self._rel(entry[0] if entry else None), hops[i],
                entry[1] if entry is not None and i != author else NEVER))
        return blocks_batch(slot, author, rows)

    def assurances(self, slot: int) -> AssuranceBatch:
        author = self.schedule.author(slot)
        got = self._assurances[author]
        rows = [
            AssuranceDelivery(slot, author, j, self._rel(self._assured[j].get(slot)),
                              self._rel(got.get((slot, j))))
            for j in range(self.schedule.validator_count)
        ]
        return assurances_batch(slot, author, rows)

    def messages(self, slot: int) -> MessageBatch:
        """Every scheduled extra message of ``slot``, sent and received when."""
        rows = []
        for index, extra in enumerate(self.schedule.config.extra):
            for j in range(self.schedule.validator_count):
                sent = self._rel(self._extra_sent[j].get((slot, extra.kind)))
                for dst in self.schedule.extra_targets(slot, j, index):
                    got = self._rel(self._extras[dst].get((slot, extra.kind, j)))
                    rows.append(MessageDelivery(slot, extra.kind, j, dst, sent, got))
        return messages_batch(slot, rows)

    def slots(self, duration: float) -> range:
        """Slots measured in a run of ``duration`` s (:meth:`SlotSchedule.slots`)."""
        return self.schedule.slots(duration)

    def batches(self, duration: float) -> Iterator[tuple[BlockBatch, AssuranceBatch]]:
        for slot in self.slots(duration):
            yield self.blocks(slot), self.assurances(slot)


def write_delivery_tables(receipts: TrafficReceipts, run_dir: Path, duration: float) -> None:
    """Write ``blocks.parquet`` and ``assurances.parquet`` (and ``messages.parquet``
    when the run sends extra CE messages) into ``run_dir``."""
    extras = bool(receipts.schedule.config.extra)
    tables = DeliveryTables(run_dir, messages=extras)
    for block_batch, assurance_batch in receipts.batches(duration):
        tables.blocks.append(block_batch)
        tables.assurances.append(assurance_batch)
        if extras:
            tables.append_messages(receipts.messages(block_batch.slot))
    tables.close()
