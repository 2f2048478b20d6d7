"""LocalProcessBackend: N real node processes on 127.0.0.1, driven through their control channels.

Each node is ``jamsim node --keys FILE --index i --control-port P --telemetry
H:P --policy NAME [--policy-set k=v ...]`` (argv built by :func:`node_argv`).
Link conditions and partitions go to each node's impairment layer via
:mod:`jamsim.net.control` (:class:`jamsim.testnet.backend.NodeBackend`, as on
every backend); kill/pause/unpause are SIGKILL/SIGSTOP/SIGCONT.

Cleanup is the point of most of this file: every pid is written to
``run_dir/state.json`` as soon as it exists, nodes run in their own process
group, and ``down`` (also from atexit, SIGTERM/SIGINT and ``__exit__``, or from a
fresh harness via ``jamsim testnet down``) kills every recorded group.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jamsim.net.control import ControlError, control_request
from jamsim.testnet.backend import NodeBackend
from jamsim.testnet.base import Kill, NodeStatus, Pause, Restart, TestnetError, TestnetSpec, Unpause
from jamsim.testnet.keys import generate_keys, load_keys, write_keys
from jamsim.testnet.shared import (
    STATE_FILE,
    key_index,
    node_options,
    node_status,
    read_state_file,
)

# ``jamsim node`` without importing the whole CLI: jamsim.cli pulls in pandas and
# matplotlib, ~170 MB RSS per process instead of ~40 MB, which decides whether 64
# nodes fit on a small machine.
DEFAULT_NODE_COMMAND: tuple[str, ...] = (
    sys.executable,
    "-c",
    "import sys, typer; sys.argv[0] = 'jamsim-node'; "
    "from jamsim.net.commands import node_command; typer.run(node_command)",
)


def node_argv(
    prefix: Sequence[str],
    spec: TestnetSpec,
    keys_file: Path,
    index: int,
    control_port: int,
    telemetry: tuple[str, int] | None,
) -> list[str]:
    """The command line of node ``index`` (the contract with ``jamsim node``)."""
    argv = [*prefix, "--keys", str(keys_file), "--index", str(index)]
    return [*argv, "--control-port", str(control_port), *node_options(spec, telemetry)]


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the node's process group (it is its own leader); ignore ones already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def down_run_dir(run_dir: Path) -> int:
    """Kill every process recorded in ``run_dir``'s state file; returns how many were signalled.

    Used by ``jamsim testnet down`` after a crashed harness; safe to repeat.
    """
    path = Path(run_dir) / STATE_FILE
    state = read_state_file(run_dir)
    if state is None:
        return 0
    try:
        pids = [int(p) for p in state.get("pids", {}).values()]
    except (ValueError, TypeError, AttributeError) as exc:
        raise TestnetError(f"{path}: unreadable state file: {exc}") from exc
    count = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGCONT)  # a stopped group would not die on SIGTERM
            os.killpg(pid, signal.SIGKILL)
            count += 1
    path.unlink(missing_ok=True)
    return count


def status_run_dir(run_dir: Path, timeout: float = 2.0) -> dict[int, NodeStatus]:
    """Status of a (possibly detached) local testnet from its state file, via control channels."""
    path = Path(run_dir) / STATE_FILE
    try:
        state = read_state_file(run_dir)
        if state is None:
            raise FileNotFoundError(path)
        pids = {int(i): int(p) for i, p in state["pids"].items()}
        ports = {int(i): int(p) for i, p in state["control_ports"].items()}
        _genesis, vset, _ids = load_keys(Path(state["keys_file"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TestnetError(f"{path}: no usable local testnet state: {exc}") from exc
    names = key_index(vset)
    out: dict[int, NodeStatus] = {}
    for index, pid in sorted(pids.items()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            out[index] = NodeStatus(index, False)
            continue
        try:
            body = control_request(("127.0.0.1", ports[index]), {"op": "status"}, timeout)
            out[index] = node_status(index, body["status"], names)
        except (ControlError, KeyError, AttributeError) as exc:
            out[index] = NodeStatus(index, True, frozenset(), str(exc))
    return out


class LocalProcessBackend(NodeBackend):
    """Real node processes on loopback.  ``with LocalProcessBackend() as tn: tn.up(spec)``."""

    backend_name = "local"

    def __init__(
        self,
        node_command: Sequence[str] | None = None,
        control_timeout: float = 2.0,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(control_timeout)
        if node_command is None:
            # JAMSIM_NODE_COMMAND lets a user run another node build (or a test stand-in)
            override = os.environ.get("JAMSIM_NODE_COMMAND")
            node_command = shlex.split(override) if override else DEFAULT_NODE_COMMAND
        self.node_command = tuple(node_command)
        self.env = env
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ lifecycle

    def _is_up(self) -> bool:
        return bool(self.procs)

    def _clear_leftovers(self, spec: TestnetSpec) -> None:
        down_run_dir(Path(spec.run_dir))  # a crashed run using the same ports

    def _deploy(self, spec: TestnetSpec, run_dir: Path) -> None:
        if spec.keys_file is not None:
            self.keys_file = Path(spec.keys_file)
        else:
            self.keys_file = run_dir / "keys.json"
            write_keys(
                self.keys_file,
                generate_keys(
                    spec.validators,
                    seed=spec.seed,
                    base_port=spec.base_port,
                    regions=spec.region_names(),
                ),
            )
        self._use_validator_set(load_keys(self.keys_file)[1])
        for index, (_host, port) in self.addresses.items():
            # TCP and UDP port spaces are separate: the control channel uses the node's
            # UDP port number over TCP, staying out of the ephemeral range used above it
            self.control_ports[index] = port
        self._start_collector()
        (run_dir / "logs").mkdir(exist_ok=True)
        for index in range(spec.validators):
            self._start(index)
        self._apply_spec_links()

    def _start(self, index: int) -> None:
        assert self.spec is not None and self.keys_file is not None
        argv = node_argv(
            self.node_command,
            self.spec,
            self.keys_file,
            index,
            self.control_ports[index],
            self._telemetry,
        )
        log = open(self._log_path(index), "ab")  # noqa: SIM115 - owned by the child
        try:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(self.env or {})},
            )
        finally:
            log.close()
        self.procs[index] = proc
        self._paused.discard(index)
        self._write_state()

    def _log_path(self, index: int) -> Path:
        assert self.spec is not None
        return Path(self.spec.run_dir) / "logs" / f"node-{index}.log"

    def _state_fields(self) -> dict[str, Any]:
        return {"pids": {str(i): p.pid for i, p in self.procs.items()},
                "control_ports": {str(i): p for i, p in self.control_ports.items()}}

    def _remove_nodes(self) -> None:
        for index, proc in list(self.procs.items()):
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGCONT)
                _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            del self.procs[index]
        if self.spec is not None:
            down_run_dir(Path(self.spec.run_dir))

    def _release_nodes(self) -> None:
        self.procs.clear()

    # -------------------------------------------------------------------- control

    def _control_host(self, index: int) -> str:
        return "127.0.0.1"

    def _node_exited(self, index: int) -> str | None:
        """Why node ``index`` can never answer (its process exited), or None."""
        proc = self.procs.get(index)
        if proc is not None and proc.poll() is not None:
            lines = self.logs(index).strip().splitlines()
            last = f" ({lines[-1].strip()})" if lines else ""
            return f"node {index} exited with {proc.returncode}; log: {self._log_path(index)}{last}"
        return None

    def _running(self, index: int) -> bool:
        proc = self.procs.get(index)
        return proc is not None and proc.poll() is None and index not in self._paused

    def _kill(self, op: Kill) -> None:
        proc = self._proc(op.node)
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def _pause(self, op: Pause) -> None:
        _kill_group(self._proc(op.node).pid, signal.SIGSTOP)
        self._paused.add(op.node)

    def _unpause(self, op: Unpause) -> None:
        _kill_group(self._proc(op.node).pid, signal.SIGCONT)
        self._paused.discard(op.node)

    def _restart(self, op: Restart) -> None:
        proc = self._proc(op.node)
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGCONT)
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait(5)
        self._start(op.node)
        self._replay_rules(op.node)

    def _proc(self, index: int) -> subprocess.Popen[bytes]:
        proc = self.procs.get(index)
        if proc is None:
            raise TestnetError(f"no node {index}")
        return proc

    # --------------------------------------------------------------------- queries

    def logs(self, node: int) -> str:
        try:
            return self._log_path(node).read_text(errors="replace")
        except OSError:
            return ""

    def pids(self) -> dict[int, int]:
        return {i: p.pid for i, p in self.procs.items()}
