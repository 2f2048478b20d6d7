"""SwarmBackend: the same testnet as a ``docker stack`` on an overlay network.

For runs across hosts. What changes from the compose backend, and why:

* **Addresses.** Swarm assigns task addresses when tasks start, so the keys file
  names peers (``tasks.v3``) and nodes resolve them at startup
  (``jamsim node --resolve-hosts``). The harness learns each node's address
  from its status answer and uses it for impairment rules.
* **Control channel.** Overlay addresses are not routable from the host, so each
  node's control port is published in host mode at ``control_base + index`` (a
  block of ports free when the stack starts) on
  the machine running its task (the ingress routing mesh is not used: it needs
  IPVS, which minimal hosts such as this project's CI lack); the harness looks
  up each task's machine and connects there.
* **Telemetry.** The collector listens on all interfaces of the harness host;
  tasks reach it through ``docker_gwbridge``'s gateway on a single host, or at
  ``JAMSIM_TELEMETRY_HOST`` (the manager's address) across hosts.
* **Faults.** Partitions, heal and link conditions go through the impairment
  layer as everywhere else. Kill/restart, pause and network disconnect act on
  containers, which on a multi-host swarm live on other machines, and a killed
  task comes back with a new address that its peers would not know: those ops
  raise :class:`TestnetError` instead of silently doing something else.

The engine must already be a swarm manager (``docker swarm init``); the backend
never changes the engine's swarm membership. Cleanup removes the stack and
anything labelled ``jamsim.testnet=<project>``.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from jamsim.identity import ValidatorSet
from jamsim.net.control import ControlError
from jamsim.testnet.base import ContainerOp, TestnetError, TestnetSpec, TimelineOp
from jamsim.testnet.container import (
    KEYS_IN_CONTAINER,
    NODE_ENTRYPOINT,
    NODE_PORT,
    ContainerBackend,
    node_command_args,
)
from jamsim.testnet.docker_cli import LABEL, docker, remove_labelled
from jamsim.testnet.image import NODE_IMAGE
from jamsim.testnet.keys import generate_keys, parse_keys, write_keys

__all__ = ["SwarmBackend", "create_backend", "stack_document", "swarm_active"]

FIRST_CONTROL_PORT = 22000
"""Where the search for a free block of published control ports starts (below
Linux's ephemeral range, so outgoing connections do not take them meanwhile)."""
PLACEHOLDER_HOST = "127.0.0.1"
"""Stands in for task names where an IP is required (see :func:`task_validator_set`)."""


def swarm_active() -> bool:
    """True when this engine is an active swarm manager."""
    out = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
                 check=False).split()
    return out[:2] == ["active", "true"]


def task_validator_set(document: dict[str, Any], source: str) -> ValidatorSet:
    """The validator set of a swarm keys document, whose hosts are task names.

    A validator address must be an IP (JAMNP-S metadata holds one), so the
    names are replaced by :data:`PLACEHOLDER_HOST` to validate the document and
    read keys and regions; the harness learns the real addresses from the nodes.
    """
    placeholder = copy.deepcopy(document)
    for entry in placeholder.get("validators", []):
        entry["host"] = PLACEHOLDER_HOST
    return parse_keys(placeholder, source)[1]


def stack_document(spec: TestnetSpec, project: str, network: str, keys_config: str,
                   telemetry: tuple[str, int] | None, image: str = NODE_IMAGE,
                   control_base: int = FIRST_CONTROL_PORT) -> dict[str, Any]:
    """The stack file: one single-replica service per validator on ``network``."""
    services: dict[str, Any] = {}
    for index in range(spec.validators):
        command = node_command_args(spec, index, telemetry, resolve_hosts=120)
        services[f"v{index}"] = {
            "image": image,
            "entrypoint": NODE_ENTRYPOINT,
            "command": command,
            "networks": [network],
            "configs": [{"source": keys_config, "target": KEYS_IN_CONTAINER}],
            "ports": [{"target": NODE_PORT, "published": control_base + index,
                       "protocol": "tcp", "mode": "host"}],
            "labels": {LABEL: project},
            "deploy": {
                "replicas": 1,
                "labels": {LABEL: project, f"{LABEL}.index": str(index)},
                # A restarted task would get a new address its peers do not know.
                "restart_policy": {"condition": "none"},
            },
        }
    return {
        "version": "3.8",
        "services": services,
        "networks": {network: {"external": True, "name": network}},
        "configs": {keys_config: {"external": True, "name": keys_config}},
    }


