"""What the compose and swarm backends share: the node image's command, and a run's lifecycle.

Both run ``jamsim node`` from the same image (:data:`NODE_ENTRYPOINT`), name
everything they create after the run folder (:func:`project_name`) with the
label ``jamsim.testnet=<project>``, and must be found again by a fresh harness
(``jamsim testnet status|logs|down --backend docker|swarm --run-dir D``) from the
run's state file, also after the harness that started them crashed.
:class:`ContainerBackend` is that skeleton: ``up`` (checks, leftovers, cleanup
handlers, tear down on failure), ``down``, the state file and attaching to it,
and the "nothing started here" errors of ``status`` and ``logs``. A subclass
says only what differs: how to deploy, what to remove, which fields of the
state file are its own, and how to read a node's log.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from abc import abstractmethod
from pathlib import Path
from typing import Any

from jamsim.identity import ValidatorSet
from jamsim.testnet.backend import NodeBackend
from jamsim.testnet.base import NodeStatus, TestnetError, TestnetSpec
from jamsim.testnet.docker_cli import engine_reachable
from jamsim.testnet.image import NODE_IMAGE, ensure_image
from jamsim.testnet.keys import load_keys
from jamsim.testnet.shared import (
    STATE_FILE,
    key_index,
    node_options,
    read_state_file,
)

__all__ = [
    "GATE_IN_CONTAINER",
    "KEYS_IN_CONTAINER",
    "NODE_ENTRYPOINT",
    "NODE_PORT",
    "ContainerBackend",
    "node_command_args",
    "project_name",
    "require_engine",
]

NODE_PORT = 40000
"""UDP port of every node inside its container (each container has its own IP)."""
KEYS_IN_CONTAINER = "/jamsim/keys.json"
"""Where the keys file is mounted (compose) or placed as a config (swarm)."""
GATE_IN_CONTAINER = "/jamsim/gate"
"""A directory mounted from ``run_dir/gate``: nodes wait for ``open`` in it to start.

Why: ``compose up`` starts containers one after another (~0.2 s each, 14 s for
64). Without a gate the first nodes spend that time dialling peers that do not
exist yet and back off (up to ``max_retry``) just as those peers appear, and
their handshakes compete for CPU with the remaining containers' Python imports.
With it every node imports first, then all start together once the last
container is up: a common genesis, as a real validator set launch has. A
restarted container finds the gate open and starts at once; without the mount
(swarm) there is no wait.
"""
NODE_ENTRYPOINT = [
    "/opt/jamsim/bin/python", "-c",
    # `jamsim node` without importing the whole CLI (pandas, matplotlib): ~40 MB
    # instead of ~170 MB per container.
    "import os, sys, time, typer\n"
    "from jamsim.net.commands import node_command\n"
    f"gate = '{GATE_IN_CONTAINER}'\n"
    "deadline = time.monotonic() + 600\n"
    "while os.path.isdir(gate) and not os.path.exists(gate + '/open') "
    "and time.monotonic() < deadline:\n"
    "    time.sleep(0.05)  # bounded wait for the harness to open the gate\n"
    "sys.argv[0] = 'jamsim-node'\n"
    "typer.run(node_command)\n",
]


def project_name(spec: TestnetSpec) -> str:
    """A compose project name: the spec's name plus a hash of its run folder.

    Two runs with the same scenario name in different folders must not tear
    each other down.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:30] or "testnet"
    digest = hashlib.sha1(str(Path(spec.run_dir).resolve()).encode()).hexdigest()[:8]
    return f"jamsim-{slug}-{digest}"


def require_engine() -> None:
    """Raise :class:`TestnetError` saying what to do when no Docker engine answers."""
    if not engine_reachable():
        raise TestnetError("no Docker engine reachable (`docker info` failed): "
                           "start dockerd or use --testnet local")


