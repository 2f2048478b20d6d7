"""Run every validator's unchanged ConnectionManager in SimPy virtual time.

The driver is callback-based: there is no generator per connection and none per
node. Each node has at most one pending wake-up event at its manager's
``next_deadline()``; packets arrive as network callbacks; both feed the manager and
execute the actions it returns. That keeps a 1023-validator full mesh (522,753
connections) at a few network events per connection.

Faults and epoch changes are methods acting *now*; schedule them with
``sim.at(t, fn)``. ``run(until)`` advances virtual time.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from typing import Final, Literal

import simpy

from jamsim.core.actions import AcceptInbound, CloseConnection, Dial, EmitTelemetry
from jamsim.core.errors import UsageError
from jamsim.core.events import DialFailed, Event, Shutdown, ValidatorSetChanged
from jamsim.core.keepalive import keepalive_interval
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import Direction, NodeLifecycle, PeerEndpoint, Side
from jamsim.identity import PeerAddress, ValidatorInfo, ValidatorSet
from jamsim.sim.connectivity import LinkCounters
from jamsim.sim.fidelity import Transport
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.model.transport import ModelTransport
from jamsim.sim.network import CalendarEnvironment, LinkSpec, Network, NetworkConfig, NodeState
from jamsim.sim.quic.keyring import IdentityResolver
from jamsim.sim.quic.transport import QuicFabric, QuicTransport
from jamsim.telemetry.records import COMPACT_ROW, ConnectivitySample, EventRecord

__all__ = ["Fidelity", "SimNode", "Simulation", "event_log_digest"]

Fidelity = Literal["model", "quic"]
EventRow = tuple[float, int, int, int, int, int, int, int, int, int, int]
"""One compact event row, columns as ``telemetry.writer.COMPACT_COLUMNS``: numbers
only (the writer turns the kind, direction and reason codes into the table's
dictionary columns), because building and converting strings per event was half
the cost of recording a full-scale run."""
_PACK_ROW: Final = COMPACT_ROW.pack
"""Packs one compact row (:data:`EventRow`) into bytes: the ``on_rows`` path."""
_NO_DIRECTION: Final = 0
_DIRECTION_OUT: Final = 1
_DIRECTION_IN: Final = 2
"""Direction codes of compact rows (``telemetry.writer.DIRECTION_CODES``)."""
_OUT: Final = Direction.OUTBOUND
_READS_EVERY_PEER = frozenset((ValidatorSetChanged, Shutdown))
"""Events after which a manager acts on every peer's state: cut dials catch up first."""


class SimNode:
    """One validator process: its manager, its transport ends, its liveness."""

    __slots__ = ("address", "alive", "booted_at", "deadlines_seen", "deferred", "ends",
                 "epoch", "generation", "index", "key", "manager", "paused_at", "region",
                 "retired", "started", "wake_at")

    def __init__(self, index: int, info: ValidatorInfo, epoch: int = 0) -> None:
        self.index = index
        self.epoch = epoch
        """The epoch in which this validator entered the run (0: the initial set)."""
        self.key = info.key
        self.address: PeerAddress = info.address
        self.region = info.region
        self.manager: ConnectionManager | None = None
        self.ends: dict[int, Transport] = {}
        self.generation = 0
        self.alive = False
        self.paused_at: float | None = None
        self.deferred: list[Callable[[], None]] = []
        self.wake_at: float | None = None
        self.deadlines_seen = -1
        """The manager's ``deadlines_added`` when ``wake_at`` was last set."""
        self.retired = False
        self.booted_at = 0.0
        """When the current process started: the phase of its keep-alive ticks."""
        self.started: list[float] = []
        """When each process started, by generation (``generation - 1``): the phase
        of a process's keep-alive ticks even after it crashed or restarted."""

    def boot_time(self, generation: int) -> float:
        """When process ``generation`` of this node started."""
        return self.started[generation - 1]



