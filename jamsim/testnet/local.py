"""LocalProcessBackend: N real node processes on 127.0.0.1, driven through their control channels.

Each node is ``jamsim node --keys FILE --index i --control-port P --telemetry
H:P --policy NAME [--policy-set k=v ...]`` (argv built by :func:`node_argv`).
Link conditions and partitions go to each node's impairment layer via
:mod:`jamsim.net.control`; kill/pause/unpause are SIGKILL/SIGSTOP/SIGCONT.

Cleanup is the point of most of this file: every pid is written to
``run_dir/state.json`` as soon as it exists, nodes run in their own process
group, and ``down`` (also from atexit, SIGTERM/SIGINT and ``__exit__``, or from a
fresh harness via ``jamsim testnet down``) kills every recorded group.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Self

from jamsim.identity import ValidatorSet, alt_name
from jamsim.links import LinkSpec
from jamsim.net.control import ControlError, control_request
from jamsim.telemetry.records import EventRecord
from jamsim.testnet.base import (
    Heal,
    Isolate,
    Kill,
    NodeStatus,
    Partition,
    Pause,
    Restart,
    SetLink,
    TestnetError,
    TestnetSpec,
    TimelineOp,
    Unpause,
    full_mesh,
)
from jamsim.testnet.keys import generate_keys, load_keys, write_keys

STATE_FILE = "state.json"
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


def node_options(spec: TestnetSpec, telemetry: tuple[str, int] | None) -> list[str]:
    """The ``jamsim node`` options every backend passes the same way: policy and telemetry."""
    options = ["--policy", spec.policy]
    for name, value in sorted(spec.policy_overrides.items()):
        options += ["--policy-set", f"{name}={'none' if value is None else value}"]
    if telemetry is not None:
        options += ["--telemetry", f"{telemetry[0]}:{telemetry[1]}"]
    return options + traffic_options(spec)


def with_traffic_start(spec: TestnetSpec) -> TestnetSpec:
    """``spec`` with slot 0 fixed to now when it sends traffic and no start was given.

    Every node, and a node restarted later, must share one slot clock, so the
    start is fixed once when the testnet comes up, not per node command line.
    """
    if spec.traffic is None or spec.traffic_start is not None:
        return spec
    return dataclasses.replace(spec, traffic_start=time.time())


def traffic_options(spec: TestnetSpec) -> list[str]:
    """``jamsim node`` options for the run's slot traffic (none when it is off)."""
    t = spec.traffic
    if t is None:
        return []
    start = spec.traffic_start if spec.traffic_start is not None else time.time()
    options = [
        "--traffic-start", repr(start), "--traffic-seed", str(spec.seed),
        "--traffic-slot", repr(t.slot), "--traffic-lead", repr(t.assurance_lead),
        "--traffic-block-size", str(t.block_size), "--traffic-first-slot", str(t.first_slot),
    ]
    if t.core_count is not None:
        options += ["--traffic-cores", str(t.core_count)]
    return options


def key_index(vset: ValidatorSet) -> dict[str, int]:
    """Validator index by each name a node's status may give a peer: hex key and alt-name."""
    names = {info.key.hex(): info.index for info in vset}
    names.update({alt_name(info.key): info.index for info in vset})
    return names


