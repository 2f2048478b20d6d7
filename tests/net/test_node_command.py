"""`jamsim node` as real processes: two nodes connect, status via control, SIGTERM exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from jamsim.net.control import ControlError, control_request
from jamsim.protocol.messages import GRAY_PAPER_VERSION
from jamsim.testnet.backend import CollectorThread
from jamsim.testnet.keys import generate_keys, write_keys
from tests.net.test_node import free_ports

RUNNER = (
    "import sys, typer; from jamsim.net.commands import node_command; "
    "sys.argv[0] = 'jamsim-node'; typer.run(node_command)"
)


def _outputs(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> str:
    """Exit codes and logs of both nodes, for a failure message that explains itself."""
    return "\n".join(
        f"--- node {i} (exit {p.poll()}):\n{logs[i].read_text(errors='replace')[-4000:]}"
        for i, p in enumerate(procs)
    )


def test_two_node_processes_connect_and_stop_cleanly(tmp_path: Path) -> None:
    ports = free_ports(4)  # one call: all four distinct
    udp, control = ports[:2], ports[2:]
    doc = generate_keys(2, seed=5, base_port=udp[0])
    for i, v in enumerate(doc["validators"]):
        v["port"] = udp[i]
    keys = tmp_path / "keys.json"
    write_keys(keys, doc)
    # Files, not pipes: an unread pipe that fills up would block the node itself.
    logs = [tmp_path / f"node{i}.log" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUNNER,
                "--keys",
                str(keys),
                "--index",
                str(i),
                "--control-port",
                str(control[i]),
                "--policy-set",
                "idle_timeout=5",
            ],
            stdout=logs[i].open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        connected: list[list[str]] = [[], []]
        while time.monotonic() < deadline and not all(connected):
            for i in range(2):
                try:
                    status = control_request(("127.0.0.1", control[i]), {"op": "status"}, 1.0)
                    connected[i] = status["status"]["connected"]
                except ControlError:
                    pass
            time.sleep(0.05)  # polling interval of a bounded wait
        assert all(len(c) == 1 for c in connected), (connected, _outputs(procs, logs))
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(timeout=10) == 0, _outputs(procs, logs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_taken_control_port_exits_with_a_clear_error(tmp_path: Path) -> None:
    udp, control = free_ports(2)
    doc = generate_keys(1, seed=5, base_port=udp)
    keys = tmp_path / "keys.json"
    write_keys(keys, doc)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", control))
        squatter.listen()
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, "--keys", str(keys), "--index", "0",
             "--control-port", str(control)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert proc.returncode == 1, proc.stderr
    assert "cannot start node 0" in proc.stderr and "Traceback" not in proc.stderr


def test_jam_param_overrides_parse_and_bad_ones_exit_2(tmp_path: Path) -> None:
    import pytest

    from jamsim.core.errors import UsageError
    from jamsim.net.commands import parse_jam_params

    assert parse_jam_params(["epoch_length=600", "core_count=3"]) == {
        "epoch_length": 600, "core_count": 3}
    for bad in ("epoch_length", "=5", "epoch_length=-1", "epoch_length=six"):
        with pytest.raises(UsageError):
            parse_jam_params([bad])
    keys = tmp_path / "keys.json"
    write_keys(keys, generate_keys(2, base_port=free_ports(1)[0]))
    run = subprocess.run(
        [sys.executable, "-c", RUNNER, "--keys", str(keys), "--index", "0",
         "--telemetry", "127.0.0.1:9", "--jam-param", "cores=2"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2 and "unknown JAM parameter(s): cores" in run.stderr


def test_node_information_carries_the_run_parameters(tmp_path: Path) -> None:
    """A node started with slot traffic announces the run's V, C and slot period, and
    the Gray Paper version its codecs follow, not the tiny-network defaults."""
    (udp,) = free_ports(1)
    doc = generate_keys(7, seed=5, base_port=udp)
    keys = tmp_path / "keys.json"
    write_keys(keys, doc)
    key = bytes.fromhex(doc["validators"][0]["public_key"])
    collector = CollectorThread({key: 0})
    log = tmp_path / "node.log"
    host, port = collector.address
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--keys", str(keys), "--index", "0",
         "--telemetry", f"{host}:{port}", "--jam-param", "epoch_length=600",
         "--traffic-start", repr(time.time()), "--traffic-slot", "2.5",
         "--traffic-cores", "5"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and key not in collector.collector.node_infos:
            assert proc.poll() is None, log.read_text(errors="replace")
            time.sleep(0.05)  # polling interval of a bounded wait
        info = collector.collector.node_infos.get(key)
        assert info is not None, log.read_text(errors="replace")
        params = info.params
        assert (params.validator_count, params.core_count, params.slot_period) == (7, 5, 3)
        assert params.epoch_length == 600  # an explicit --jam-param still wins
        assert info.gp_version == GRAY_PAPER_VERSION
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        collector.stop()