class _NodeCall:
    """``fn()`` on behalf of one process of a node: see :meth:`Simulation.call_for`.

    A slotted callable rather than a closure: transports schedule one per lost
    packet and idle check, millions in a churn run, and a closure costs a function
    object and a cell per captured name.
    """

    __slots__ = ("fn", "gen", "node")

    def __init__(self, node: SimNode, gen: int, fn: Callable[[], None]) -> None:
        self.node = node
        self.gen = gen
        self.fn = fn

    def __call__(self) -> None:
        node = self.node
        if node.generation != self.gen or not node.alive:
            return
        if node.paused_at is not None:
            node.deferred.append(self)
            return
        self.fn()


class Simulation:
    """Validators, their managers, the network and the timeline of one run.

    ``on_event`` receives every JIP-3 telemetry event as an :class:`EventRecord`;
    ``on_row`` receives it as a compact row (:data:`EventRow`: no object per
    event), its reason coded by ``reason_codes`` (a new reason gets the next code;
    pass the event writer's map). ``on_rows``, the recording path of a run,
    receives the same rows packed (``telemetry.records.COMPACT_ROW``), a block of
    ``rows_per_block`` at a time and whatever is buffered at :meth:`flush_rows`
    (call it before reading the table, and when a run stops): one call per block,
    no tuple kept per event, and the block is columns already. The block is the
    receiver's to keep. With none of the three, managers skip telemetry too (the
    fast path for benchmarks). Connectivity is sampled every ``sample_interval``
    virtual seconds into ``self.samples`` (and ``on_sample`` if given).

    ``fidelity="quic"`` runs real aioquic connections (jamsim/sim/quic/transport.py)
    and needs every validator's private key: ``identities(public_key)`` returns it
    (e.g. :class:`jamsim.sim.quic.keyring.DevKeyring`).

    ``fast_forward`` (model fidelity, no dial limit): dials across a cut path are
    not simulated attempt by attempt; the manager catches up in one step when the
    path opens (``DialPathCut``, see jamsim/sim/model/transport.py). Attempts, backoff,
    give-up and telemetry come out the same, only the order of random draws
    between peers differs; ``False`` simulates every attempt.

    ``traffic`` (model fidelity): every live connection carries data every slot,
    so an end whose peer stops answering closes the connection
    ``policy.disconnect_timeout`` after its next slot's send, idle timeout or not.
    Off, only keep-alives and the idle timeout notice a dead path.
    """

    def __init__(
        self,
        validators: ValidatorSet,
        network: NetworkConfig | None = None,
        policy: ConnectionPolicy | None = None,
        fidelity: Fidelity = "model",
        seed: int = 0,
        on_event: Callable[[EventRecord], None] | None = None,
        sample_interval: float = 1.0,
        *,
        on_sample: Callable[[ConnectivitySample], None] | None = None,
        start_stagger: float = 0.0,
        identities: IdentityResolver | None = None,
        fast_forward: bool = True,
        traffic: bool = False,
        slot_seconds: float = 6.0,
        on_row: Callable[[EventRow], None] | None = None,
        reason_codes: dict[str, int] | None = None,
        on_rows: Callable[[bytearray], None] | None = None,
        rows_per_block: int = 65_536,
    ) -> None:
        if fidelity not in ("model", "quic"):
            raise UsageError(f"unknown fidelity {fidelity!r}; choose model or quic")
        if fidelity == "quic" and identities is None:
            raise UsageError("fidelity 'quic' needs identities= (validators' private keys), "
                             "e.g. jamsim.sim.quic.keyring.DevKeyring([seed], count)")
        if sample_interval <= 0:
            raise UsageError("sample_interval must be > 0")
        if slot_seconds <= 0:
            raise UsageError("slot_seconds must be > 0")
        if rows_per_block <= 0:
            raise UsageError("rows_per_block must be > 0")
        self.fidelity = fidelity
        self.seed = seed
        self.policy = policy or ConnectionPolicy.preset("jamnp-s")
        # A dial limit makes attempts to different peers wait on each other, which
        # DialPathCut's per-dial catch-up cannot reproduce: simulate every attempt.
        self.fast_forward = fast_forward and fidelity == "model" and \
            not self.policy.serial_dials and self.policy.max_parallel_dials is None
        """Whether cut dials are caught up in bulk (see the class docstring)."""
        self.traffic = traffic
        """Whether every live connection carries data every slot (loss detection by
        ``policy.disconnect_timeout``, see jamsim/sim/model/transport.py)."""
        self.slot_seconds = slot_seconds
        """The JAM slot clock: slot ``k`` starts at ``k * slot_seconds``."""
        self.keepalive_interval = keepalive_interval(self.policy.idle_timeout,
                                                     self.policy.keep_alive_interval)
        """PING period of every node (the real node's rule), or None."""
        self.env = CalendarEnvironment()
        self.network = Network(self.env, network or NetworkConfig(), seed)
        self.network.listeners.append(self._topology_changed)
        self.on_event = on_event
        self.on_row = on_row
        self.reason_codes: dict[str, int] = reason_codes if reason_codes is not None \
            else {"": 0}
        """Code of each reason in the compact rows handed to ``on_row``/``on_rows``."""
        self.on_rows = on_rows
        self._rows = bytearray()
        """Packed compact rows not yet handed to ``on_rows``."""
        self._rows_limit = rows_per_block * COMPACT_ROW.size
        self.on_sample = on_sample
        self.sample_interval = sample_interval
        self.samples: list[ConnectivitySample] = []
        self.links = LinkCounters(self._path_ok, self._clock)
        self._down: set[int] = set()
        """Nodes whose process is crashed or paused (no path to or from them)."""
        self.nodes: list[SimNode] = []
        # Unfinished transports by node (both ends): a crash or restart reassesses
        # only these, not every transport of the run (that was O(changes x
        # transports), the largest cost of a V=1023 churn run). There is no global
        # table besides: see ``transports``.
        self._by_node: dict[int, dict[int, Transport]] = {}
        self.quic: QuicFabric | None = None
        if identities is not None and fidelity == "quic":
            self.quic = QuicFabric(self, identities)
        self.remote_side = Side.REMOTE
        self.events_emitted = 0
        self._by_key: dict[bytes, int] = {}
        self.epoch = 0
        """Validator-set changes so far: the epoch new nodes are recorded as entering."""
        self._next_tid = 0
        self._sets: tuple[tuple[PeerEndpoint, ...], ...] = ((), (), ())
        self._active: list[int] = []
        for info in validators:
            self._add_node(info)
        self.links.set_grid(len(self.nodes))
        self._set_epoch(None, validators, None)
        if self.quic is not None:
            self.quic.prepare([node.key for node in self.nodes])
        for i, node in enumerate(self.nodes):
            delay = start_stagger * i / max(1, len(self.nodes) - 1) if start_stagger else 0.0
            self.at(delay, functools.partial(self._boot, node))
        self.env.process(self._sampler())

    # ================================================================ setup

    def _add_node(self, info: ValidatorInfo) -> SimNode:
        node = SimNode(len(self.nodes), info, self.epoch)
        self.nodes.append(node)
        self._by_node[node.index] = {}
        self._by_key[info.key] = node.index
        self.network.add_node(node.index, info.region)
        return node

    def _set_epoch(self, previous: ValidatorSet | None, current: ValidatorSet,
                   next_: ValidatorSet | None) -> None:
        def endpoints(vs: ValidatorSet | None) -> tuple[PeerEndpoint, ...]:
            return tuple(PeerEndpoint(v.key, v.address) for v in vs) if vs else ()

        self._sets = (endpoints(previous), endpoints(current), endpoints(next_))
        keys: dict[bytes, None] = {}
        for group in self._sets:
            for endpoint in group:
                keys[endpoint.key] = None
        self._active = [self._by_key[k] for k in keys]

    def _validator_event(self) -> ValidatorSetChanged:
        prev, cur, nxt = self._sets
        return ValidatorSetChanged(previous=prev, current=cur, next=nxt)

    def _boot(self, node: SimNode) -> None:
        """Start a fresh process for ``node`` and give it the Init task."""
        node.generation += 1
        node.booted_at = self.env.now
        node.started.append(node.booted_at)
        node.alive = True
        node.ends = {}
        node.deferred = []
        node.wake_at = None
        node.deadlines_seen = -1
        node.paused_at = None
        node.manager = ConnectionManager(
            node.key, self.policy, rng_seed=self.seed * 7919 + node.generation,
            emit_telemetry=self.on_event is not None or self.on_row is not None
            or self.on_rows is not None,
        )
        self.feed(node, self._validator_event())

    # ================================================================ driving managers

    def feed(self, node: SimNode, event: Event, *, even_if_paused: bool = False) -> None:
        """Hand ``event`` to ``node``'s manager now and carry out what it asks.

        A paused node's events wait for it to resume, except catch-up reports
        (``even_if_paused``) about what happened before the pause began.
        """
        manager = node.manager
        if manager is None or not node.alive:
            return
        if node.paused_at is not None and not even_if_paused:
            node.deferred.append(lambda: self.feed(node, event))
            return
        if type(event) in _READS_EVERY_PEER:
            self._settle_cut_dials(node)
        manager.handle(event, self.env.now)
        self._flush(node)

    def _settle_cut_dials(self, node: SimNode) -> None:
        """Bring ``node``'s manager up to date on its cut dials (see model/transport.py)."""
        if not self.fast_forward:
            return
        index = node.index
        for transport in [t for t in node.ends.values() if t.a == index]:
            if isinstance(transport, ModelTransport) and transport.cut:
                transport.settle()

    def _flush(self, node: SimNode) -> None:
        manager = node.manager
        assert manager is not None
        actions = manager.drain_actions()
        while actions:
            for action in actions:
                # Exact types, not isinstance: actions are final dataclasses and
                # this runs a few times per connection.
                if type(action) is Dial:
                    self._dial(node, action)
                elif type(action) is EmitTelemetry:
                    self._emit(node, action)
                elif type(action) is CloseConnection:
                    transport = node.ends.get(action.conn_id)
                    if transport is not None:
                        transport.close(node, action.reason)
                elif type(action) is AcceptInbound:
                    transport = node.ends.get(action.conn_id)
                    if transport is not None:
                        transport.accept()
            actions = manager.drain_actions()
        # The common case inline (a few million times per large run): a wake-up is
        # pending and no deadline was added, so it is still the earliest.
        if node.wake_at is None or manager.deadlines_added != node.deadlines_seen:
            self._reschedule(node)

    def _reschedule(self, node: SimNode) -> None:
        """Arm a wake-up for the manager's next deadline if it is earlier than the
        pending one; ``_flush`` calls it only when no wake-up is pending or a
        deadline was added since the last call."""
        manager = node.manager
        if manager is None:
            return
        node.deadlines_seen = manager.deadlines_added
        deadline = manager.next_deadline()
        if deadline is None:
            return
        if node.wake_at is not None and node.wake_at <= deadline:
            return
        node.wake_at = deadline
        self.network.call_at(max(deadline, self.env.now),
                             functools.partial(self._wake, node, node.generation, deadline))

    def _wake(self, node: SimNode, gen: int, deadline: float) -> None:
        if node.generation != gen or node.wake_at != deadline or not node.alive:
            return
        node.wake_at = None
        if node.paused_at is not None:
            node.deferred.append(lambda: self._timer(node))
            return
        self._timer(node)

    def _timer(self, node: SimNode) -> None:
        if node.manager is None or not node.alive:
            return
        node.manager.handle_timer(self.env.now)
        self._flush(node)

    def call_for(self, index: int, gen: int, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay`` if the node's process is still the same one.

        While the node is paused the call waits until it resumes: a stopped
        process runs no timers.
        """
        self.network.call_at(self.env.now + max(0.0, delay),
                             _NodeCall(self.nodes[index], gen, fn))

    def _dial(self, node: SimNode, dial: Dial) -> None:
        target = self._by_key.get(dial.peer)
        if target is None or target == node.index:
            self.call_for(node.index, node.generation, 0.0,
                          lambda: self.feed(node, DialFailed(dial.conn_id, "unknown peer")))
            return
        tid = self._next_tid
        self._next_tid += 1
        transport: Transport
        if self.quic is not None:
            transport = QuicTransport(self, tid, node, dial.conn_id, self.nodes[target],
                                      dial.timeout)
        else:
            transport = ModelTransport(self, tid, node, dial.conn_id, self.nodes[target],
                                       dial.timeout, dial.started_at)
        by_node = self._by_node
        by_node[node.index][tid] = transport
        by_node[target][tid] = transport
        node.ends[dial.conn_id] = transport
        if dial.started_at is not None and isinstance(transport, ModelTransport):
            transport.resume()
        else:
            transport.start()

    def forget_transport(self, transport: Transport) -> None:
        """A transport finished at both ends: stop tracking it (idempotent)."""
        by_node = self._by_node
        by_node[transport.a].pop(transport.tid, None)
        by_node[transport.b].pop(transport.tid, None)

    @property
    def transports(self) -> dict[int, Transport]:
        """Every unfinished transport by id, in creation order.

        Built from the per-node tables on demand: only partitions and heals need
        all of them, while a global table cost an insert and a delete per
        connection attempt (millions in a churn run).
        """
        merged: dict[int, Transport] = {}
        for table in self._by_node.values():
            merged.update(table)
        return {tid: merged[tid] for tid in sorted(merged)}

    def _emit(self, node: SimNode, action: EmitTelemetry) -> None:
        self.events_emitted += 1
        on_rows = self.on_rows
        on_row = self.on_row
        if on_rows is not None or on_row is not None:
            # Numbers only (see EventRow), with no record object in between: a
            # full-scale run emits tens of millions.
            peer = action.peer
            direction = action.direction
            conn_id = action.conn_id
            ref = action.ref_event_id
            side = action.side
            at = action.at
            reason = action.reason
            codes = self.reason_codes
            code = codes.get(reason)
            if code is None:
                code = len(codes)
                codes[reason] = code
            time = self.env.now if at is None else at
            peer_index = self._by_key.get(peer, -1) if peer is not None else -1
            kind = int(action.kind)
            # identity, not a dict: Enum.__hash__ is Python code
            direction_code = _NO_DIRECTION if direction is None \
                else _DIRECTION_OUT if direction is _OUT else _DIRECTION_IN
            conn = conn_id if conn_id is not None else -1
            ref_id = ref if ref is not None else -1
            side_code = int(side) if side is not None else -1
            if on_rows is not None:
                self._add_row(_PACK_ROW(time, node.index, peer_index, kind, direction_code,
                                        code, action.attempt, conn, action.event_id, ref_id,
                                        side_code))
            if on_row is not None:
                on_row((time, node.index, peer_index, kind, direction_code, code,
                        action.attempt, conn, action.event_id, ref_id, side_code))
        on_event = self.on_event
        if on_event is None:
            return
        peer = action.peer
        peer_index = self._by_key.get(peer, -1) if peer is not None else -1
        on_event(EventRecord(
            time=self.env.now if action.at is None else action.at,
            node=node.index,
            peer=peer_index,
            event=action.kind.label,
            kind=int(action.kind),
            direction=action.direction.value if action.direction is not None else "",
            reason=action.reason,
            attempt=action.attempt,
            conn_id=action.conn_id if action.conn_id is not None else -1,
            event_id=action.event_id,
            ref_event_id=action.ref_event_id if action.ref_event_id is not None else -1,
            side=int(action.side) if action.side is not None else -1,
        ))

    def _add_row(self, packed: bytes) -> None:
        rows = self._rows
        rows += packed
        if len(rows) >= self._rows_limit:
            self.flush_rows()

    def flush_rows(self) -> None:
        """Hand the packed rows buffered so far to ``on_rows`` (see the class
        docstring); the runner calls it at every progress step and when a run
        ends or is interrupted, so the table on disk has every event emitted."""
        rows = self._rows
        on_rows = self.on_rows
        if rows and on_rows is not None:
            self._rows = bytearray()
            on_rows(rows)

    def _clock(self) -> float:
        return float(self.env.now)

    def _path_ok(self, a: int, b: int) -> bool:
        """Packets flow both ways between ``a`` and ``b`` now (both up, not cut)."""
        network = self.network
        return network.path_open(a, b) and network.path_open(b, a)

    def _lifecycle(self, node: SimNode, kind: NodeLifecycle) -> None:
        """Record what the harness did to ``node``'s process (see NodeLifecycle)."""
        on_row = self.on_row
        on_rows = self.on_rows
        if on_row is not None or on_rows is not None:
            codes = self.reason_codes
            no_reason = codes.setdefault("", len(codes))
            row = (float(self.env.now), node.index, -1, int(kind), _NO_DIRECTION, no_reason,
                   0, -1, -1, -1, -1)
            if on_rows is not None:
                self._add_row(_PACK_ROW(*row))
            if on_row is not None:
                on_row(row)
        on_event = self.on_event
        if on_event is None:
            return
        on_event(EventRecord(time=self.env.now, node=node.index, peer=-1, event=kind.label,
                             kind=int(kind)))

    def _topology_changed(self, nodes: frozenset[int] | None) -> None:
        """Re-judge the affected pairs' paths, then reassess the transports a
        change can affect, in creation order."""
        pairs: list[tuple[int, int]] | None = None
        if nodes is not None:
            down = self._down
            pairs = []
            for index in nodes:
                if self.network.state(index) == NodeState.UP:
                    down.discard(index)
                else:
                    down.add(index)
                pairs.extend((t.a, t.b) for t in self._by_node.get(index, {}).values())
        self.links.reassess(pairs, not self._down and not self.network.partitioned)
        if nodes is None:
            affected = list(self.transports.values())  # every pair may be affected
        else:
            picked: dict[int, Transport] = {}
            for index in nodes:
                picked.update(self._by_node.get(index, {}))
            affected = [picked[tid] for tid in sorted(picked)]
        for transport in affected:
            transport.reassess()

    # ================================================================ timeline

    def at(self, t: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` at virtual time ``t`` (or now, if ``t`` has passed)."""
        self.network.call_later(max(0.0, t - self.env.now), fn)

    def run(self, until: float,
            progress_callback: Callable[[float, float], None] | None = None) -> None:
        """Advance virtual time to ``until``; ``progress_callback(now, until)`` per step."""
        if until < self.env.now:
            raise UsageError(f"cannot run until {until}: already at {self.env.now}")
        steps = 20 if progress_callback is not None else 1
        start = self.env.now
        with relaxed_gc():
            for step in range(1, steps + 1):
                self.env.run(until=start + (until - start) * step / steps)
                if progress_callback is not None:
                    progress_callback(self.env.now, until)

    @property
    def now(self) -> float:
        return float(self.env.now)

    def partition(self, groups: Iterable[Iterable[int]], one_way: bool = False) -> None:
        """Cut the network between groups of node indices (see Network.partition)."""
        self.network.partition([list(g) for g in groups], one_way=one_way)

    def isolate(self, index: int) -> None:
        self.network.isolate(index)

    def heal(self) -> None:
        self.network.heal()

    def set_link(self, src_region: str, dst_region: str, link: LinkSpec,
                 symmetric: bool = True) -> None:
        self.network.set_link(src_region, dst_region, link, symmetric)

    def crash(self, index: int) -> None:
        """Kill node ``index``: manager state and connections are lost, silently."""
        node = self.nodes[index]
        if not node.alive:
            return
        self._lifecycle(node, NodeLifecycle.NODE_CRASHED)
        node.alive = False
        node.wake_at = None
        node.deferred = []
        ends = list(node.ends.values())
        node.ends = {}
        node.manager = None
        for transport in ends:
            transport.node_died(transport.a == index)
        self.network.crash(index)

    def restart(self, index: int) -> None:
        """Start a fresh process for a crashed node (same key and address)."""
        node = self.nodes[index]
        if node.alive:
            self.crash(index)
        self.network.restart(index)
        self._lifecycle(node, NodeLifecycle.NODE_RESTARTED)
        held = [t for t in self._by_node[index].values() if isinstance(t, ModelTransport)]
        self._boot(node)
        # Peers still holding a connection to the old process hear of its death by
        # a stateless reset once they next send (see jamsim/sim/model/transport.py).
        for transport in held:
            transport.peer_restarted(index)

    def pause(self, index: int) -> None:
        """Freeze node ``index`` (SIGSTOP): state kept, timers stop, packets queue."""
        node = self.nodes[index]
        if not node.alive or node.paused_at is not None:
            return
        node.paused_at = self.env.now
        self._lifecycle(node, NodeLifecycle.NODE_PAUSED)
        self.network.pause(index)

    def resume(self, index: int) -> None:
        """Unfreeze: expired idle timers fire, queued packets and timers are handled."""
        node = self.nodes[index]
        if node.paused_at is None:
            return
        paused_for = self.env.now - node.paused_at
        node.paused_at = None
        self._lifecycle(node, NodeLifecycle.NODE_RESUMED)
        queued = self.network.resume(index)
        for transport in list(node.ends.values()):
            client = transport.a == index
            if transport.paused_too_long(client, paused_for):
                transport.expire(client)
        deferred, node.deferred = node.deferred, []
        for fn in queued:
            fn()
        for fn in deferred:
            fn()
        self._timer(node)

    def change_validator_set(self, previous: ValidatorSet | None, current: ValidatorSet,
                             next: ValidatorSet | None = None) -> None:
        """Epoch change: new keys start as nodes, everyone gets the Init task again,
        nodes in none of the three sets shut down (close all, stop dialling)."""
        self.epoch += 1
        for vs in (previous, current, next):
            for info in vs or ():
                if info.key not in self._by_key:
                    self._add_node(info)
                    self.at(0.0, functools.partial(self._boot, self.nodes[-1]))
        self._set_epoch(previous, current, next)
        active = set(self._active)
        event = self._validator_event()
        for node in self.nodes:
            if not node.alive:
                continue
            if node.index in active:
                self.feed(node, event)
            elif not node.retired:
                node.retired = True
                self.feed(node, Shutdown())

    # ================================================================ observation

    def catch_up(self) -> None:
        """Bring every manager up to date on its cut dials (``fast_forward``).

        Their attempts are otherwise recorded only when a path opens; call this
        before reading telemetry or manager state mid-partition, e.g. at the end of
        a run. Cheap when nothing is cut.
        """
        for node in self.nodes:
            if node.alive:
                self._settle_cut_dials(node)

    def manager(self, index: int) -> ConnectionManager:
        """Node ``index``'s manager, up to date (cut dials caught up to now)."""
        node = self.nodes[index]
        if node.manager is None:
            raise UsageError(f"node {index} is not running")
        self._settle_cut_dials(node)
        return node.manager

    def index_of(self, key: bytes) -> int:
        return self._by_key[key]

    def connected_pairs(self) -> set[tuple[int, int]]:
        """Pairs (i < j) where both managers hold the same live transport.

        Computed from the managers themselves (slow at scale; for tests)."""
        pairs: set[tuple[int, int]] = set()
        for node in self.nodes:
            if node.manager is None or not node.alive:
                continue
            for key in node.manager.live_peers():
                cid = node.manager.live_connection(key)
                transport = node.ends.get(cid) if cid is not None else None
                if transport is None:
                    continue
                other = self.nodes[self._by_key[key]]
                if other.index < node.index or other.manager is None or not other.alive:
                    continue
                other_cid = other.manager.live_connection(node.key)
                if other_cid is not None and other.ends.get(other_cid) is transport:
                    pairs.add((node.index, other.index))
        return pairs

    def link_usable(self, a: int, b: int) -> bool:
        """Can nodes ``a`` and ``b`` exchange a message now? O(1).

        True iff both managers hold the same live transport for the pair, both
        processes are up (not crashed, not paused) and the network carries packets
        both ways now. A link both ends merely *believe* in (e.g. across a cut
        path, with no idle timeout to notice) is not usable.
        """
        if a == b:
            return False
        nodes = self.nodes
        node_a, node_b = nodes[a], nodes[b]
        if not node_a.alive or not node_b.alive or node_a.paused_at is not None \
                or node_b.paused_at is not None:
            return False
        network = self.network
        return network.path_open(a, b) and network.path_open(b, a) and \
            self.links.believed(a, b)

    def expected_pairs(self) -> int:
        n = len(self._active)
        return n * (n - 1) // 2

    def usable_pairs(self) -> set[tuple[int, int]]:
        """The :meth:`connected_pairs` whose path carries packets now (slow; for tests)."""
        network = self.network
        return {(a, b) for a, b in self.connected_pairs()
                if network.path_open(a, b) and network.path_open(b, a)}

    def is_full_mesh(self) -> bool:
        """Every pair of the current epoch's validators holds one shared live link
        that carries packets now."""
        return len(self.usable_pairs()) == self.expected_pairs() and \
            all(self.nodes[i].alive for i in self._active)

    def sample(self) -> ConnectivitySample:
        """Connectivity now, from the incremental counters (cheap)."""
        up = [i for i in self._active
              if self.nodes[i].alive and self.network.state(i) != NodeState.CRASHED]
        n_up = len(up)
        links = self.links
        usable = links.links_usable
        whole = n_up > 0 and usable == n_up * (n_up - 1) // 2
        components = 1 if whole else links.components(up)
        return ConnectivitySample(
            time=self.env.now,
            links_usable=usable,
            links_believed=links.links_believed,
            links_stale=links.links_stale,
            longest_stale=links.oldest_stale(self.env.now),
            grid_usable=links.grid_usable,
            grid_pairs=links.grid_pairs,
            links_expected=self.expected_pairs(),
            nodes_up=n_up,
            half_open=links.half_open,
            duplicates=links.duplicates,
            components=components,
        )

    def time_to_full_mesh(self, after: float = 0.0) -> float | None:
        """First sampled time >= ``after`` at which the mesh was full, or ``None``."""
        for row in self.samples:
            if row.time >= after and row.full_mesh:
                return row.time
        return None

    def _sampler(self) -> simpy.events.ProcessGenerator:
        while True:
            row = self.sample()
            self.samples.append(row)
            if self.on_sample is not None:
                self.on_sample(row)
            yield self.env.timeout(self.sample_interval)


def event_log_digest(records: Iterable[EventRecord]) -> str:
    """SHA-256 over the records' fields, for determinism checks."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(repr(record).encode())
        digest.update(b"\n")
    return digest.hexdigest()
