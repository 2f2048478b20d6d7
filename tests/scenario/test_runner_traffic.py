"""A simulated run with slot traffic writes delivery tables, metrics, verdicts, a plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jamsim.analysis.report import render_report
from jamsim.analysis.run import load_run
from jamsim.cli import app
from jamsim.scenario.runner import run_scenario
from jamsim.telemetry.writer import read_table
from jamsim.traffic.records import ASSURANCE_SCHEMA, BLOCK_SCHEMA, MESSAGE_SCHEMA

SCENARIO = """\
name: traffic-cut
seed: 4
duration: 60s
validators: {count: 9}
network: {latency: {default: 20ms}}
policy: {preset: jamnp-s}
timeline:
  - {at: 20s, partition: [["0..2"], ["3..8"]]}
  - {at: 35s, heal: all}
expect:
  - block_propagation_p99: {below: 1s, after: heal}
  - blocks_reached: {at_least: 99%, after: heal}
  - blocks_reached: {at_least: 99%}
  - assurances_delivered: {at_least: 90%, after: heal}
"""


def test_run_with_traffic(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    result = run_scenario(path, out_dir=tmp_path / "run")
    out = result.out_dir
    blocks = read_table(out / "blocks.parquet", BLOCK_SCHEMA).to_pandas()
    assurances = read_table(out / "assurances.parquet", ASSURANCE_SCHEMA).to_pandas()
    # slot 0 is genesis; slot 9 ends at 60 s, the run's end
    assert sorted(set(blocks["slot"])) == list(range(1, 10)) and len(blocks) == 81
    assert sorted(set(assurances["slot"])) == list(range(1, 10))
    # slots 4 and 5 (24 s, 30 s) are inside the cut: the author's side only
    for slot in (4, 5):
        rows = blocks[blocks["slot"] == slot]
        author = int(rows["author"].iloc[0])
        side = set(range(3)) if author < 3 else set(range(3, 9))
        got = set(rows.loc[~np.isnan(rows["received_at"]), "node"])
        assert got == side
    summary = json.loads((out / "summary.json").read_text())
    assert [v["passed"] for v in summary["expectations"]] == [True, True, False, True], \
        summary["expectations"]
    delivery = summary["metrics"]["delivery"]
    assert delivery["blocks_reached"] < 0.9
    assert delivery["after"]["heal @ 35s"]["blocks_reached"] == 1.0
    assert "delivery.png" in summary["plots"]


def test_traffic_none_writes_no_delivery_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.split("expect:")[0] + "traffic: none\n")
    result = run_scenario(path, out_dir=tmp_path / "run", plots=False)
    assert not (result.out_dir / "blocks.parquet").exists()
    assert "delivery" not in result.summary["metrics"]


def test_traffic_none_delivery_expectation_is_not_measured(tmp_path: Path) -> None:
    """Exit status 0, the verdict says not measured, and a warning names it; the same
    expectation on a run with traffic that misses its bound still fails the run."""
    path = tmp_path / "s.yaml"
    head = SCENARIO.split("expect:")[0]
    path.write_text(head + "traffic: none\nexpect:\n  - blocks_reached: {at_least: 99%}\n")
    out = tmp_path / "none"
    cli = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    assert cli.exit_code == 0, cli.output
    assert "NOT MEASURED blocks_reached: traffic: none: delivery not measured" in cli.output
    summary = json.loads((out / "summary.json").read_text())
    (verdict,) = summary["expectations"]
    assert verdict["outcome"] == "not measured" and verdict["passed"] is False
    assert summary["passed"] is True
    assert summary["warnings"] == [
        "expectation blocks_reached not measured: traffic: none: delivery not measured; "
        "remove the expectation or enable traffic"]
    assert "NOT MEASURED blocks_reached" in render_report([load_run(out)])

    path.write_text(head + "expect:\n  - blocks_reached: {at_least: 99%}\n")
    missed = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "on"),
                                      "--quiet"])
    assert missed.exit_code == 1, missed.output
    assert "FAIL blocks_reached" in missed.output


def test_run_with_extra_messages_writes_the_table_and_figures(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.split("expect:")[0]
                    + "traffic:\n  extra: [{kind: 200, size: 512, fanout: 2, offset: 1s}]\n"
                    + "expect:\n  - messages_delivered: {at_least: 99%, after: heal}\n"
                    + "  - messages_delivered: {at_least: 99%}\n")
    result = run_scenario(path, out_dir=tmp_path / "run", plots=False)
    table = read_table(result.out_dir / "messages.parquet", MESSAGE_SCHEMA).to_pandas()
    assert sorted(set(table["slot"])) == list(range(1, 10)) and len(table) == 9 * 9 * 2
    assert set(table["kind"]) == {200}
    assert (table["sent_at"] == table["slot"] * 6.0 + 1.0).all()
    cut = table[table["slot"].isin([4, 5])]  # sent at 25 s and 31 s, inside the cut
    crossing = (cut["sender"] < 3) != (cut["receiver"] < 3)
    assert crossing.any() and cut.loc[crossing, "delivered_at"].isna().all()
    assert cut.loc[~crossing, "delivered_at"].notna().all()
    delivery = result.summary["metrics"]["delivery"]
    assert delivery["messages"] == 9 * 9 * 2
    assert delivery["messages_delivered"] == pytest.approx(
        float(table["delivered_at"].notna().mean()))
    assert delivery["message_latency_p50_s"] == pytest.approx(0.02)
    assert delivery["after"]["heal @ 35s"]["messages_delivered"] == 1.0
    assert [v["outcome"] for v in result.summary["expectations"]] == ["pass", "fail"]