def node_command_args(spec: TestnetSpec, index: int, telemetry: tuple[str, int] | None,
                      resolve_hosts: int | None = None) -> list[str]:
    """Arguments after the entrypoint for validator ``index``.

    The control channel listens on all of the container's addresses: the
    harness reaches it from outside. ``resolve_hosts``: seconds the node waits
    for peer names in the keys file to resolve (swarm names tasks, not IPs).
    """
    args = ["--keys", KEYS_IN_CONTAINER, "--index", str(index),
            "--control-port", str(NODE_PORT), "--control-host", "0.0.0.0"]
    if resolve_hosts is not None:
        args += ["--resolve-hosts", str(resolve_hosts)]
    return [*args, *node_options(spec, telemetry)]


class ContainerBackend(NodeBackend):
    """A testnet whose nodes run in containers of one labelled docker project.

    Subclasses set :attr:`backend_name` and implement :meth:`_clear_leftovers`,
    :meth:`_deploy`, :meth:`_remove_project`, :meth:`_state_fields`,
    :meth:`_restore_state`, :meth:`_control_host`, :meth:`_running` and
    :meth:`_node_logs`.
    """

    def __init__(self, image: str = NODE_IMAGE, control_timeout: float = 5.0,
                 run_dir: Path | None = None) -> None:
        super().__init__(control_timeout, run_dir)
        self.image = image
        self.project: str | None = None
        self.network: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def build(self) -> None:
        """Make sure the node image exists (built offline if no registry is reachable)."""
        require_engine()
        ensure_image(tag=self.image)

    def _is_up(self) -> bool:
        return self.project is not None

    def _check_host(self) -> None:
        require_engine()

    def _claim(self, spec: TestnetSpec, run_dir: Path) -> None:
        super()._claim(spec, run_dir)
        self.project = project_name(spec)

    def _remove_nodes(self) -> None:
        self._load_state()
        if self.project is not None:
            self._remove_project()
        # No project and no state: nothing of ours to remove. (Removing every
        # jamsim-labelled container here would take down other harnesses'
        # testnets whenever an unused backend leaves a `with` block;
        # `jamsim testnet down --all` does that on purpose.)
        if self._state_dir is not None:
            (Path(self._state_dir) / STATE_FILE).unlink(missing_ok=True)
        self.project = None

    @abstractmethod
    def _remove_project(self) -> None:
        """Remove every container, service, network and config of ``self.project``."""

    # ------------------------------------------------------------------ state file

    def _state_fields(self) -> dict[str, Any]:
        return {"project": self.project, **self._project_fields()}

    @abstractmethod
    def _project_fields(self) -> dict[str, Any]:
        """This backend's own fields of the state file (what :meth:`_restore_state` reads)."""

    def _load_state(self) -> None:
        """Attach to a testnet started by another harness (``status``/``logs``/``down``)."""
        if self.project is not None or self._state_dir is None:
            return
        try:
            state = read_state_file(Path(self._state_dir))
        except TestnetError:
            return
        if state is None or state.get("backend") != self.backend_name:
            return
        self.project = state["project"]
        count = self._restore_state(state)
        self.keys_file = Path(state["keys_file"])
        self.spec = TestnetSpec(validators=count, run_dir=Path(self._state_dir),
                                name=state.get("name", "jamsim"))
        with contextlib.suppress(OSError, ValueError):
            self._key_index.update(key_index(self._read_validator_set()))

    @abstractmethod
    def _restore_state(self, state: dict[str, Any]) -> int:
        """Take this backend's fields back from ``state`` (control ports included).

        Returns the number of validators.
        """

    def _read_validator_set(self) -> ValidatorSet:
        """The validator set of the run's keys file (to name the peers nodes report)."""
        assert self.keys_file is not None
        return load_keys(self.keys_file)[1]

    # --------------------------------------------------------------------- queries

    def _nothing_here(self) -> TestnetError:
        return TestnetError(f"no {self.backend_name} testnet here: "
                            "nothing started from this run folder")

    def status(self) -> dict[int, NodeStatus]:
        self._load_state()
        if self.spec is None:
            raise self._nothing_here()
        return super().status()

    def logs(self, node: int) -> str:
        self._load_state()
        if self.project is None:
            raise self._nothing_here()
        return self._node_logs(node)

    def pids(self) -> dict[int, int]:
        """No host processes of the harness's own: nodes are containers."""
        return {}

    @abstractmethod
    def _node_logs(self, node: int) -> str:
        """What validator ``node``'s container printed (stdout and stderr)."""
