"""`jamsim keys` and `jamsim testnet up --detach / status / logs / down` through typer."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from jamsim.scenario.testnet_runner import free_base_port
from jamsim.testnet.commands import keys_command
from jamsim.testnet.commands import testnet_app as app_under_test
from jamsim.testnet.keys import load_keys
from tests.testnet.test_local import ROOT, STANDIN, _alive

runner = CliRunner()


def test_keys_command_writes_loadable_file(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(keys_command)
    out = tmp_path / "k.json"
    result = runner.invoke(app, ["4", "--out", str(out), "--seed", "s1", "--regions", "eu,us"])
    assert result.exit_code == 0, result.output
    _genesis, vset, _ids = load_keys(out)
    assert [v.region for v in vset] == ["eu", "us", "eu", "us"]


def test_up_detach_status_logs_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAMSIM_NODE_COMMAND", shlex.join(STANDIN))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    run_dir = tmp_path / "run"
    base = str(free_base_port(3))
    common = ["--run-dir", str(run_dir)]
    result = runner.invoke(
        app_under_test, ["up", "3", "--detach", "--base-port", base, "--wait", "20", *common]
    )
    try:
        assert result.exit_code == 0, result.output
        assert "full mesh" in result.output and "not full mesh" not in result.output
        pids = [int(p) for p in json.loads((run_dir / "state.json").read_text())["pids"].values()]
        assert all(_alive(p) for p in pids)
        result = runner.invoke(app_under_test, ["status", *common])
        assert result.exit_code == 0 and "v2: up, 2/2 peers" in result.output, result.output
        assert runner.invoke(app_under_test, ["logs", "0", *common]).exit_code == 0
    finally:
        result = runner.invoke(app_under_test, ["down", *common])
    assert "stopped 3" in result.output
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


@pytest.mark.parametrize("args", [["status"], ["status", "--backend", "docker"],
                                  ["logs", "0", "--backend", "swarm"]])
def test_queries_on_an_empty_run_folder_say_so_and_exit_1(tmp_path: Path,
                                                           args: list[str]) -> None:
    result = runner.invoke(app_under_test, [*args, "--run-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert ("no usable local testnet state" in result.output if len(args) == 1
            else f"no {args[-1]} testnet here" in result.output)


def test_up_with_slot_traffic_reports_blocks_in_status(tmp_path: Path) -> None:
    """`jamsim testnet up --slot`: real nodes send slot traffic; `status` shows the blocks."""
    from jamsim.testnet.local import status_run_dir

    run_dir = tmp_path / "run"
    common = ["--run-dir", str(run_dir)]
    result = runner.invoke(app_under_test, [
        "up", "4", "--detach", "--base-port", str(free_base_port(4)), "--wait", "30",
        "--slot", "0.5", *common])
    try:
        assert result.exit_code == 0, result.output
        deadline = time.monotonic() + 15
        statuses = status_run_dir(run_dir)
        while time.monotonic() < deadline and not all(
                s.traffic is not None and len(s.traffic["blocks"]) >= 3
                for s in statuses.values()):
            time.sleep(0.2)
            statuses = status_run_dir(run_dir)
        assert all(s.traffic is not None and len(s.traffic["blocks"]) >= 3
                   for s in statuses.values()), statuses
        result = runner.invoke(app_under_test, ["status", *common])
        assert "recent blocks" in result.output, result.output
        assert runner.invoke(app_under_test, ["up", "2", "--slot", "0", *common]).exit_code != 0
    finally:
        runner.invoke(app_under_test, ["down", *common])
