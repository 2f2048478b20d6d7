"""Nothing recorded is lost when a run is cut short, and every output agrees.

A real ``jamsim run`` process is killed (SIGKILL) or terminated (SIGTERM, SIGINT)
once its first rows are on disk -- the condition waited for is the first part
file appearing, never a fixed sleep -- and the folder is then read back the way
a user would: ``load_run`` and ``jamsim report``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jamsim.analysis import load_run, metrics
from jamsim.analysis.compare import compare
from jamsim.analysis.report import render_report
from jamsim.cli import app
from jamsim.scenario.runner import run_scenario
from jamsim.telemetry.writer import read_nodes, read_table

# Long enough in virtual time that a kill always lands mid-run: the first part
# file appears after 1% of it (a few seconds of CPU); the rest is never simulated.
LONG = ("name: long\nseed: 5\nduration: 10h\nsample_interval: 10s\n"
        "validators: {count: 8}\npolicy: {preset: jamnp-s, idle_timeout: 5s}\n"
        "timeline:\n  - {at: 20s, partition: [['0..3'], ['4..7']]}\n"
        "  - {at: 40s, heal: all}\n")


def _start(tmp_path: Path, scenario: str = LONG, *options: str,
           ) -> tuple[subprocess.Popen[str], Path]:
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jamsim", "run", str(path), "--quiet",
                             "--out", str(out), *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, out


def _wait_for_parts(proc: subprocess.Popen[str], out: Path, timeout: float = 120) -> None:
    """Until the first events part file exists (bounded poll of a condition)."""
    deadline = time.monotonic() + timeout
    while not list((out / "events.parts").glob("part-*.parquet")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no part file was ever written"
        time.sleep(0.05)


def test_sigkill_half_way_leaves_readable_tables_marked_incomplete(tmp_path: Path) -> None:
    proc, out = _start(tmp_path)
    try:
        _wait_for_parts(proc, out)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "events.parquet").exists()  # never consolidated
    events = read_table(out / "events.parquet")  # the parts, read the same way
    assert events.num_rows > 0
    assert set(events.column("event").to_pylist()) >= {"connecting_out", "connected_out"}
    assert len(read_nodes(out)) == 8
    run = load_run(out)
    assert not run.complete and "killed" in str(run.incomplete_reason)
    assert len(run.events) == events.num_rows
    assert metrics.time_to_full_mesh(run) <= 10  # the bootstrap is there
    report = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(out), "--out", str(report)])
    assert result.exit_code == 0, result.output
    assert "is an incomplete run (the run did not finish: killed" in result.output
    assert "incomplete: the run did not finish: killed" in report.read_text()  # its badge


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_finish_the_folder_marked_incomplete(
        tmp_path: Path, sig: signal.Signals) -> None:
    proc, out = _start(tmp_path)
    try:
        _wait_for_parts(proc, out)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["passed"] is False
    assert summary["error"] == f"interrupted by {sig.name}"
    # finished as a directory table, no parts left behind
    assert (out / "events.parquet").is_dir() and not (out / "events.parts").exists()
    events = read_table(out / "events.parquet")
    assert sum(summary["metrics"]["event_counts"].values()) == events.num_rows > 0
    assert 0 < summary["simulated_s"] < 36000
    run = load_run(out)
    assert not run.complete and run.incomplete_reason == summary["error"]


def _runs(tmp_path: Path) -> dict[str, Path]:
    """A finished run, one with reconnections and verdicts, one interrupted."""
    folders = {"quickstart": tmp_path / "q", "pct": tmp_path / "p",
               "interrupted": tmp_path / "i"}
    run_scenario("quickstart", out_dir=folders["quickstart"], plots=False)
    pct = tmp_path / "pct.yaml"
    pct.write_text(
        "name: pct\nseed: 1\nduration: 40s\nvalidators: {count: 6}\n"
        "network: {latency: {default: 20ms}}\npolicy: {preset: jamnp-s, idle_timeout: 5s}\n"
        "timeline:\n  - {at: 5s, partition: [['0..2'], ['3..5']]}\n  - {at: 15s, heal: all}\n"
        "expect:\n  - reconnect_p99: {below: 30s, after: 5s}\n"
        "  - max_retries_per_pair: 100\n")
    run_scenario(pct, out_dir=folders["pct"], plots=False)

    def interrupt(now: float, until: float, sample: object, events: int) -> None:
        if now >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenario("quickstart", out_dir=folders["interrupted"], progress=interrupt,
                     plots=False)
    return folders


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_summary_report_and_analysis_agree(tmp_path: Path) -> None:
    folders = _runs(tmp_path)
    runs = [load_run(p) for p in folders.values()]
    table = compare(runs, list(folders))
    html = render_report(runs, list(folders))
    for label, run in zip(folders, runs, strict=True):
        summary = json.loads((folders[label] / "summary.json").read_text())
        # analysis recomputes exactly what summary.json holds
        assert json.loads(json.dumps(metrics.run_metrics(run))) == summary["metrics"], label
        assert run.complete is summary["complete"]
        # the report's comparison table is the same numbers
        row = table.loc[label]
        for key, value in summary["metrics"].items():
            if key == "time_to_full_mesh_after_s":
                for event, took in value.items():
                    got = row[f"ttfm_after[{event}]_s"]
                    assert (took is None and (got is None or math.isnan(got))) or \
                        got == took, (label, event)
            elif not isinstance(value, dict):
                got = row[key]
                assert (value is None and (got is None or math.isnan(got))) or \
                    _same(got, value), (label, key, got, value)
    # the comparison flags exactly the interrupted run
    assert "<h2>Comparison</h2>" in html
    assert '<p class="fail">Incomplete: interrupted; ' in html
    pct = json.loads((folders["pct"] / "summary.json").read_text())
    assert pct["metrics"]["reconnections"] > 0
    verdicts = {v["expectation"]: v for v in pct["expectations"]}
    assert verdicts["reconnect_p99"]["measured"] <= pct["metrics"]["reconnect_max_s"]
    assert verdicts["max_retries_per_pair"]["measured"] == \
        pct["metrics"]["max_failed_dials_per_pair"]
    interrupted = json.loads((folders["interrupted"] / "summary.json").read_text())
    assert interrupted["complete"] is False and interrupted["metrics"]["event_counts"]


@pytest.mark.docker
@pytest.mark.slow
def test_docker_run_interrupted_after_its_full_mesh_keeps_its_events(tmp_path: Path) -> None:
    """Ctrl-C on `jamsim run --testnet docker` used to write 0 events: rows are now
    streamed from the collector at every sample, so what came before stays."""
    from jamsim.testnet.docker_cli import engine_reachable

    if not engine_reachable():
        pytest.skip("no Docker engine reachable")
    proc, out = _start(tmp_path, "name: docker-records\nseed: 4\nduration: 300s\n"
                                 "sample_interval: 1s\nvalidators: {count: 3}\n"
                                 "policy: {preset: jamnp-s, idle_timeout: 3s, max_retry: 2s}\n",
                       "--testnet", "docker")
    connected = 0
    try:
        deadline = time.monotonic() + 600  # the node image may be rebuilt first
        while connected < 6:  # both ends of all three pairs reported their connection
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the mesh never showed in the tables"
            time.sleep(0.2)  # bounded poll of the part files, not a guess of timing
            if list((out / "events.parts").glob("part-*.parquet")):
                events = read_table(out / "events.parquet").column("event").to_pylist()
                connected = sum(e in ("connected_out", "connected_in") for e in events)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["runtime"] == "testnet:docker"
    run = load_run(out)
    assert not run.complete
    counts = summary["metrics"]["event_counts"]
    assert counts.get("connected_out", 0) + counts.get("connected_in", 0) >= connected
    assert set(run.events["node"]) == {0, 1, 2}
    assert len(read_nodes(out)) == 3
    assert run.connectivity["links_usable"].max() == 3


def test_a_failing_summary_still_leaves_a_folder_marked_incomplete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jamsim.scenario.runner as runner

    def broken(run: object) -> dict[str, object]:
        raise ValueError("no metrics today")

    monkeypatch.setattr(runner, "run_metrics", broken)
    with pytest.raises(ValueError, match="no metrics today"):
        run_scenario("quickstart", out_dir=tmp_path, plots=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] is False and summary["passed"] is False
    assert summary["error"] == "summary failed: ValueError: no metrics today"
    assert read_table(tmp_path / "events.parquet").num_rows > 0
