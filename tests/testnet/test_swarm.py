"""Swarm backend on a single-node swarm of the real engine, left as it was found.

If the engine is not in a swarm, the module makes it a single-node manager
(advertising loopback) and leaves the swarm afterwards; an engine that already
was a swarm member is used as is and not touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jamsim.testnet.base import Heal, Kill, Partition
from jamsim.testnet.base import TestnetError as BackendError
from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.docker import project_name
from jamsim.testnet.docker_cli import LABEL, docker
from jamsim.testnet.swarm import SwarmBackend, swarm_active
from tests.testnet.docker_env import skip_docker
from tests.testnet.scenario_run import run_checked

pytestmark = pytest.mark.docker

FAST = {"idle_timeout": 3.0, "max_retry": 2.0, "fallback_after": 1.0}


def swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=False).strip()


def network_names() -> set[str]:
    """The engine's networks, minus jamsim testnets (other runs may come and go)."""
    names = docker("network", "ls", "--format", "{{.Name}}").split()
    return {name for name in names if not name.startswith("jamsim-")}


SWARM_LOCK = Path(tempfile.gettempdir()) / "jamsim-swarm-test.lock"


@contextlib.contextmanager
def swarm_test_lock(timeout: float = 600.0) -> Iterator[None]:
    """One swarm test per machine at a time.

    Parallel test sessions share the engine: one session's `swarm leave --force`
    would remove the stack another session is testing on the same swarm.
    """
    with SWARM_LOCK.open("w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another session held {SWARM_LOCK} for {timeout:.0f}s")
                time.sleep(0.5)  # bounded wait for the other session's swarm test
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def single_node_swarm() -> Iterator[None]:
    with swarm_test_lock():
        yield from _single_node_swarm()


def _single_node_swarm() -> Iterator[None]:
    before = swarm_state()
    created = before == "inactive"
    networks_before = network_names()
    if created:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    elif not swarm_active():
        skip_docker(f"engine is in swarm state {before!r} and not a manager: not touching it")
    try:
        yield
    finally:
        if created:
            docker("swarm", "leave", "--force", check=False)
            # `swarm init` creates docker_gwbridge and `leave` keeps it: remove it
            # if it was not there before, so the engine is left as it was found.
            if "docker_gwbridge" not in networks_before:
                docker("network", "rm", "docker_gwbridge", check=False)
            assert swarm_state() == "inactive"
            assert network_names() == networks_before


def test_up_without_a_swarm_says_how_to_make_one(tmp_path: Path) -> None:
    spec = Spec(validators=2, run_dir=tmp_path, name="no-swarm")
    with swarm_test_lock():  # no other session turns the engine into a swarm meanwhile
        if swarm_state() != "inactive":
            # Not a missing engine: this one error is only observable outside a swarm,
            # and the stack tests below still run on a swarm manager.
            pytest.skip("engine is in a swarm; this checks the error outside one")
        with pytest.raises(BackendError, match="docker swarm init"):
            SwarmBackend().up(spec)
    # Nothing of this run was created (other testnets on the engine may exist).
    assert subprocess.run(["docker", "network", "ls", "-q", "--filter",
                           f"label={LABEL}={project_name(spec)}"], capture_output=True,
                          text=True, check=True).stdout.strip() == ""


def test_stack_reaches_full_mesh_survives_a_partition_and_is_removed(
        single_node_swarm: None, tmp_path: Path) -> None:
    spec = Spec(validators=4, run_dir=tmp_path, policy_overrides=FAST, name="swarm4")
    project = project_name(spec)
    with SwarmBackend() as tn:
        tn.build()
        tn.up(spec)
        assert len({host for host, _port in tn.addresses.values()}) == 4
        tn.wait_full_mesh(90)
        # a fresh harness finds the stack from the run folder and names every peer
        fresh = subprocess.run(
            [sys.executable, "-m", "jamsim", "testnet", "status", "--backend", "swarm",
             "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
            check=False)
        assert fresh.returncode == 0, fresh.stderr
        assert fresh.stdout.splitlines()[-1] == "full mesh", fresh.stdout
        tn.apply(Partition(((0, 1), (2, 3))))
        tn.wait_until(lambda s: all(
            s[i].connected == ({0, 1} if i < 2 else {2, 3}) - {i} for i in range(4)), 60)
        tn.apply(Heal())
        tn.wait_full_mesh(60)
        with pytest.raises(BackendError, match="not supported on the swarm backend"):
            tn.apply(Kill(1))
        assert {r.node for r in tn.collect()} == {0, 1, 2, 3}
    services = docker("service", "ls", "-q", "--filter", f"label={LABEL}={project}")
    networks = docker("network", "ls", "-q", "--filter", f"label={LABEL}={project}")
    assert services.strip() == "" and networks.strip() == ""


def test_scenario_runs_on_swarm_and_analysis_reads_the_results(
        single_node_swarm: None, tmp_path: Path) -> None:
    """`jamsim run FILE --testnet swarm`: the same results folder as a simulation.

    The run clock starts before the stack is deployed, and right after a fresh
    ``swarm init`` a deploy takes ~9 s here: the partition comes late enough that
    the mesh is sampled whole before it (a sample after it counts the cut links as
    stale, not usable).
    """
    run = run_checked(tmp_path, "swarm", validators=3, scenario_yaml=(
        "name: swarm-tiny\nseed: 5\nduration: 26s\nsample_interval: 1s\n"
        "validators: {count: 3}\n"
        "policy: {preset: jamnp-s, idle_timeout: 3s, max_retry: 2s}\n"
        "timeline:\n  - {at: 14s, partition: [['0'], ['1..2']]}\n  - {at: 20s, heal: all}\n"
        "expect:\n  - full_mesh: {within: 13s}\n  - full_mesh: {within: 6s, after: heal}\n"))
    # the partition really cut node 0 off: its links were lost after 14 s
    cut = run.events[(run.events["time"] >= 14) & (run.events["event"] == "disconnected")]
    assert 0 in set(cut["node"]) | set(cut["peer"])
