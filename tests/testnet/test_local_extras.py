"""Extra CE messages on a local testnet of real ``jamsim node`` processes, through
``jamsim run --testnet local``: the nodes carry them on streams of their kind, the
harness gathers the receipts and writes ``messages.parquet`` and the figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamsim.scenario.runner import run_scenario
from jamsim.telemetry.writer import read_table
from jamsim.traffic.records import MESSAGE_SCHEMA

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_local_testnet_records_extra_message_receipts(tmp_path: Path) -> None:
    scenario = tmp_path / "extras.yaml"
    scenario.write_text(
        "name: local-extras\nseed: 3\nduration: 10s\nsample_interval: 1s\n"
        "validators: {count: 4}\n"
        "traffic:\n  slot: 1s\n  assurance_lead: 300ms\n  block_size: 2000\n"
        "  extra: [{kind: 210, size: 2048, fanout: all, offset: 500ms}]\n"
        "expect:\n  - messages_delivered: {at_least: 99%, after: 5s}\n")
    result = run_scenario(scenario, out_dir=tmp_path / "run", testnet="local", plots=False)
    assert result.passed, result.summary
    table = read_table(tmp_path / "run" / "messages.parquet", MESSAGE_SCHEMA).to_pandas()
    assert set(table["kind"]) == {210} and (table["sender"] != table["receiver"]).all()
    late = table[table["slot"] >= 5]  # connected by then: every message, within the slot
    assert len(late) == 5 * 12 and late["delivered_at"].notna().all()
    latency = late["delivered_at"] - late["sent_at"]
    assert ((latency >= 0) & (latency < 0.5)).all()
    delivery = result.summary["metrics"]["delivery"]
    assert delivery["messages"] == len(table) and delivery["messages_delivered"] > 0.5
