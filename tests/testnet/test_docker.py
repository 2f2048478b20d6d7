"""Docker Compose testnets on the real engine: mesh, faults, recovery, cleanup.

One 6-validator testnet serves the fault tests in this module (a compose project
takes a few seconds to start; faults are undone by each test so order does not
matter). Waits are bounded polls of the nodes' own status, never fixed sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jamsim.testnet.base import Heal, Isolate, Kill, Partition, Pause, Restart, Unpause
from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.docker import (
    GATE_IN_CONTAINER,
    DockerComposeBackend,
    compose_document,
    project_name,
)
from jamsim.testnet.docker_cli import LABEL
from tests.testnet.scenario_run import run_checked

pytestmark = pytest.mark.docker

FAST = {"idle_timeout": 3.0, "max_retry": 2.0, "fallback_after": 1.0}


def labelled(kind: str, project: str) -> list[str]:
    out = subprocess.run(["docker", kind, "ls", "-q", "--filter", f"label={LABEL}={project}"]
                         if kind == "network" else
                         ["docker", "ps", "-aq", "--filter", f"label={LABEL}={project}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return out.split()


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerComposeBackend]:
    run_dir = tmp_path_factory.mktemp("docker6")
    spec = Spec(validators=6, run_dir=run_dir, policy_overrides=FAST, name="test6")
    backend = DockerComposeBackend()
    backend.build()
    with backend:
        backend.up(spec)
        backend.wait_full_mesh(90)
        yield backend
    project = project_name(spec)
    assert labelled("container", project) == [] and labelled("network", project) == []


def test_compose_file_lists_one_service_per_validator_on_fixed_addresses(
        testnet: DockerComposeBackend) -> None:
    assert testnet.compose_file is not None
    document = compose_document(testnet.spec, testnet.project or "", testnet.network or "",  # type: ignore[arg-type]
                                [testnet.ips[i] for i in range(6)], testnet.keys_file,  # type: ignore[arg-type]
                                None)
    assert sorted(document["services"]) == [f"v{i}" for i in range(6)]
    keys = json.loads(Path(testnet.keys_file).read_text())  # type: ignore[arg-type]
    assert [v["host"] for v in keys["validators"]] == [testnet.ips[i] for i in range(6)]
    # all nodes started together through the gate, opened once every container existed
    assert (Path(testnet.spec.run_dir) / "gate" / "open").exists()  # type: ignore[union-attr]
    assert f":{GATE_IN_CONTAINER}:ro" in testnet.compose_file.read_text()


def test_an_unused_backend_leaving_a_with_block_removes_no_other_testnet(
        testnet: DockerComposeBackend) -> None:
    with DockerComposeBackend():
        pass
    assert len(labelled("container", testnet.project or "")) == 6


def test_partition_splits_the_mesh_and_heal_restores_it(testnet: DockerComposeBackend) -> None:
    testnet.apply(Partition(((0, 1, 2), (3, 4, 5))))
    testnet.wait_until(lambda s: all(
        s[i].connected == ({0, 1, 2} if i < 3 else {3, 4, 5}) - {i} for i in range(6)), 60)
    testnet.apply(Heal())
    testnet.wait_full_mesh(60)


def test_killed_container_is_dropped_and_rejoins_after_restart(
        testnet: DockerComposeBackend) -> None:
    testnet.apply(Kill(2))
    statuses = testnet.wait_until(
        lambda s: not s[2].running and all(2 not in s[i].connected for i in s if i != 2), 60)
    assert not statuses[2].running
    testnet.apply(Restart(2))
    testnet.wait_full_mesh(60)


def test_network_disconnect_isolates_a_container_until_heal(
        testnet: DockerComposeBackend) -> None:
    testnet.apply(Isolate(4))
    statuses = testnet.wait_until(
        lambda s: all(4 not in s[i].connected for i in s if i != 4), 60)
    assert statuses[4].running and "isolated" in (statuses[4].error or "")
    testnet.apply(Heal())
    testnet.wait_full_mesh(60)


def test_paused_container_keeps_its_place_after_unpause(testnet: DockerComposeBackend) -> None:
    testnet.apply(Pause(1))
    assert not testnet.status()[1].running
    testnet.apply(Unpause(1))
    testnet.wait_full_mesh(60)


def test_telemetry_from_containers_reaches_the_collector(testnet: DockerComposeBackend) -> None:
    records = testnet.collect()
    assert {r.node for r in records} == set(range(6))
    assert "connected_out" in {r.event for r in records}


def test_memory_per_container_is_reported(testnet: DockerComposeBackend) -> None:
    usage = testnet.memory_bytes()
    assert set(usage) <= set(range(6)) and len(usage) >= 5
    assert all(10 * 2**20 < b < 500 * 2**20 for b in usage.values())


def test_detached_testnet_is_removed_by_down_from_a_fresh_harness(tmp_path: Path) -> None:
    """A harness that went away leaves containers; `jamsim testnet down` finds them."""
    spec = Spec(validators=2, run_dir=tmp_path, policy_overrides=FAST, name="detached")
    backend = DockerComposeBackend()
    backend.up(spec)
    backend.detach()
    project = project_name(spec)
    assert len(labelled("container", project)) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "jamsim", "testnet", "down", "--backend", "docker",
         "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert labelled("container", project) == [] and labelled("network", project) == []


def test_scenario_runs_on_docker_and_analysis_reads_the_results(tmp_path: Path) -> None:
    """`jamsim run FILE --testnet docker`: same results folder as a simulation."""
    run_checked(tmp_path, "docker", validators=4, scenario_yaml=(
        "name: docker-tiny\nseed: 2\nduration: 20s\nsample_interval: 1s\n"
        "validators: {count: 4}\n"
        "policy: {preset: jamnp-s, idle_timeout: 3s, max_retry: 2s}\n"
        "timeline:\n  - {at: 8s, partition: [['0..1'], ['2..3']]}\n  - {at: 12s, heal: all}\n"
        "expect:\n  - full_mesh: {within: 15s}\n  - full_mesh: {within: 8s, after: heal}\n"))


def test_logs_show_what_the_node_printed(testnet: DockerComposeBackend) -> None:
    assert f"node 0 listening on {testnet.ips[0]}:" in testnet.logs(0)


def test_ctrl_c_during_a_docker_run_removes_containers_and_network(tmp_path: Path) -> None:
    """SIGINT to `jamsim run --testnet docker`: exit 130, nothing labelled left behind."""
    import signal
    import time

    scenario = tmp_path / "sigint.yaml"
    scenario.write_text("name: docker-sigint\nseed: 4\nduration: 120s\n"
                        "validators: {count: 3}\npolicy: {preset: jamnp-s}\n")
    out = tmp_path / "run"
    # the scenario runner starts the testnet in out/testnet under the scenario's name
    project = project_name(Spec(validators=3, run_dir=out / "testnet", name="docker-sigint"))
    proc = subprocess.Popen([sys.executable, "-m", "jamsim", "run", str(scenario), "--testnet",
                             "docker", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        running = ["docker", "ps", "-q", "--filter", f"label={LABEL}={project}"]
        while len(subprocess.run(running, capture_output=True, text=True, timeout=30,
                                 check=True).stdout.split()) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "testnet never came up"
            time.sleep(0.2)  # bounded poll: interrupt a testnet that really runs
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert labelled("container", project) == [] and labelled("network", project) == []


def test_a_failing_up_removes_the_network_it_created(tmp_path: Path) -> None:
    """compose up fails (image missing, no registry): TestnetError, nothing left behind."""
    from jamsim.testnet.base import TestnetError

    spec = Spec(validators=2, run_dir=tmp_path, name="failing-up")
    backend = DockerComposeBackend(image="jamsim-node:does-not-exist")
    with pytest.raises(TestnetError, match="does-not-exist"):
        backend.up(spec)
    project = project_name(spec)
    assert labelled("container", project) == [] and labelled("network", project) == []
    assert not (tmp_path / "state.json").exists()
