"""DockerComposeBackend: one container per validator on a private bridge network.

The same node (``jamsim node``), control channel and telemetry as the local
backend, so everything above the process boundary comes from
:class:`jamsim.testnet.backend.NodeBackend`, and the lifecycle it shares with
swarm from :class:`jamsim.testnet.container.ContainerBackend`; this class only
changes *where* nodes run:

* a labelled bridge network with a fixed subnet, so every container has a known
  address before it starts and the keys file can carry it (JAMNP-S validator
  metadata holds an IP, not a name);
* a compose project (``run_dir/docker-compose.yml``, one service per validator)
  brought up with ``docker compose``/``docker-compose``; the file stays in the
  results folder so a run can be inspected or replayed by hand;
* the harness's JIP-3 collector listens on the bridge's gateway address, which
  containers reach and nothing outside the host does;
* partitions and link conditions go through each node's user-space impairment
  layer (kernel netem is not available); ``Isolate`` really unplugs the container
  with ``docker network disconnect``; kill/restart and pause/unpause are
  ``docker kill``/``start`` and ``pause``/``unpause``.

Cleanup: ``down`` runs ``compose down`` and then removes whatever still carries
the project's label (``jamsim.testnet=<project>``), so a crashed harness's
leftovers go too; it is also run from atexit and SIGINT/SIGTERM handlers.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import yaml

from jamsim.testnet.base import (
    Heal,
    Isolate,
    Kill,
    NodeStatus,
    Pause,
    Restart,
    TestnetError,
    TestnetSpec,
    TimelineOp,
    Unpause,
)
from jamsim.testnet.container import (
    GATE_IN_CONTAINER,
    KEYS_IN_CONTAINER,
    NODE_ENTRYPOINT,
    NODE_PORT,
    ContainerBackend,
    node_command_args,
    project_name,
)
from jamsim.testnet.docker_cli import LABEL, compose, docker, remove_labelled
from jamsim.testnet.host_limits import ensure_neighbour_capacity
from jamsim.testnet.image import NODE_IMAGE
from jamsim.testnet.keys import generate_keys, load_keys, write_keys

__all__ = [
    "GATE_IN_CONTAINER",
    "NODE_PORT",
    "DockerComposeBackend",
    "compose_document",
    "create_backend",
    "node_command_args",
    "project_name",
]

_SUBNET_POOL = ipaddress.IPv4Network("10.213.0.0/16")


def compose_document(spec: TestnetSpec, project: str, network: str, ips: list[str],
                     keys_file: Path, telemetry: tuple[str, int] | None,
                     image: str = NODE_IMAGE, gate: Path | None = None) -> dict[str, Any]:
    """The compose project: one service per validator on the external ``network``.

    ``gate``: host directory mounted at :data:`GATE_IN_CONTAINER` (start together).
    """
    services: dict[str, Any] = {}
    volumes = [f"{Path(keys_file).resolve()}:{KEYS_IN_CONTAINER}:ro"]
    if gate is not None:
        volumes.append(f"{Path(gate).resolve()}:{GATE_IN_CONTAINER}:ro")
    for index, ip in enumerate(ips):
        services[f"v{index}"] = {
            "image": image,
            "container_name": f"{project}-v{index}",
            "entrypoint": NODE_ENTRYPOINT,
            "command": node_command_args(spec, index, telemetry),
            "labels": {LABEL: project, f"{LABEL}.index": str(index)},
            "networks": {"jamnet": {"ipv4_address": ip}},
            "volumes": list(volumes),
            "stop_grace_period": "2s",
        }
    return {
        "version": "3.8",
        "services": services,
        "networks": {"jamnet": {"external": True, "name": network}},
    }


class DockerComposeBackend(ContainerBackend):
    """Validators as containers of one compose project.

    ``with DockerComposeBackend() as tn: tn.up(spec); tn.wait_full_mesh(60)``.
    """

    backend_name = "docker"
    control_wait = 60.0  # containers start slower than processes
    control_poll = 0.1

    def __init__(self, image: str = NODE_IMAGE, control_timeout: float = 5.0,
                 run_dir: Path | None = None) -> None:
        super().__init__(image, control_timeout, run_dir)
        self.gateway: str | None = None
        self.compose_file: Path | None = None
        self.ips: dict[int, str] = {}
        self._stopped: set[int] = set()
        self._isolated: set[int] = set()
        self.host_warning: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def _clear_leftovers(self, spec: TestnetSpec) -> None:
        assert self.project is not None
        remove_labelled(self.project)  # leftovers of a crashed run in this folder
        self.host_warning = ensure_neighbour_capacity(spec.validators)

    def _deploy(self, spec: TestnetSpec, run_dir: Path) -> None:
        assert self.project is not None
        self._create_network(spec.validators)
        self._write_keys(spec, run_dir)
        self._start_collector()
        assert self.network is not None and self.keys_file is not None
        self.compose_file = run_dir / "docker-compose.yml"
        gate = run_dir / "gate"
        gate.mkdir(exist_ok=True)
        (gate / "open").unlink(missing_ok=True)
        document = compose_document(spec, self.project, self.network,
                                    [self.ips[i] for i in range(spec.validators)],
                                    self.keys_file, self._telemetry, self.image, gate)
        self.compose_file.write_text(yaml.safe_dump(document, sort_keys=False))
        self._write_state()
        compose(self.project, str(self.compose_file), "up", "-d", "--no-build",
                timeout=120 + 5 * spec.validators)
        (gate / "open").touch()  # every container exists: start all nodes now
        for index in range(spec.validators):
            self.control_ports[index] = NODE_PORT
        self._apply_spec_links()

    def _create_network(self, count: int) -> None:
        """A labelled bridge network on a /24 of 10.213.0.0/16 that is not in use."""
        assert self.project is not None
        if count > 240:
            raise TestnetError(f"{count} validators do not fit one /24 bridge network "
                               "(max 240); use the swarm backend across hosts")
        start = int(hashlib.sha1(self.project.encode()).hexdigest(), 16) % 256
        subnets = list(_SUBNET_POOL.subnets(new_prefix=24))
        last_error = ""
        for offset in range(256):
            subnet = subnets[(start + offset) % 256]
            hosts = list(subnet.hosts())
            try:
                docker("network", "create", "--driver", "bridge", "--subnet", str(subnet),
                       "--gateway", str(hosts[0]), "--label", f"{LABEL}={self.project}",
                       self.project)
            except TestnetError as exc:
                last_error = str(exc)
                if "overlap" in last_error or "in use" in last_error.lower():
                    continue
                raise
            self.network = self.project
            self.gateway = str(hosts[0])
            self.ips = {i: str(hosts[10 + i]) for i in range(count)}
            return
        raise TestnetError(f"no free /24 in {_SUBNET_POOL} for a bridge network: {last_error}")

    def _write_keys(self, spec: TestnetSpec, run_dir: Path) -> None:
        if spec.keys_file is not None:
            # Keep the user's identities; the addresses must be the containers'.
            document = json.loads(Path(spec.keys_file).read_text())
            for entry in document.get("validators", []):
                entry["host"] = self.ips[int(entry["index"])]
                entry["port"] = NODE_PORT
        else:
            document = generate_keys(spec.validators, seed=spec.seed, base_port=NODE_PORT,
                                     regions=spec.region_names(),
                                     hosts=[self.ips[i] for i in range(spec.validators)])
        self.keys_file = run_dir / "keys.json"
        write_keys(self.keys_file, document)
        self._use_validator_set(load_keys(self.keys_file)[1])

    def _collector_hosts(self) -> tuple[str, str | None]:
        """The bridge's gateway: containers reach it, nothing outside this host does."""
        assert self.gateway is not None
        return self.gateway, None

    def container(self, index: int) -> str:
        assert self.project is not None
        return f"{self.project}-v{index}"

    def _project_fields(self) -> dict[str, Any]:
        return {"network": self.network, "compose_file": str(self.compose_file),
                "ips": {str(i): ip for i, ip in self.ips.items()}}

    def _restore_state(self, state: dict[str, Any]) -> int:
        self.network = state.get("network")
        self.ips = {int(i): ip for i, ip in state.get("ips", {}).items()}
        self.control_ports = dict.fromkeys(self.ips, NODE_PORT)
        return len(self.ips)

    def _remove_project(self) -> None:
        assert self.project is not None
        if self.compose_file is not None and self.compose_file.exists():
            with contextlib.suppress(TestnetError):
                compose(self.project, str(self.compose_file), "down", "-v",
                        "--remove-orphans", "--timeout", "2", timeout=180)
        remove_labelled(self.project)

    # -------------------------------------------------------------------- control

    def _control_host(self, index: int) -> str:
        return self.ips[index]

    def _running(self, index: int) -> bool:
        return (self.project is not None and index in self.ips and index not in self._stopped
                and index not in self._paused and index not in self._isolated)

    def _timeout_hint(self, pending: list[int]) -> str:
        return (f"containers {pending} never answered on their "
                f"control port; see `docker logs {self.container(0)}`")

    def apply(self, op: TimelineOp) -> None:
        if self.spec is None or self.project is None:
            raise TestnetError("testnet is not up")
        if isinstance(op, Isolate):
            assert self.network is not None
            docker("network", "disconnect", "--force", self.network, self.container(op.node))
            self._isolated.add(op.node)
        elif isinstance(op, Heal):
            assert self.network is not None
            for index in sorted(self._isolated):
                docker("network", "connect", "--ip", self.ips[index], self.network,
                       self.container(index))
            self._isolated.clear()
            super().apply(op)
        else:
            super().apply(op)

    def _kill(self, op: Kill) -> None:
        docker("kill", self.container(op.node), check=False)
        self._stopped.add(op.node)
        self._paused.discard(op.node)

    def _pause(self, op: Pause) -> None:
        docker("pause", self.container(op.node))
        self._paused.add(op.node)

    def _unpause(self, op: Unpause) -> None:
        docker("unpause", self.container(op.node))
        self._paused.discard(op.node)

    def _restart(self, op: Restart) -> None:
        if op.node in self._paused:
            docker("unpause", self.container(op.node), check=False)
            self._paused.discard(op.node)
        if op.node not in self._stopped:
            docker("kill", self.container(op.node), check=False)
        docker("start", self.container(op.node))
        self._stopped.discard(op.node)
        if op.node not in self._isolated:  # unplugged: its control port is unreachable
            self._replay_rules(op.node)

    # --------------------------------------------------------------------- queries

    def status(self) -> dict[int, NodeStatus]:
        statuses = super().status()
        for index in self._isolated - self._stopped - self._paused:
            # Alive but unplugged: its control port is unreachable too.
            statuses[index] = NodeStatus(index, True, frozenset(),
                                         "isolated (docker network disconnect)")
        return statuses

    def _node_logs(self, node: int) -> str:
        return docker("logs", self.container(node), check=False, timeout=30, with_stderr=True)

    def memory_bytes(self) -> dict[int, int]:
        """Memory use per running container (cgroup figure from ``docker stats``)."""
        out = docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}",
                     *[self.container(i) for i in self.ips if self._running(i)], timeout=120)
        usage: dict[int, int] = {}
        for line in out.splitlines():
            name, _, mem = line.partition(" ")
            index = int(name.rsplit("-v", 1)[1])
            usage[index] = _parse_size(mem.split("/")[0].strip())
        return usage


_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]+)", text)
    if match is None:
        raise TestnetError(f"unreadable docker stats size {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def create_backend(run_dir: Path | None = None) -> DockerComposeBackend:
    """The backend ``--backend docker`` / ``--testnet docker`` uses."""
    return DockerComposeBackend(run_dir=run_dir)
