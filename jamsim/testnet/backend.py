"""NodeBackend: the part of a testnet backend that does not depend on where nodes run.

Every backend runs the same ``jamsim node`` and drives it through its control
channel, so they share the whole lifecycle skeleton (``up`` checks, claims the
run folder, clears leftovers, installs cleanup handlers and tears down on
failure; ``down``; ``detach``), the harness's telemetry collector, the
validator set learnt from the keys file, the one control-wait loop, the
impairment ops (partitions, isolation by rules, heal, link conditions, kept in
force and replayed to a restarted node), ``status`` and the wait for a full
mesh. A subclass says only what is its own: how nodes are started and removed
(:meth:`_clear_leftovers`, :meth:`_deploy`, :meth:`_remove_nodes`), where a
node's control channel is (:meth:`_control_host`), whether a node can answer
(:meth:`_running`, :meth:`_node_exited`), its state-file fields, its logs, and
the process faults it can apply (:meth:`_apply_process_fault`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Self

from jamsim.identity import ValidatorSet
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
    ProcessFault,
    Restart,
    SetLink,
    TestnetError,
    TestnetSpec,
    TimelineOp,
    Unpause,
    full_mesh,
)
from jamsim.testnet.shared import (
    key_index,
    node_status,
    with_traffic_start,
    write_state_file,
)


class CollectorThread:
    """The harness's telemetry collector on a private event loop thread (the backend is sync)."""

    def __init__(self, key_to_index: dict[bytes, int], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        from jamsim.telemetry.collector import TelemetryCollector

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.started_at = time.time()
        """Unix time the rows' ``time`` counts from."""
        self.collector = TelemetryCollector(key_to_index, self.started_at, host=host, port=port)
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

    def take(self) -> list[EventRecord]:
        async def take() -> list[EventRecord]:
            return self.collector.take()

        return asyncio.run_coroutine_threadsafe(take(), self._loop).result(5)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.collector.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class NodeBackend(ABC):
    """A testnet of ``jamsim node`` processes reached through their control channels.

    ``with Backend() as tn: tn.up(spec); tn.wait_full_mesh(60)``.
    """

    backend_name: ClassVar[str]
    """``--backend`` name: recorded in the state file, so another backend's is left alone."""
    control_wait: float = 30.0
    """Seconds a started node gets to answer on its control channel."""
    control_poll: float = 0.05
    """Seconds between pings while waiting for that."""

    def __init__(self, control_timeout: float, run_dir: Path | None = None) -> None:
        self.control_timeout = control_timeout
        self.spec: TestnetSpec | None = None
        self.keys_file: Path | None = None
        self.addresses: dict[int, tuple[str, int]] = {}
        self.control_ports: dict[int, int] = {}
        self._state_dir = run_dir
        self._key_index: dict[str, int] = {}
        self._regions: dict[int, str] = {}
        self._vset: ValidatorSet | None = None
        self._collector: CollectorThread | None = None
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
        """Make what nodes run from (nothing by default: this Python environment)."""
        return None

    def up(self, spec: TestnetSpec) -> None:
        """Start ``spec``'s nodes; on any failure tear down what was started, then raise."""
        if self._is_up():
            raise TestnetError("testnet already up; call down() first")
        self._check_host()
        spec = with_traffic_start(spec)
        self.spec = spec
        run_dir = Path(spec.run_dir)
        self._claim(spec, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._clear_leftovers(spec)
        self._install_cleanup()
        try:
            self._deploy(spec, run_dir)
        except BaseException:
            self.down()
            raise

    @abstractmethod
    def _is_up(self) -> bool:
        """Whether this backend has nodes of its own up (``up`` refuses a second time)."""

    def _check_host(self) -> None:
        """Raise :class:`TestnetError` (saying what to do) if nodes cannot be started here."""
        return None

    def _claim(self, spec: TestnetSpec, run_dir: Path) -> None:
        """Take ``run_dir`` as this run's folder (its state file lives there)."""
        self._state_dir = run_dir

    @abstractmethod
    def _clear_leftovers(self, spec: TestnetSpec) -> None:
        """Remove what a crashed run in this folder left; prepare the host."""

    @abstractmethod
    def _deploy(self, spec: TestnetSpec, run_dir: Path) -> None:
        """Write keys, start the collector and the nodes; on an error ``down`` undoes it."""

    def down(self) -> None:
        """Remove every node of this run (safe to repeat), stop the collector."""
        self._remove_nodes()
        self._stop_collector()
        self._remove_cleanup()

    @abstractmethod
    def _remove_nodes(self) -> None:
        """Remove this run's nodes, also those a crashed harness recorded in the state file."""

    def detach(self) -> None:
        """Leave the nodes running after this harness exits (``jamsim testnet up --detach``).

        The state file keeps what they are (pids, containers or services);
        ``jamsim testnet down [--backend B] --run-dir D`` removes them. The
        in-harness telemetry collector stops, so detached nodes report only to
        an external collector (``spec.telemetry``).
        """
        self._remove_cleanup()
        self._release_nodes()
        self._stop_collector()

    def _release_nodes(self) -> None:
        """Forget the nodes this harness would otherwise remove on exit."""
        return None

    @property
    def validator_set(self) -> ValidatorSet | None:
        """The running testnet's validators (keys, regions), None before ``up``.

        Read from the keys file the nodes were given; on swarm, whose file names
        tasks instead of IPs, with placeholder addresses (the harness learns the
        real ones from the nodes).
        """
        return self._vset

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

    # ------------------------------------------------------------------ state file

    def _write_state(self) -> None:
        """Record this run in its state file, for a fresh harness to find it again."""
        if self._state_dir is None or self.spec is None:
            return
        write_state_file(Path(self._state_dir), {
            "backend": self.backend_name, "name": self.spec.name,
            "keys_file": str(self.keys_file), **self._state_fields()})

    @abstractmethod
    def _state_fields(self) -> dict[str, Any]:
        """This backend's own fields of the state file."""

    # ------------------------------------------------------------------ collector

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
        self._collector = CollectorThread(
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

    def collect(self) -> list[EventRecord]:
        return self._collector.records() if self._collector is not None else []

    def telemetry_time(self) -> float | None:
        """Now on the clock of the telemetry rows (seconds since the collector
        started), so the harness can add rows of its own beside the nodes'."""
        if self._collector is None:
            return None
        return time.time() - self._collector.started_at

    def take_records(self) -> list[EventRecord]:
        """Telemetry rows received since the last call, forgotten by the collector
        (:meth:`collect` no longer returns them): the streaming path, whose memory
        does not grow with the run."""
        return self._collector.take() if self._collector is not None else []

    # ------------------------------------------------------------------ cleanup

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
            (self._control_host(index), self.control_ports[index]), request,
            self.control_timeout,
        )

    @abstractmethod
    def _control_host(self, index: int) -> str:
        """The address the harness reaches node ``index``'s control channel at."""

    @abstractmethod
    def _running(self, index: int) -> bool:
        """Whether node ``index`` is up and reachable (not killed, paused or unplugged)."""

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
        """Why node ``index`` can never answer, or None (unknown: wait for the timeout)."""
        return None

    def _timeout_hint(self, pending: list[int]) -> str:
        """The error when ``pending`` nodes never answered: what failed and where to look."""
        return f"nodes {pending} never answered on their control port"

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

    # --------------------------------------------------------------------- timeline

    def apply(self, op: TimelineOp) -> None:
        """Apply one timeline op now: impairment ops here, process faults per backend."""
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
        else:
            self._apply_process_fault(op)

    def _apply_process_fault(self, op: ProcessFault) -> None:
        """Kill, pause, unpause or restart a node: each backend does these its own way."""
        if isinstance(op, Kill):
            self._kill(op)
        elif isinstance(op, Pause):
            self._pause(op)
        elif isinstance(op, Unpause):
            self._unpause(op)
        elif isinstance(op, Restart):
            self._restart(op)
        else:
            raise TestnetError(f"unsupported op {op!r}")

    def _kill(self, op: Kill) -> None:
        raise TestnetError(f"unsupported op {op!r}")

    def _pause(self, op: Pause) -> None:
        raise TestnetError(f"unsupported op {op!r}")

    def _unpause(self, op: Unpause) -> None:
        raise TestnetError(f"unsupported op {op!r}")

    def _restart(self, op: Restart) -> None:
        """Start node ``op.node`` again (killing it first if it runs), then replay its rules."""
        raise TestnetError(f"unsupported op {op!r}")

    def _addrs(self, nodes: Sequence[int]) -> list[list[object]]:
        return [list(self.addresses[i]) for i in nodes]

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
                out[index] = node_status(index, body, self._key_index)
            except (ControlError, AttributeError) as exc:
                out[index] = NodeStatus(index, True, frozenset(), str(exc))
        return out

    @abstractmethod
    def logs(self, node: int) -> str:
        """What node ``node`` printed."""

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
