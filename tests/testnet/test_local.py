"""LocalProcessBackend with real processes.

The lifecycle/impairment tests use the UDP heartbeat stand-in
(tests/testnet/test_local_standin.py), which starts in a fraction of the time;
the last test runs the real ``jamsim node`` and fails (never skips) when that
command cannot start.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from jamsim.links import LatencySpec, LinkSpec, LossSpec
from jamsim.scenario.testnet_runner import free_base_port
from jamsim.testnet.base import (
    Heal,
    Isolate,
    Kill,
    Partition,
    Pause,
    Restart,
    SetLink,
    Unpause,
    full_mesh,
)
from jamsim.testnet.base import (
    TestnetBackend as Backend,
)
from jamsim.testnet.base import TestnetError as BackendError
from jamsim.testnet.base import (
    TestnetSpec as Spec,
)
from jamsim.testnet.local import LocalProcessBackend, down_run_dir

STANDIN = (sys.executable, "-m", "tests.testnet.test_local_standin")
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _spec(tmp_path: Path, n: int, **kw: object) -> Spec:
    # Ports below the kernel's ephemeral range: the harness's own control
    # connections take ephemeral ports, and one landing on a killed node's port
    # kept its restart from binding it (a CI run failed that way).
    return Spec(validators=n, base_port=free_base_port(n), run_dir=tmp_path / "run", seed=3, **kw)  # type: ignore[arg-type]


def test_standin_testnet_partition_kill_pause_restart_and_cleanup(tmp_path: Path) -> None:
    n = 6
    backend = LocalProcessBackend(node_command=STANDIN, env={"PYTHONPATH": str(ROOT)})
    assert isinstance(backend, Backend)
    with backend as tn:
        tn.up(_spec(tmp_path, n))
        pids = list(tn.pids().values())
        tn.wait_full_mesh(20.0)

        tn.apply(Partition(((0, 1, 2),)))
        tn.wait_until(
            lambda s: (
                full_mesh(s, {0, 1, 2})
                and full_mesh(s, {3, 4, 5})
                and not s[0].connected & {3, 4, 5}
                and not s[4].connected & {0, 1, 2}
            ),
            10.0,
        )
        tn.apply(Heal())
        tn.wait_full_mesh(10.0)

        # one-way: 0 -> others dropped, others -> 0 flows: 0 hears everyone, nobody hears 0
        tn.apply(Partition(((0,),), one_way=True))
        tn.wait_until(
            lambda s: (
                s[0].connected == {1, 2, 3, 4, 5}
                and all(0 not in s[i].connected for i in range(1, n))
            ),
            10.0,
        )
        tn.apply(Heal())
        tn.apply(Isolate(2))
        tn.wait_until(
            lambda s: not s[2].connected and all(2 not in s[i].connected for i in (0, 1)), 10.0
        )
        tn.apply(Heal())
        tn.wait_full_mesh(10.0)

        tn.apply(SetLink((0,), (1,), LinkSpec(LatencySpec(0.0), LossSpec.bernoulli(1.0))))
        tn.wait_until(lambda s: 0 not in s[1].connected and 1 not in s[0].connected, 10.0)
        tn.apply(SetLink((0,), (1,), LinkSpec.unimpaired()))
        tn.wait_full_mesh(10.0)

        tn.apply(Pause(3))
        tn.wait_until(
            lambda s: not s[3].running and all(3 not in s[i].connected for i in (0, 1)), 10.0
        )
        tn.apply(Unpause(3))
        tn.wait_full_mesh(10.0)

        tn.apply(Kill(4))
        assert not _alive(pids[4])
        tn.wait_until(lambda s: all(4 not in s[i].connected for i in (0, 1, 2)), 10.0)
        tn.apply(Restart(4))
        tn.wait_full_mesh(20.0)
        pids.append(tn.pids()[4])

        # rules in force survive a restart: the new process gets them replayed
        tn.apply(Partition(((5,),)))
        tn.apply(Kill(5))
        tn.apply(Restart(5))
        pids.append(tn.pids()[5])
        body = tn._control(5, {"op": "status"})["status"]
        assert len(body["blocked_out"]) == n - 1 and len(body["blocked_in"]) == n - 1
        tn.apply(Heal())
        tn.wait_full_mesh(20.0)
        assert "Traceback" not in tn.logs(0)
    assert not any(_alive(p) for p in pids)
    assert not (tmp_path / "run" / "state.json").exists()


def test_down_from_state_file_kills_leftovers(tmp_path: Path) -> None:
    """A harness that died without cleanup: a fresh ``down`` on the run dir finds the pids."""
    tn = LocalProcessBackend(node_command=STANDIN, env={"PYTHONPATH": str(ROOT)})
    spec = _spec(tmp_path, 3)
    try:
        tn.up(spec)
        pids = list(tn.pids().values())
        tn.apply(Pause(1))  # a stopped process must die too
        assert down_run_dir(spec.run_dir) == 3
        for proc in tn.procs.values():
            proc.wait(5)
        assert not any(_alive(p) for p in pids)
        assert down_run_dir(spec.run_dir) == 0
    finally:
        tn.down()


def test_node_that_exits_is_reported(tmp_path: Path) -> None:
    bad = (sys.executable, "-c", "raise SystemExit(3)")
    with LocalProcessBackend(node_command=bad) as tn:
        tn.up(_spec(tmp_path, 2))
        statuses = tn.wait_until(lambda s: not any(x.running for x in s.values()), 10.0)
        assert not full_mesh(statuses)


def test_a_node_that_cannot_bind_fails_the_mesh_wait_at_once(tmp_path: Path) -> None:
    """A port taken by someone else kills that node at start: the wait for a full mesh
    names it and the reason from its log at once, not after its timeout."""
    spec = _spec(tmp_path, 3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", spec.base_port + 1))
        start = time.monotonic()
        with LocalProcessBackend(node_command=STANDIN, env={"PYTHONPATH": str(ROOT)}) as tn:
            tn.up(spec)
            with pytest.raises(BackendError,
                               match=r"node 1 exited with 1; log: .*node-1\.log .*in use"):
                tn.wait_full_mesh(30.0)
        assert time.monotonic() - start < 30.0


def test_waiting_for_control_names_a_node_that_exited(tmp_path: Path) -> None:
    """Link conditions need every control channel: a dead node fails fast, with its log."""
    bad = (sys.executable, "-c", "raise SystemExit(3)")
    spec = _spec(tmp_path, 2, regions={0: "eu", 1: "us"},
                 links={("eu", "us"): LinkSpec(LatencySpec(0.01))})
    start = time.monotonic()
    with LocalProcessBackend(node_command=bad) as tn, \
            pytest.raises(BackendError, match=r"node \d exited with 3; log: .*node-\d\.log"):
        tn.up(spec)
    assert time.monotonic() - start < LocalProcessBackend.control_wait
    assert not (spec.run_dir / "state.json").exists()


def test_real_nodes_16_mesh_partition_heal_kill_restart(tmp_path: Path) -> None:
    n = 16
    overrides = {"idle_timeout": 2.0, "connect_timeout": 1.0}
    with LocalProcessBackend() as tn:
        tn.up(_spec(tmp_path, n, policy="jamixir", policy_overrides=overrides))
        pids = list(tn.pids().values())
        tn.wait_full_mesh(60.0)
        tn.apply(Partition((tuple(range(8)),)))
        tn.wait_until(lambda s: all(not s[i].connected & set(range(8, 16)) for i in range(8)), 30.0)
        tn.apply(Heal())
        tn.wait_full_mesh(60.0)
        tn.apply(Kill(5))
        tn.apply(Restart(5))
        pids.append(tn.pids()[5])
        tn.wait_full_mesh(60.0)
        # every node reported JIP-3 telemetry to the harness's collector
        deadline = time.monotonic() + 10.0
        while {r.node for r in tn.collect()} != set(range(n)) and time.monotonic() < deadline:
            time.sleep(0.1)
        records = tn.collect()
        assert {r.node for r in records} == set(range(n))
        assert any(r.event.startswith("connected") for r in records)
    assert not any(_alive(p) for p in pids)