def write_state_file(run_dir: Path, state: dict[str, Any]) -> None:
    """Replace ``run_dir``'s state file in one step (write a temporary file, then rename).

    Why atomic: ``jamsim testnet down`` from another process may read it at any
    moment, also while a crashing harness is writing it; it must see the old
    state or the new one, never half a file.
    """
    path = Path(run_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def read_state_file(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir``'s state file, or None when there is none.

    Raises :class:`TestnetError` naming the file when it exists but is not a
    JSON object (every backend reads it through here, so they agree on that).
    """
    path = Path(run_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TestnetError(f"{path}: unreadable state file: {exc}") from exc
    if not isinstance(state, dict):
        raise TestnetError(f"{path}: unreadable state file: not a JSON object")
    return state


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
            peers = body["status"].get("connected", [])
            traffic = body["status"].get("traffic")
            out[index] = NodeStatus(index, True, frozenset(names[p] for p in peers if p in names),
                                    traffic=traffic if isinstance(traffic, dict) else None)
        except (ControlError, KeyError, AttributeError) as exc:
            out[index] = NodeStatus(index, True, frozenset(), str(exc))
    return out


class _CollectorThread:
    """The harness's telemetry collector on a private event loop thread (the backend is sync)."""

    def __init__(self, key_to_index: dict[bytes, int], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        from jamsim.telemetry.collector import TelemetryCollector

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.collector = TelemetryCollector(key_to_index, time.time(), host=host, port=port)
        try:
            asyncio.run_coroutine_threadsafe(self.collector.start(), self._loop).result(5)
        except OSError as exc:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            raise TestnetError(f"the telemetry collector cannot listen on {host}:{port} "
                               f"({exc.strerror}); choose another --base-port") from None

    @property
    def address(self) -> tuple[str, int]:
        return self.collector.address

    def records(self) -> list[EventRecord]:
        async def get() -> list[EventRecord]:
            return self.collector.records

        return asyncio.run_coroutine_threadsafe(get(), self._loop).result(5)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.collector.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class LocalProcessBackend:
    """Real node processes on loopback.  ``with LocalProcessBackend() as tn: tn.up(spec)``."""

    control_wait: float = 30.0
    """Seconds a started node gets to answer on its control channel."""
    control_poll: float = 0.05
    """Seconds between pings while waiting for that."""

    def __init__(
        self,
        node_command: Sequence[str] | None = None,
        control_timeout: float = 2.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if node_command is None:
            # JAMSIM_NODE_COMMAND lets a user run another node build (or a test stand-in)
            override = os.environ.get("JAMSIM_NODE_COMMAND")
            node_command = shlex.split(override) if override else DEFAULT_NODE_COMMAND
        self.node_command = tuple(node_command)
        self.control_timeout = control_timeout
        self.env = env
        self.spec: TestnetSpec | None = None
        self.keys_file: Path | None = None
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.addresses: dict[int, tuple[str, int]] = {}
        self.control_ports: dict[int, int] = {}
        self._key_index: dict[str, int] = {}
        self._regions: dict[int, str] = {}
        self._vset: ValidatorSet | None = None
        self._collector: _CollectorThread | None = None
        self._telemetry: tuple[str, int] | None = None
        self._paused: set[int] = set()
        # control requests in force per node, replayed when a node restarts
        self._in_force: dict[int, list[dict[str, Any]]] = {}
        self._old_handlers: dict[int, Any] = {}
        self._registered = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def build(self) -> None:
        """Nothing to build: nodes run from this Python environment."""

    def up(self, spec: TestnetSpec) -> None:
        if self.procs:
            raise TestnetError("testnet already up; call down() first")
        spec = with_traffic_start(spec)
        self.spec = spec
        run_dir = Path(spec.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        down_run_dir(run_dir)  # leftovers from a crashed run using the same ports
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
        self._install_cleanup()
        self._start_collector()
        (run_dir / "logs").mkdir(exist_ok=True)
        try:
            for index in range(spec.validators):
                self._start(index)
            self._apply_spec_links()
        except BaseException:
            self.down()
            raise

    def _use_validator_set(self, vset: ValidatorSet, *, addresses: bool = True) -> None:
        """Learn the testnet's validators from its keys file's validator set.

        Every backend needs the same three things from it: which validator a
        peer key reported in a node's status is (``_key_index``), each node's
        region (to apply ``spec.links``) and the set itself (for the telemetry
        collector). ``addresses``: also take each node's address from the file
        (swarm learns them from the running nodes instead).
        """
        assert self.spec is not None
        if len(vset) != self.spec.validators:
            raise TestnetError(
                f"{self.keys_file}: has {len(vset)} validators, spec wants {self.spec.validators}"
            )
        if addresses:
            for info in vset:
                self.addresses[info.index] = (info.address.host, info.address.port)
        self._key_index.update(key_index(vset))
        self._regions = {info.index: info.region for info in vset}
        self._vset = vset

    def _start_collector(self) -> None:
        """Run the harness's JIP-3 collector, unless ``spec.telemetry`` names another one.

        Where it listens and the address nodes are told differ per backend
        (:meth:`_collector_hosts`); this is asked only when a collector is needed.
        """
        assert self.spec is not None and self._vset is not None
        if self.spec.telemetry is not None:
            self._telemetry = self.spec.telemetry
            return
        listen, advertised = self._collector_hosts()
        self._collector = _CollectorThread(
            {info.key: info.index for info in self._vset}, host=listen,
            port=self._collector_port(listen, advertised),
        )
        host, port = self._collector.address
        self._telemetry = (advertised or host, port)

    def _collector_hosts(self) -> tuple[str, str | None]:
        """(address the collector listens on, address nodes send to; None: the same)."""
        return "127.0.0.1", None

    def _collector_port(self, listen: str, advertised: str | None) -> int:
        """The collector's TCP port: on loopback, the one after the highest node port
        (``--base-port + validators`` for generated keys), so a run stays inside the
        port range it was given (firewalls, concurrent runs on one host); elsewhere
        (containers reach the host's bridge) any free port."""
        if listen != "127.0.0.1" or advertised is not None or not self.addresses:
            return 0
        return max(port for _host, port in self.addresses.values()) + 1

    def _stop_collector(self) -> None:
        if self._collector is not None:
            self._collector.stop()
            self._collector = None

    def _apply_spec_links(self, *, wait: bool = True) -> None:
        """Apply ``spec.links`` (conditions between regions) to the started nodes.

        ``wait``: first wait until every node answers on its control channel
        (the caller may already have done so).
        """
        assert self.spec is not None
        if not self.spec.links:
            return
        if wait:
            self._wait_control(set(range(self.spec.validators)))
        for (src, dst), cond in self.spec.links.items():
            srcs = tuple(i for i, r in self._regions.items() if r == src)
            dsts = tuple(i for i, r in self._regions.items() if r == dst)
            self.apply(SetLink(srcs, dsts, cond, symmetric=False))

    def _replay_rules(self, index: int) -> None:
        """Give a restarted node the control requests in force (a fresh process has none).

        Before it dials much: a partitioned node must not reconnect meanwhile.
        """
        if self._in_force.get(index):
            self._wait_control({index})
            for request in self._in_force[index]:
                self._control(index, request)

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

    def _write_state(self) -> None:
        assert self.spec is not None
        write_state_file(Path(self.spec.run_dir), {
            "backend": "local",
            "name": self.spec.name,
            "pids": {str(i): p.pid for i, p in self.procs.items()},
            "control_ports": {str(i): p for i, p in self.control_ports.items()},
            "keys_file": str(self.keys_file),
        })

    def down(self) -> None:
        for index, proc in list(self.procs.items()):
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGCONT)
                _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            del self.procs[index]
        if self.spec is not None:
            down_run_dir(Path(self.spec.run_dir))
        self._stop_collector()
        self._remove_cleanup()

    def detach(self) -> None:
        """Leave the nodes running after this harness exits (``jamsim testnet up --detach``).

        The state file keeps what they are (pids, containers or services);
        ``jamsim testnet down [--backend B] --run-dir D`` removes them. The
        in-harness telemetry collector stops, so detached nodes report only to
        an external collector (``spec.telemetry``).
        """
        self._remove_cleanup()
        self.procs.clear()
        self._stop_collector()

    def _install_cleanup(self) -> None:
        if not self._registered:
            atexit.register(self.down)
            self._registered = True
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _remove_cleanup(self) -> None:
        if self._registered:
            atexit.unregister(self.down)
            self._registered = False
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        old = self._old_handlers.get(signum)
        self.down()
        if callable(old):
            old(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)

    # -------------------------------------------------------------------- control

    def _control(self, index: int, request: dict[str, Any]) -> dict[str, Any]:
        return control_request(
            ("127.0.0.1", self.control_ports[index]), request, self.control_timeout
        )

    def _wait_control(self, nodes: set[int], timeout: float | None = None) -> None:
        """Ping ``nodes`` until each answers on its control channel (default: ``control_wait``).

        One loop for every backend; they differ only in :meth:`_node_exited` (how
        a dead node is noticed early) and :meth:`_timeout_hint` (where to look).
        """
        deadline = time.monotonic() + (self.control_wait if timeout is None else timeout)
        pending = set(nodes)
        while pending:
            for index in list(pending):
                exited = self._node_exited(index)
                if exited is not None:
                    raise TestnetError(exited)
                with contextlib.suppress(ControlError):
                    self._control(index, {"op": "ping"})
                    pending.discard(index)
            if pending and time.monotonic() > deadline:
                raise TestnetError(self._timeout_hint(sorted(pending)))
            if pending:
                time.sleep(self.control_poll)  # bounded poll while nodes start

    def _node_exited(self, index: int) -> str | None:
        """Why node ``index`` can never answer (its process exited), or None."""
        proc = self.procs.get(index)
        if proc is not None and proc.poll() is not None:
            lines = self.logs(index).strip().splitlines()
            last = f" ({lines[-1].strip()})" if lines else ""
            return f"node {index} exited with {proc.returncode}; log: {self._log_path(index)}{last}"
        return None

    def _timeout_hint(self, pending: list[int]) -> str:
        """The error when ``pending`` nodes never answered: what failed and where to look."""
        return f"nodes {pending} never answered on their control port"

    def _addrs(self, nodes: Sequence[int]) -> list[list[object]]:
        return [list(self.addresses[i]) for i in nodes]

    def _running(self, index: int) -> bool:
        proc = self.procs.get(index)
        return proc is not None and proc.poll() is None and index not in self._paused

    def apply(self, op: TimelineOp) -> None:
        if self.spec is None:
            raise TestnetError("testnet is not up")
        everyone = list(range(self.spec.validators))
        if isinstance(op, Partition):
            self._partition(op, everyone)
        elif isinstance(op, Isolate):
            others = [i for i in everyone if i != op.node]
            self._send(op.node, {"op": "isolate", "addrs": self._addrs(others)})
            for other in others:
                self._send(other, {"op": "isolate", "addrs": self._addrs([op.node])})
        elif isinstance(op, Heal):
            for index in everyone:
                self._send(index, {"op": "heal"})
        elif isinstance(op, SetLink):
            self._set_link(op.src, op.dst, op.conditions)
            if op.symmetric:
                self._set_link(op.dst, op.src, op.conditions)
        elif isinstance(op, Kill):
            self._proc(op.node)
            _kill_group(self.procs[op.node].pid, signal.SIGKILL)
            self.procs[op.node].wait(5)
        elif isinstance(op, Pause):
            _kill_group(self._proc(op.node).pid, signal.SIGSTOP)
            self._paused.add(op.node)
        elif isinstance(op, Unpause):
            _kill_group(self._proc(op.node).pid, signal.SIGCONT)
            self._paused.discard(op.node)
        elif isinstance(op, Restart):
            proc = self._proc(op.node)
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGCONT)
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
            self._start(op.node)
            self._replay_rules(op.node)
        else:
            raise TestnetError(f"unsupported op {op!r}")

    def _proc(self, index: int) -> subprocess.Popen[bytes]:
        proc = self.procs.get(index)
        if proc is None:
            raise TestnetError(f"no node {index}")
        return proc

    def _send(self, index: int, request: dict[str, Any]) -> None:
        """Send to a running node and remember it; dead/paused nodes get it on restart."""
        in_force = self._in_force.setdefault(index, [])
        if request["op"] == "heal":
            in_force[:] = [r for r in in_force if r["op"] == "set_link"]
        else:
            in_force.append(request)
        if not self._running(index):
            return
        # Rules are sets (adding one twice is a no-op), so a request that timed out
        # on a node busy with handshakes can simply be sent again.
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                self._control(index, request)
                return
            except ControlError as exc:
                if attempt == attempts:
                    raise TestnetError(f"node {index}: {exc} ({attempts} attempts)") from exc

    def _partition(self, op: Partition, everyone: list[int]) -> None:
        groups = [set(g) for g in op.groups]
        listed = set().union(*groups) if groups else set()
        rest = set(everyone) - listed
        if rest and not op.one_way:
            groups.append(rest)
        if op.one_way:
            # traffic from groups[0] to all other groups is dropped; the reverse flows
            first = groups[0]
            others = set(everyone) - first
            for i in first:
                self._send(
                    i, {"op": "partition", "addrs": self._addrs(sorted(others)), "incoming": False}
                )
            for j in others:
                self._send(
                    j, {"op": "partition", "addrs": self._addrs(sorted(first)), "outgoing": False}
                )
            return
        for group in groups:
            outside = sorted(set(everyone) - group)
            for i in group:
                self._send(i, {"op": "partition", "addrs": self._addrs(outside)})

    def _set_link(self, src: Sequence[int], dst: Sequence[int], cond: LinkSpec) -> None:
        request: dict[str, Any] = {"op": "set_link", "addrs": self._addrs(dst)}
        request.update(cond.to_json())
        for i in src:
            self._send(i, request)

    # --------------------------------------------------------------------- queries

    def status(self) -> dict[int, NodeStatus]:
        assert self.spec is not None
        out: dict[int, NodeStatus] = {}
        for index in range(self.spec.validators):
            if not self._running(index):
                out[index] = NodeStatus(index, False)
                continue
            try:
                body = self._control(index, {"op": "status"})["status"]
                peers = body.get("connected", [])
                connected = frozenset(
                    self._key_index[p] for p in peers if isinstance(p, str) and p in self._key_index
                )
                traffic = body.get("traffic")
                out[index] = NodeStatus(index, True, connected,
                                        traffic=traffic if isinstance(traffic, dict) else None)
            except (ControlError, AttributeError) as exc:
                out[index] = NodeStatus(index, True, frozenset(), str(exc))
        return out

    def wait_until(
        self, condition: Callable[[dict[int, NodeStatus]], bool], timeout: float, poll: float = 0.2
    ) -> dict[int, NodeStatus]:
        """Poll :meth:`status` until ``condition`` holds; raise TestnetError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.status()
            if condition(statuses):
                return statuses
            if time.monotonic() > deadline:
                summary = {i: sorted(s.connected) for i, s in statuses.items()}
                raise TestnetError(f"condition not met within {timeout}s; connected: {summary}")
            time.sleep(poll)

    def wait_full_mesh(self, timeout: float, nodes: set[int] | None = None) -> float:
        """Block until full mesh (among ``nodes``); returns seconds taken."""
        assert self.spec is not None
        wanted = sorted(range(self.spec.validators) if nodes is None else nodes)

        def meshed(statuses: dict[int, NodeStatus]) -> bool:
            # A node whose process exited can never join: say so now, with its log,
            # rather than after ``timeout`` as an unexplained missing peer.
            for index in wanted:
                exited = self._node_exited(index)
                if exited is not None:
                    raise TestnetError(f"no full mesh: {exited}")
            return full_mesh(statuses, nodes)

        start = time.monotonic()
        self.wait_until(meshed, timeout)
        return time.monotonic() - start

    def logs(self, node: int) -> str:
        try:
            return self._log_path(node).read_text(errors="replace")
        except OSError:
            return ""

    def collect(self) -> list[EventRecord]:
        return self._collector.records() if self._collector is not None else []

    def pids(self) -> dict[int, int]:
        return {i: p.pid for i, p in self.procs.items()}
