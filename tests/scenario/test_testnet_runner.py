"""free_base_port: ranges that are free, below the ephemeral ports, and not handed out twice."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jamsim.scenario.testnet_runner import EPHEMERAL_PORTS_START, free_base_port

ROOT = Path(__file__).resolve().parents[2]


def _overlap(a: int, b: int, length: int) -> bool:
    return a < b + length and b < a + length


def test_another_process_never_gets_a_range_handed_out_here() -> None:
    """Two harnesses started together both found the same range free and the
    second one's nodes could not bind: a handed-out range is reserved host-wide."""
    mine = free_base_port(6)
    code = "from jamsim.scenario.testnet_runner import free_base_port; print(free_base_port(6))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=ROOT, timeout=60)
    assert not _overlap(mine, int(other.stdout), 7)  # 6 nodes + the collector's port


def test_consecutive_calls_give_disjoint_ranges() -> None:
    first = free_base_port(3)
    assert not _overlap(first, free_base_port(3), 4)


@pytest.mark.parametrize("count", [1, 6, 64, 1023])
def test_nodes_and_collector_stay_below_the_ephemeral_range(count: int) -> None:
    base = free_base_port(count)
    assert base >= 1024 and base + count < EPHEMERAL_PORTS_START


def test_a_taken_collector_port_rules_a_range_out() -> None:
    """The local testnet's collector listens on base + count: it must be free too."""
    base = free_base_port(3)
    candidate = base + 64  # the next range the picker would look at
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", candidate + 3))
        except OSError:
            pytest.skip("that port is in use on this host already")
        taken.listen()
        assert free_base_port(3) != candidate


def test_process_ops_become_lifecycle_rows_on_the_telemetry_clock() -> None:
    """A kill the harness applies is written as the simulator writes it, at the
    telemetry rows' clock when the backend has one, else at the harness's."""
    from jamsim.scenario.testnet_runner import lifecycle_rows
    from jamsim.testnet.base import Heal, Kill, Pause, Restart, Unpause

    class WithClock:
        def telemetry_time(self) -> float:
            return 12.5

    expected = {Kill(3): "node_crashed", Pause(3): "node_paused", Unpause(3): "node_resumed",
                Restart(3): "node_restarted"}
    for op, name in expected.items():
        (row,) = lifecycle_rows(op, WithClock(), harness_now=12.0)
        assert (row.time, row.node, row.peer, row.event) == (12.5, 3, -1, name)
        assert 240 <= row.kind <= 243
    (row,) = lifecycle_rows(Kill(1), object(), harness_now=7.0)
    assert row.time == 7.0 and row.node == 1
    assert lifecycle_rows(Heal(), WithClock(), harness_now=1.0) == []
