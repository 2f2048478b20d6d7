"""Delivery tables: per-slot batches written as crash-safe parts, read back exactly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jamsim.telemetry.writer import read_table
from jamsim.traffic.records import (
    ASSURANCE_SCHEMA,
    BLOCK_SCHEMA,
    AssuranceDelivery,
    BlockDelivery,
    DeliveryWriter,
    assurances_batch,
    blocks_batch,
)


def test_blocks_round_trip_with_parts(tmp_path: Path) -> None:
    path = tmp_path / "blocks.parquet"
    writer = DeliveryWriter(path, BLOCK_SCHEMA, flush_every=2)
    for slot in range(5):
        rows = [BlockDelivery(slot, 1, n, slot * 6.0 + n if n != 2 else math.nan,
                              1 if n != 2 else -1, 1 if n != 2 else -1) for n in range(3)]
        writer.append(blocks_batch(slot, 1, rows))
    # an interrupted run: two parts on disk (4 slots), the 5th still pending
    partial = read_table(path, BLOCK_SCHEMA).to_pandas()
    assert sorted(set(partial.slot)) == [0, 1, 2, 3]
    writer.close()
    df = read_table(path, BLOCK_SCHEMA).to_pandas()
    assert len(df) == 15
    assert df.loc[(df.slot == 4) & (df.node == 1), "received_at"].item() == 25.0
    assert np.isnan(df.loc[(df.slot == 3) & (df.node == 2), "received_at"].item())
    assert list(df.columns) == BLOCK_SCHEMA.names


def test_assurances_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "assurances.parquet"
    with DeliveryWriter(path, ASSURANCE_SCHEMA) as writer:
        writer.append(assurances_batch(3, 0, [
            AssuranceDelivery(3, 0, 0, 16.0, 16.0),
            AssuranceDelivery(3, 0, 1, 16.0, math.nan),
        ]))
    df = read_table(path, ASSURANCE_SCHEMA).to_pandas()
    assert df.assurer.tolist() == [0, 1]
    assert df.delivered_at.isna().tolist() == [False, True]
    assert list(df.columns) == ASSURANCE_SCHEMA.names
