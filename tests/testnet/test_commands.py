"""`jamsim testnet logs --tail/--follow`, `status` exit codes, and the local
testnet's telemetry port inside its --base-port range."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from jamsim.scenario.testnet_runner import free_base_port
from jamsim.testnet import commands
from jamsim.testnet.base import NodeStatus
from jamsim.testnet.base import TestnetSpec as Spec  # "Test..." would be collected
from jamsim.testnet.commands import follow_log, tail_lines
from jamsim.testnet.commands import testnet_app as app
from jamsim.testnet.local import LocalProcessBackend
from tests.testnet.test_local import ROOT, STANDIN

runner = CliRunner()


def make_run(tmp_path: Path, log: str) -> Path:
    """A run folder as a detached local testnet leaves it (no processes needed)."""
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "node-0.log").write_text(log)
    (run_dir / "state.json").write_text(json.dumps({"pids": {}, "control_ports": {}}))
    return run_dir


@given(st.lists(st.text(alphabet="ab ", max_size=5), max_size=8),
       st.integers(min_value=0, max_value=10))
def test_tail_lines_is_the_end_of_the_log(lines: list[str], count: int) -> None:
    text = "".join(f"{line}\n" for line in lines)
    kept = lines[max(0, len(lines) - count):]
    assert tail_lines(text, count) == "".join(f"{line}\n" for line in kept)
    assert tail_lines(text, None) == text


def test_logs_tail(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "".join(f"line {i}\n" for i in range(10)))
    result = runner.invoke(app, ["logs", "0", "--tail", "3", "--run-dir", str(run_dir)])
    assert result.exit_code == 0 and result.output == "line 7\nline 8\nline 9\n"
    result = runner.invoke(app, ["logs", "0", "-n", "0", "--run-dir", str(run_dir)])
    assert result.exit_code == 0 and result.output == ""
    assert runner.invoke(app, ["logs", "0", "--tail", "-1", "--run-dir",
                               str(run_dir)]).exit_code == 2


def test_logs_follow_prints_new_lines_until_the_testnet_is_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = make_run(tmp_path, "old 1\nold 2\n")
    log = run_dir / "logs" / "node-0.log"
    reads: queue.Queue[str | None] = queue.Queue()
    original = commands.follow_log

    def watched_follow(read: Callable[[], str | None], write: Callable[[str], None],
                       already: int, poll: float = 0.0) -> None:
        def watched() -> str | None:
            text = read()
            reads.put(text)
            return text
        original(watched, write, already, poll=0.001)

    def wait_for(needle: str) -> None:
        while needle not in (reads.get(timeout=10) or ""):
            pass

    monkeypatch.setattr(commands, "follow_log", watched_follow)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=runner.invoke(
        app, ["logs", "0", "--follow", "--tail", "1", "--run-dir", str(run_dir)])))
    thread.start()
    wait_for("old 2")  # following has begun
    with log.open("a") as stream:
        stream.write("new 3\n")
    wait_for("new 3")
    with log.open("a") as stream:
        stream.write("new 4\n")
    wait_for("new 4")
    (run_dir / "state.json").unlink()  # `testnet down`
    thread.join(10)
    assert not thread.is_alive()
    assert outcome["result"].exit_code == 0
    assert outcome["result"].output == "old 2\nnew 3\nnew 4\n"


def test_follow_log_restarts_a_truncated_log() -> None:
    texts = iter(["abc", "abcdef", "xy", "xyz", None])
    written: list[str] = []
    follow_log(lambda: next(texts), written.append, already=3, poll=0)
    assert written == ["def", "xy", "z"]


@pytest.mark.parametrize(("connected", "code", "verdict"), [
    ({0: {1, 2}, 1: {0, 2}, 2: {0, 1}}, 0, "full mesh"),
    ({0: {1}, 1: {0, 2}, 2: {1}}, 1, "not full mesh"),
])
def test_status_exits_1_unless_the_mesh_is_full(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                connected: dict[int, set[int]], code: int,
                                                verdict: str) -> None:
    import jamsim.testnet.local as local

    statuses = {i: NodeStatus(i, True, frozenset(peers), None)
                for i, peers in connected.items()}
    monkeypatch.setattr(local, "status_run_dir", lambda run_dir, timeout=2.0: statuses)
    result = runner.invoke(app, ["status", "--run-dir", str(tmp_path)])
    assert result.exit_code == code, result.output
    assert result.output.splitlines()[-1] == verdict


def test_status_of_a_testnet_with_a_stopped_node_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    base = free_base_port(4)
    backend = LocalProcessBackend(node_command=STANDIN)
    spec = Spec(validators=3, base_port=base, run_dir=tmp_path / "run")
    try:
        backend.up(spec)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "not full" in _status(tmp_path)[1]:
            time.sleep(0.1)
        assert _status(tmp_path) == (0, "full mesh")
        telemetry = backend._telemetry
        assert telemetry is not None and telemetry[1] == base + 3
        assert base <= telemetry[1] <= base + spec.validators
        os.kill(backend.pids()[2], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _status(tmp_path)[0] == 0:
            time.sleep(0.1)
        assert _status(tmp_path) == (1, "not full mesh")
    finally:
        backend.down()


def _status(tmp_path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["status", "--run-dir", str(tmp_path / "run")])
    return result.exit_code, result.output.splitlines()[-1]