class SwarmBackend(ContainerBackend):
    """Validators as services of one swarm stack. Needs an active swarm manager."""

    backend_name = "swarm"
    control_wait = 120.0  # tasks are scheduled, then each resolves its peers' names
    control_poll = 0.25

    def __init__(self, image: str = NODE_IMAGE, control_timeout: float = 3.0,
                 run_dir: Path | None = None, control_base: int | None = None) -> None:
        super().__init__(image, control_timeout, run_dir)
        self.control_base = control_base
        self.stack_file: Path | None = None
        self._task_hosts: dict[int, str] = {}

    def _check_host(self) -> None:
        super()._check_host()
        if not swarm_active():
            raise TestnetError("this engine is not a swarm manager: run `docker swarm init` "
                               "(or join a swarm as a manager), or use --backend docker")

    def _clear_leftovers(self, spec: TestnetSpec) -> None:
        self._remove_stack()

    def _deploy(self, spec: TestnetSpec, run_dir: Path) -> None:
        assert self.project is not None
        self.network = self.project
        docker("network", "create", "--driver", "overlay", "--attachable",
               "--label", f"{LABEL}={self.project}", self.network)
        self._write_keys(spec, run_dir)
        self._start_collector()
        assert self.keys_file is not None
        keys_config = f"{self.project}-keys"
        docker("config", "create", "--label", f"{LABEL}={self.project}", keys_config,
               str(self.keys_file))
        if self.control_base is None:
            # A fixed block could collide with other programs: take one free now.
            from jamsim.scenario.testnet_runner import free_base_port

            self.control_base = free_base_port(spec.validators, first=FIRST_CONTROL_PORT)
        self.stack_file = run_dir / "stack.yml"
        self.stack_file.write_text(yaml.safe_dump(stack_document(
            spec, self.project, self.network, keys_config, self._telemetry, self.image,
            self.control_base), sort_keys=False))
        self._write_state()
        docker("stack", "deploy", "--compose-file", str(self.stack_file), self.project,
               timeout=120 + 5 * spec.validators)
        self.control_ports = {i: self.control_base + i for i in range(spec.validators)}
        self._wait_control(set(range(spec.validators)))
        self._learn_addresses()
        self._apply_spec_links(wait=False)

    def _write_keys(self, spec: TestnetSpec, run_dir: Path) -> None:
        document = generate_keys(spec.validators, seed=spec.seed, base_port=NODE_PORT,
                                 regions=spec.region_names(),
                                 hosts=[f"tasks.v{i}" for i in range(spec.validators)])
        self.keys_file = run_dir / "keys.json"
        vset = task_validator_set(document, str(self.keys_file))
        write_keys(self.keys_file, document)
        self._use_validator_set(vset, addresses=False)

    def _read_validator_set(self) -> ValidatorSet:
        assert self.keys_file is not None
        return task_validator_set(json.loads(self.keys_file.read_text()), str(self.keys_file))

    def _collector_hosts(self) -> tuple[str, str | None]:
        """All interfaces; tasks are told this host's address on their bridge (or the env's)."""
        return "0.0.0.0", os.environ.get("JAMSIM_TELEMETRY_HOST") or _host_address_for_tasks()

    def _learn_addresses(self) -> None:
        """Each node's overlay address, as it resolved it, for impairment rules."""
        for index in self.control_ports:
            body = self._control(index, {"op": "status"})["status"]
            self.addresses[index] = (str(body["host"]), int(body["port"]))

    def _project_fields(self) -> dict[str, Any]:
        assert self.spec is not None
        return {"validators": self.spec.validators, "control_base": self.control_base}

    def _restore_state(self, state: dict[str, Any]) -> int:
        count = int(state["validators"])
        self.control_base = int(state["control_base"])
        self.control_ports = {i: self.control_base + i for i in range(count)}
        return count

    def _remove_stack(self) -> None:
        assert self.project is not None
        docker("stack", "rm", self.project, check=False, timeout=120)
        # Services go first; their tasks' network endpoints a moment later.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and docker(
                "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={self.project}",
                check=False).strip():
            time.sleep(0.5)  # bounded wait for task containers to go
        remove_labelled(self.project)
        for config in docker("config", "ls", "-q", "--filter", f"label={LABEL}={self.project}",
                             check=False).split():
            docker("config", "rm", config, check=False)

    def _remove_project(self) -> None:
        if swarm_active():
            self._remove_stack()

    def _control_host(self, index: int) -> str:
        """Address of the swarm node running validator ``index``'s task (cached)."""
        host = self._task_hosts.get(index)
        if host is None:
            node = docker("service", "ps", f"{self.project}_v{index}", "--filter",
                          "desired-state=running", "--format", "{{.Node}}",
                          check=False).split()
            if not node:
                raise ControlError(f"validator {index}: task not scheduled yet")
            addr = docker("node", "inspect", node[0], "--format", "{{.Status.Addr}}",
                          check=False).strip()
            host = addr if addr and addr != "0.0.0.0" else "127.0.0.1"
            self._task_hosts[index] = host
        return host

    def _running(self, index: int) -> bool:
        return self.project is not None and index in self.control_ports

    def _timeout_hint(self, pending: list[int]) -> str:
        return (f"services {pending} never answered on their published control ports "
                f"(from {self.control_base}). {self._diagnose(min(pending))}")

    def _diagnose(self, index: int) -> str:
        """What swarm says about a service's tasks, and the end of its log."""
        service = f"{self.project}_v{index}"
        tasks = docker("service", "ps", "--no-trunc", "--format",
                       "{{.Name}} {{.CurrentState}} {{.Error}}", service, check=False).strip()
        log_tail = docker("service", "logs", "--raw", "--tail", "15", service, check=False,
                          with_stderr=True, timeout=30).strip()
        return f"Tasks of {service}: {tasks or '(none)'}. Last log lines: {log_tail or '(none)'}"

    def apply(self, op: TimelineOp) -> None:
        if isinstance(op, ContainerOp):
            raise TestnetError(
                f"{type(op).__name__} is not supported on the swarm backend: tasks live on "
                "other hosts and a restarted task gets a new address. Use partitions "
                "(impairment) here, or --backend docker for process-level faults.")
        super().apply(op)

    def _node_logs(self, node: int) -> str:
        return docker("service", "logs", "--raw", f"{self.project}_v{node}", check=False,
                      with_stderr=True)


