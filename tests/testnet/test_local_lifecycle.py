"""A kill and restart on a local testnet show up in the event table, and the
analysis ends the killed node's sessions at the kill, as in simulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamsim.analysis import load_run
from jamsim.scenario.runner import run_scenario

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_kill_and_restart_on_a_local_testnet_end_the_killed_nodes_sessions(
        tmp_path: Path) -> None:
    scenario = tmp_path / "kill.yaml"
    scenario.write_text(
        "name: local-kill\nseed: 3\nduration: 16s\nsample_interval: 1s\n"
        "validators: {count: 4}\ntraffic: none\n"
        "policy: {preset: jamnp-s, idle_timeout: 3s, max_retry: 2s}\n"
        "timeline:\n  - {at: 6s, kill: [v3]}\n  - {at: 9s, restart: [v3]}\n")
    run_scenario(scenario, out_dir=tmp_path / "run", testnet="local", plots=False)
    run = load_run(tmp_path / "run")
    events = run.events
    rows = events[events["peer"] == -1]
    kinds = {str(e): float(t) for e, t, n in zip(rows["event"], rows["time"], rows["node"],
                                                 strict=True) if n == 3}
    assert set(kinds) >= {"node_crashed", "node_restarted"}
    crashed = kinds["node_crashed"]
    assert 5.0 < crashed < 9.0 and crashed < kinds["node_restarted"]
    sessions = run.sessions
    mine = sessions[sessions["node"] == 3]
    before = mine[mine["up_at"] < crashed]
    assert len(before) > 0  # it had connected before the kill
    assert (before["down_at"] <= crashed + 1e-9).all()  # every one ended by the kill
