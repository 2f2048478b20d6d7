"""Slot traffic on a local testnet of real ``jamsim node`` processes, through the harness.

Six processes send JAM slot traffic (1 s slots); the harness gathers their receipts
from the status replies and writes ``blocks.parquet`` / ``assurances.parquet``.
Before a partition every node has every block and every author every assurance;
during it, a block reaches exactly its author's side.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from jamsim.telemetry.writer import read_table
from jamsim.testnet.base import Partition
from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.local import LocalProcessBackend
from jamsim.testnet.traffic import TrafficReceipts, write_delivery_tables
from jamsim.traffic.config import TrafficConfig
from jamsim.traffic.records import ASSURANCE_SCHEMA, ASSURANCES_FILE, BLOCK_SCHEMA, BLOCKS_FILE
from jamsim.traffic.schedule import SlotSchedule
from tests.testnet.test_local import _spec

pytestmark = [pytest.mark.slow, pytest.mark.real]

V = 6
CUT = {4, 5}
CONFIG = TrafficConfig(slot=1.0, assurance_lead=0.3, block_size=30_000, first_slot=2)


def _sleep_until(start: float, run_time: float) -> None:
    time.sleep(max(0.0, start + run_time - time.time()))


def test_local_testnet_traffic_delivery_tables_with_a_partition(tmp_path: Path) -> None:
    spec: Spec = _spec(tmp_path, V, traffic=CONFIG)
    schedule = SlotSchedule(V, spec.seed, CONFIG)
    with LocalProcessBackend() as tn:
        tn.up(spec)
        assert tn.spec is not None and tn.spec.traffic_start is not None
        start = tn.spec.traffic_start
        receipts = TrafficReceipts(schedule, start)
        tn.wait_full_mesh(30.0)
        meshed = time.time() - start
        healthy = max(CONFIG.first_slot, math.ceil(meshed + CONFIG.assurance_lead + 0.2))
        _sleep_until(start, healthy + 2.5)
        for i, status in tn.status().items():  # a node may be killed later: keep what it said
            receipts.update(i, status.traffic)
        tn.apply(Partition((tuple(sorted(set(range(V)) - CUT)),)))
        end = healthy + 7
        _sleep_until(start, end + 0.3)
        for i, status in tn.status().items():
            receipts.update(i, status.traffic)
    write_delivery_tables(receipts, tmp_path, end)
    blocks = read_table(tmp_path / BLOCKS_FILE, BLOCK_SCHEMA).to_pandas()
    assurances = read_table(tmp_path / ASSURANCES_FILE, ASSURANCE_SCHEMA).to_pandas()
    assert sorted(blocks.columns) == sorted(BLOCK_SCHEMA.names)
    assert len(blocks) == V * len(range(CONFIG.first_slot, end))

    before = blocks[blocks.slot.between(healthy, healthy + 1)]
    assert before.received_at.notna().all(), before
    for _, row in before.iterrows():
        slot_start = schedule.slot_start(int(row.slot))
        assert slot_start - 0.05 <= row.received_at < slot_start + CONFIG.slot
        assert (row.hops == 0) == (row.node == row.author)
    on_time = assurances[assurances.slot.between(healthy, healthy + 1)]
    assert (on_time.delivered_at < on_time.slot * CONFIG.slot).all(), on_time

    during = blocks[blocks.slot.between(healthy + 3, end - 1)]
    same_side = (during.node.isin(CUT)) == (during.author.isin(CUT))
    assert during[same_side].received_at.notna().all(), during
    assert during[~same_side].received_at.isna().all(), during
    assert (during[~same_side].hops == -1).all()
    cut_off = assurances[assurances.slot.between(healthy + 3, end - 1)]
    across = (cut_off.assurer.isin(CUT)) != (cut_off.author.isin(CUT))
    assert cut_off[across].delivered_at.isna().all()
    assert cut_off[~across].delivered_at.notna().all()