def _host_address_for_tasks() -> str:
    """An address of this host that local tasks reach (their traffic leaves via a bridge).

    ``docker_gwbridge`` exists only once a task has attached to an overlay, so the
    default bridge's gateway (always present) is the fallback. Across hosts, set
    JAMSIM_TELEMETRY_HOST to this machine's address on the swarm's network.
    """
    for network in ("docker_gwbridge", "bridge"):
        out = docker("network", "inspect", network, "--format", "{{json .IPAM.Config}}",
                     check=False).strip()
        try:
            configs = json.loads(out) if out else []
        except ValueError:
            continue
        for config in configs or []:
            if config.get("Gateway"):
                return str(config["Gateway"])
            # The default bridge often lists only its subnet; Docker gives the
            # bridge the subnet's first address (docker0 = 172.17.0.1).
            with contextlib.suppress(ValueError, KeyError):
                subnet = ipaddress.ip_network(config["Subnet"])
                if subnet.version == 4:
                    return str(next(subnet.hosts()))
    raise TestnetError("no bridge gateway found for telemetry; set JAMSIM_TELEMETRY_HOST")


def create_backend(run_dir: Path | None = None) -> SwarmBackend:
    """The backend ``--backend swarm`` / ``--testnet swarm`` uses."""
    return SwarmBackend(run_dir=run_dir)
