"""ConnectionManager: the sans-IO supervisor of one node's validator connections.

Shape borrowed from aioquic's ``QuicConnection``: the driver calls
``handle(event, now)`` and ``handle_timer(now)``, reads actions with
``next_action()``/``drain_actions()``, and sleeps until ``next_deadline()``. The
manager never reads a clock, never touches a socket and owns every timer (retry,
reconnect, fallback) in one heap, so a SimPy driver needs one process per *node*,
not per connection, and unit tests pass ``now`` by hand.

What it guarantees (tested with hypothesis in tests/core):

* Exactly one transport connection per peer survives once events stop, and both
  ends agree on which (``DuplicateRule.PREFERRED_INITIATOR``).
* Retry delays always lie within the policy's ``[min_retry, max_retry]``.
* Events about unknown or already-closed connections are ignored, so a driver can
  report late without corrupting state.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Iterable

from jamsim.core.actions import AcceptInbound, Action, CloseConnection, Dial, EmitTelemetry
from jamsim.core.connection import (
    ConnectionInfo,
    ConnectionPhase,
    ConnectionState,
    PeerSnapshot,
)
from jamsim.core.dial_control import DialControl
from jamsim.core.errors import UsageError
from jamsim.core.events import (
    ConnectionEstablished,
    ConnectionLost,
    DialFailed,
    DialPathCut,
    Event,
    InboundConnecting,
    InboundFailed,
    InboundHandshake,
    PeerMisbehaved,
    PeerSilence,
    ReceiveDrops,
    Shutdown,
    ValidatorSetChanged,
)
from jamsim.core.policy import ConnectionPolicy, DuplicateRule
from jamsim.core.types import (
    CloseReason,
    ConnectionId,
    ConnectionStatus,
    Direction,
    PeerEndpoint,
    PeerKey,
    PeerRole,
    Side,
    TelemetryKind,
)
from jamsim.identity import KEY_SIZE, PeerAddress

__all__ = ["ConnectionManager"]

_LOCAL_CLOSE = Side.LOCAL
# Module-level aliases: the hot paths below run millions of times per simulation.
_OUT, _IN = Direction.OUTBOUND, Direction.INBOUND
_LIVE = ConnectionPhase.LIVE
_CONNECTED = ConnectionStatus.CONNECTED
_K_CONNECTING_OUT = TelemetryKind.CONNECTING_OUT
_K_CONNECTED_OUT = TelemetryKind.CONNECTED_OUT
_K_CONNECTING_IN = TelemetryKind.CONNECTING_IN
_K_CONNECTED_IN = TelemetryKind.CONNECTED_IN
_K_CONNECT_OUT_FAILED = TelemetryKind.CONNECT_OUT_FAILED


class ConnectionManager:
    """Starts, supervises, retries and shuts down one connection per remote peer.

    ``rng_seed`` seeds the jitter; together with the local key it makes every
    node's random choices reproducible and independent of the others.
    """

    def __init__(
        self,
        local_key: PeerKey,
        policy: ConnectionPolicy | None = None,
        *,
        rng_seed: int = 0,
        emit_telemetry: bool = True,
    ) -> None:
        if len(local_key) != KEY_SIZE:
            raise UsageError(f"local_key must be {KEY_SIZE} bytes")
        self.local_key = local_key
        self.policy = policy or ConnectionPolicy.preset("jamnp-s")
        self._rng = random.Random(rng_seed * 1_000_003 + int.from_bytes(local_key[:8], "little"))
        self._backoff = self.policy.backoff_schedule()
        # Whether the schedule's last ceiling holds for every later attempt.
        self._backoff_final = self._backoff[-1] >= self.policy.max_retry or \
            self.policy.retry_multiplier == 1
        self._emit_telemetry = emit_telemetry
        self._peers: dict[PeerKey, ConnectionInfo] = {}
        self._conns: dict[ConnectionId, ConnectionState] = {}
        self._actions: deque[Action] = deque()
        # Timers: a heap of distinct deadlines, each with a bucket of (peer key,
        # generation) entries. Many peers share a deadline (every fallback timer
        # set by one validator-set change), so this is far fewer heap operations
        # than one entry per peer. Entries are cancelled lazily by generation.
        self._timer_heap: list[float] = []
        self._timer_buckets: dict[float, list[tuple[PeerKey, int]]] = {}
        self.deadlines_added = 0
        """Counts new deadlines. ``next_deadline()`` can only move earlier when this
        changes, so a driver already sleeping until it need not ask after every
        event (a simulator feeds millions of events)."""
        self._next_conn_id = 1
        self._next_event_id = 0
        self._non_validators = 0
        self._shut_down = False
        # Limited dialling: the dials holding one of the policy's slots, and the
        # peers waiting for one. Serial dialling (Jamixir) is one slot, and the
        # manager then also handles no other event until that dial ends.
        # "Serial and a slot is taken" is the blocked state; no separate field.
        # An adaptive limit (DialControl) is open until the host shows overload; slots are
        # tracked only while some limit is in force (``_dial_limit``, the smaller
        # of the fixed and the adaptive one; None: none).
        self._serial_dials = self.policy.serial_dials
        self._fixed_dial_limit = 1 if self._serial_dials else self.policy.max_parallel_dials
        self._dial_limit = self._fixed_dial_limit
        self._dial_control: DialControl | None = DialControl(
            self.policy.adaptive_dials_min, self.policy.adaptive_dials_max,
            self.policy.connect_timeout) if self.policy.adaptive_dials else None
        self._dial_slots: set[ConnectionId] = set()
        self._dial_queue: deque[PeerKey] = deque()
        self._backlog: deque[Event] = deque()

    # ================================================================ driver API

    def allocate_connection_id(self) -> ConnectionId:
        """A fresh id for a transport connection (the driver's inbound ones too)."""
        conn_id = self._next_conn_id
        self._next_conn_id += 1
        return conn_id

    def allocate_event_id(self) -> int:
        """A JIP-3 event id for a driver's own telemetry event (e.g. status, 10).

        Event ids are implicit on the wire, so every event a node sends, the
        manager's and the driver's, must come from this one counter.
        """
        event_id = self._next_event_id
        self._next_event_id = event_id + 1
        return event_id

    def handle(self, event: Event, now: float) -> None:
        """Feed one observed event; resulting actions queue up for ``next_action``."""
        if self._shut_down:
            return
        if self._serial_dials and self._dial_slots and not self._is_busy_dial_outcome(event):
            self._backlog.append(event)
            return
        self._dispatch(event, now)
        if self._dial_queue or self._backlog:  # only limited dialling queues anything
            self._start_queued(now)

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline is ``<= now``."""
        serial_dials = self._serial_dials
        if self._shut_down or (serial_dials and self._dial_slots):
            return
        heap, buckets, peers = self._timer_heap, self._timer_buckets, self._peers
        while heap and heap[0] <= now:
            deadline = heap[0]
            bucket = buckets[deadline]
            while bucket:
                key, generation = bucket.pop()
                peer = peers.get(key)
                if peer is None or peer.timer_generation != generation:
                    continue  # cancelled
                peer.retry_at = None
                self._on_dial_timer(peer, now)
                if serial_dials and self._dial_slots:
                    return  # serial dialling: the rest waits for this dial
            heapq.heappop(heap)
            del buckets[deadline]

    def next_deadline(self) -> float | None:
        """Earliest pending timer, or ``None``; stale entries are pruned here."""
        if (self._serial_dials and self._dial_slots) or self._shut_down:
            return None
        heap, buckets, peers = self._timer_heap, self._timer_buckets, self._peers
        while heap:
            deadline = heap[0]
            bucket = buckets[deadline]
            while bucket:
                key, generation = bucket[-1]
                peer = peers.get(key)
                if peer is not None and peer.timer_generation == generation:
                    return deadline
                bucket.pop()
            heapq.heappop(heap)
            del buckets[deadline]
        return None

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    def drain_actions(self) -> list[Action]:
        queued = self._actions
        if not queued:
            return []
        actions = list(queued)
        queued.clear()
        return actions

    # ================================================================ queries

    def connections(self) -> dict[PeerKey, PeerSnapshot]:
        """Snapshot of every peer the manager tracks (``get_connections``)."""
        return {key: info.snapshot() for key, info in self._peers.items()}

    def peer(self, key: PeerKey) -> PeerSnapshot | None:
        info = self._peers.get(key)
        return info.snapshot() if info else None

    def status(self, key: PeerKey) -> ConnectionStatus | None:
        info = self._peers.get(key)
        return info.status if info else None

    def live_connection(self, key: PeerKey) -> ConnectionId | None:
        info = self._peers.get(key)
        return info.live if info else None

    def live_peers(self) -> set[PeerKey]:
        return {key for key, info in self._peers.items() if info.live is not None}

    def connection(self, conn_id: ConnectionId) -> ConnectionState | None:
        return self._conns.get(conn_id)

    def open_connection_ids(self) -> set[ConnectionId]:
        """Every transport connection the manager has not closed or lost."""
        return set(self._conns)

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    @property
    def dial_limit(self) -> int | None:
        """How many outbound dials may be in flight now (``None``: no limit): the
        policy's fixed limit, or the adaptive one while engaged, the smaller."""
        return self._dial_limit

    # ================================================================ dispatch

    def _dispatch(self, event: Event, now: float) -> None:
        # Exact types, the per-connection ones first: this runs a few million times
        # in a 1023-validator simulation, and in the compiled build each branch is
        # a direct native call (a table of methods would go through Python calls).
        if type(event) is InboundConnecting:
            self._on_inbound_connecting(event.conn_id, event.address, now)
        elif type(event) is ConnectionEstablished:
            self._on_established(event.conn_id, event.peer, now, event.answer_rtt)
        elif type(event) is InboundHandshake:
            self._on_inbound_handshake(event, now)
        elif type(event) is ConnectionLost:
            self._on_lost(event.conn_id, event.reason, event.side, now)
        elif type(event) is DialFailed:
            if event.stalled:
                self._on_dial_overloaded(event.conn_id, now)
            self._on_dial_failed(event.conn_id, event.reason, now)
        elif type(event) is DialPathCut:
            self._on_dial_path_cut(event, now)
        elif type(event) is InboundFailed:
            self._on_inbound_failed(event.conn_id, event.reason)
        elif type(event) is PeerSilence:
            conn = self._conns.get(event.conn_id)
            if conn is not None and conn.phase is _LIVE:
                conn.silent_since = event.since
        elif type(event) is ValidatorSetChanged:
            self._on_validator_set(event, now)
        elif type(event) is ReceiveDrops:
            if event.dropped:
                self._on_receive_drops(now)
        elif type(event) is PeerMisbehaved:
            self._on_misbehaved(event.conn_id, event.reason)
        elif type(event) is Shutdown:
            self._on_shutdown(now)
        else:
            raise UsageError(f"not a ConnectionManager event: {event!r}")

    def _is_busy_dial_outcome(self, event: Event) -> bool:
        return (
            isinstance(event, ConnectionEstablished | DialFailed | DialPathCut | ConnectionLost)
            and event.conn_id in self._dial_slots
        ) or isinstance(event, Shutdown)

    def _start_queued(self, now: float) -> None:
        """Start queued dials while slots are free, then drain a serial backlog."""
        while not (self._serial_dials and self._dial_slots) and not self._shut_down:
            limit = self._dial_limit
            if self._dial_queue and (limit is None or len(self._dial_slots) < limit):
                key = self._dial_queue.popleft()
                peer = self._peers.get(key)
                if peer is not None and self._wants_dial(peer):
                    self._start_dial(peer, now)
                continue
            if self._backlog:
                self._dispatch(self._backlog.popleft(), now)
                continue
            break

    def _on_dial_overloaded(self, conn_id: ConnectionId, now: float,
                            completed: bool = False) -> None:
        """Tell the adaptive limit that dial ``conn_id`` ran into overload (stalled,
        or ``completed`` but answered far too slowly), before it leaves the dials
        in flight."""
        control = self._dial_control
        conn = self._conns.get(conn_id)
        if control is None or conn is None or conn.phase is not ConnectionPhase.DIALING:
            return
        if control.engaged:
            in_flight = len(self._dial_slots) - (conn_id in self._dial_slots)
            recent = 0  # only read when the limit engages
        else:
            in_flight = self._dials_in_flight() - (conn.direction is _OUT)
            recent = self._recent_completions(now - control.window) + completed
        if control.on_overload(conn.opened_at, now, in_flight, recent):
            self._refresh_dial_limit()

    def _on_receive_drops(self, now: float) -> None:
        """Tell the adaptive limit that this node's socket dropped datagrams."""
        control = self._dial_control
        if control is None:
            return
        if control.engaged:
            in_flight = len(self._dial_slots)
            recent = 0  # only read when the limit engages
        else:
            in_flight = self._dials_in_flight()
            recent = self._recent_completions(now - control.window) if in_flight else 0
        if control.on_host_overload(now, in_flight, recent):
            self._refresh_dial_limit()

    def _dials_in_flight(self) -> int:
        return sum(1 for s in self._conns.values()
                   if s.phase is ConnectionPhase.DIALING and s.direction is _OUT)

    def _recent_completions(self, since: float) -> int:
        """Peers connected (either way) at or after ``since`` and still live."""
        recent = 0
        for peer in self._peers.values():
            connected_at = peer.connected_at
            if peer.live is not None and connected_at is not None and connected_at >= since:
                recent += 1
        return recent

    def _refresh_dial_limit(self) -> None:
        """Apply the adaptive limit after it changed: the smaller of it and the
        fixed one; when a limit comes into force, every dial in flight holds a slot."""
        control = self._dial_control
        fixed = self._fixed_dial_limit
        if control is None or not control.engaged:
            if fixed is None:
                self._dial_slots.clear()
            self._dial_limit = fixed
            return
        if self._dial_limit is None:
            self._dial_slots.update(
                c for c, s in self._conns.items()
                if s.phase is ConnectionPhase.DIALING and s.direction is _OUT)
        adaptive = control.limit
        self._dial_limit = adaptive if fixed is None else min(fixed, adaptive)

    # ================================================================ validator set

    def _on_validator_set(self, event: ValidatorSetChanged, now: float) -> None:
        local = self.local_key
        wanted: dict[PeerKey, PeerEndpoint] = {}
        for group in (event.previous, event.next, event.current):
            for endpoint in group:
                wanted[endpoint.key] = endpoint
        wanted.pop(local, None)
        current = {e.key for e in event.current}

        for key in [k for k, p in self._peers.items()
                    if p.role is PeerRole.VALIDATOR and k not in wanted]:
            self._forget_peer(self._peers[key], CloseReason.NOT_IN_VALIDATOR_SET.value)

        peers = self._peers
        validator = PeerRole.VALIDATOR
        local_high = local[31] > 127
        for key, endpoint in wanted.items():
            peer = peers.get(key)
            if peer is None:
                preferred = (local_high != (key[31] > 127)) != (local < key)
                peer = ConnectionInfo(key, endpoint.address, validator, preferred, now)
                peers[key] = peer
                peer.in_current_set = key in current
                if preferred:
                    self._request_dial(peer, now)
                else:
                    self._wait_inbound(peer, now)
                continue
            peer.address = endpoint.address
            peer.in_current_set = key in current
            if peer.role is PeerRole.NON_VALIDATOR:
                # A builder-slot peer became a validator: it no longer uses a slot.
                peer.role = PeerRole.VALIDATOR
                self._non_validators -= 1
            if peer.status is ConnectionStatus.GIVEN_UP:
                # A fresh announcement of the set is a reason to try again.
                peer.attempts = 0
                peer.give_up_clock = None
                self._set_status(peer, ConnectionStatus.DISCONNECTED, now)
                self._begin_connecting(peer, now)

    def _begin_connecting(self, peer: ConnectionInfo, now: float) -> None:
        """Initial intent towards a validator we are not connected to."""
        if peer.live is not None or peer.pending_dial is not None:
            return
        if peer.we_are_preferred:
            self._request_dial(peer, now)
        else:
            self._wait_inbound(peer, now)

    def _wait_inbound(self, peer: ConnectionInfo, now: float) -> None:
        self._set_status(peer, ConnectionStatus.WAITING_INBOUND, now)
        if self.policy.non_preferred_dials:
            self._schedule(peer, now + self.policy.fallback_after)
        else:
            self._cancel_timer(peer)

    def _forget_peer(self, peer: ConnectionInfo, reason: str) -> None:
        """Drop a peer entirely (left the validator sets), closing its connections."""
        self._cancel_timer(peer)
        for conn_id in [c for c, s in self._conns.items() if s.peer == peer.key]:
            conn = self._conns.pop(conn_id)
            self._dial_slots.discard(conn_id)
            if conn.phase is ConnectionPhase.LIVE and conn_id == peer.live:
                self._disconnected(conn, reason, _LOCAL_CLOSE)
            else:
                self._failed(conn, reason)
            self._actions.append(CloseConnection(conn_id, reason))
        if peer.role is PeerRole.NON_VALIDATOR:
            self._non_validators -= 1
        if peer.key in self._dial_queue:
            self._dial_queue.remove(peer.key)
        del self._peers[peer.key]

    # ================================================================ dialling

    def _wants_dial(self, peer: ConnectionInfo) -> bool:
        return (
            peer.role is PeerRole.VALIDATOR
            and peer.live is None
            and peer.pending_dial is None
            and peer.status is not ConnectionStatus.GIVEN_UP
        )

    def _request_dial(self, peer: ConnectionInfo, now: float) -> None:
        if not self._wants_dial(peer):
            return
        if self._dial_limit is not None and len(self._dial_slots) >= self._dial_limit:
            self._set_status(peer, ConnectionStatus.CONNECTING, now)
            if peer.key not in self._dial_queue:
                self._dial_queue.append(peer.key)
            return
        self._start_dial(peer, now)

    def _start_dial(self, peer: ConnectionInfo, now: float) -> None:
        conn_id = self._begin_dial(peer, now, None)
        if conn_id is None:
            return
        if self._dial_limit is not None:
            self._dial_slots.add(conn_id)
        assert peer.address is not None
        self._actions.append(
            Dial(conn_id, peer.key, peer.address, peer.attempts + 1, self.policy.connect_timeout)
        )

    def _begin_dial(self, peer: ConnectionInfo, now: float,
                    at: float | None) -> ConnectionId | None:
        """Record a dial starting at ``now`` (telemetry stamped ``at``); no action yet."""
        if peer.address is None:
            return None  # nowhere to dial; wait for the peer or a set update
        self._cancel_timer(peer)
        conn_id = self._next_conn_id
        self._next_conn_id = conn_id + 1
        peer.total_attempts += 1
        event_id = self._next_event_id
        self._next_event_id = event_id + 1
        if self._emit_telemetry:
            self._actions.append(EmitTelemetry(_K_CONNECTING_OUT, event_id, peer.key, conn_id,
                                               _OUT, peer.address, "", peer.attempts + 1, None,
                                               None, at))
        self._conns[conn_id] = ConnectionState(conn_id, _OUT, ConnectionPhase.DIALING, now,
                                               event_id, peer.key)
        peer.pending_dial = conn_id
        if peer.live is None:
            self._set_status(peer, ConnectionStatus.CONNECTING, now)
        return conn_id

    def _on_dial_timer(self, peer: ConnectionInfo, now: float) -> None:
        if peer.live is not None or peer.pending_dial is not None:
            return
        self._request_dial(peer, now)

    def _schedule_retry(self, peer: ConnectionInfo, now: float) -> None:
        """After a failed dial: back off, or give up per policy."""
        retry_at = self._retry_decision(peer, now)
        if retry_at is None:
            self._cancel_timer(peer)
            self._set_status(peer, ConnectionStatus.GIVEN_UP, now)
            return
        self._set_status(peer, ConnectionStatus.RETRYING, now)
        self._schedule(peer, retry_at)

    def _retry_decision(self, peer: ConnectionInfo, now: float) -> float | None:
        """When to retry after a failure at ``now`` (``None``: give up); runs the
        give-up clock and draws the backoff, so call it once per failure."""
        policy = self.policy
        if policy.give_up_clock_resets or peer.give_up_clock is None:
            peer.give_up_clock = now
        if (
            policy.give_up_after is not None
            and not (policy.give_up_spares_current_set and peer.in_current_set)
            and now - peer.give_up_clock >= policy.give_up_after
        ):
            return None
        attempt = peer.attempts
        schedule = self._backoff
        if attempt <= len(schedule):
            ceiling = schedule[attempt - 1] if attempt > 0 else schedule[0]
        elif self._backoff_final:
            ceiling = schedule[-1]
        else:
            ceiling = policy.backoff_ceiling(attempt)
        return now + policy.jittered(ceiling, self._rng)

    # ================================================================ outcomes

    def _on_established(self, conn_id: ConnectionId, key: PeerKey, now: float,
                        answer_rtt: float | None = None) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.phase is not ConnectionPhase.DIALING:
            return
        control = self._dial_control
        if answer_rtt is not None and control is not None and \
                answer_rtt > control.slow_answer:
            self._on_dial_overloaded(conn_id, now, True)
        elif self._dial_limit is not None and control is not None and control.engaged and \
                control.on_completed(now - conn.opened_at, bool(self._dial_queue)):
            self._refresh_dial_limit()
        if self._dial_slots:  # a limited dial's slot is free again
            self._dial_slots.discard(conn_id)
        peer = self._peers.get(conn.peer) if conn.peer else None
        if peer is None or key != conn.peer:
            # The driver verified a different key than we dialled: refuse it, and
            # count the dial as failed so the peer we wanted is retried.
            self._actions.append(CloseConnection(conn_id, "unexpected peer key"))
            self._on_dial_failed(conn_id, "unexpected peer key", now)
            return
        peer.pending_dial = None
        self._go_live(peer, conn, _K_CONNECTED_OUT, _OUT, now)

    def _on_dial_failed(self, conn_id: ConnectionId, reason: str, now: float,
                        at: float | None = None) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.phase is not ConnectionPhase.DIALING:
            return
        if self._dial_slots:  # a limited dial's slot is free again
            self._dial_slots.discard(conn_id)
        del self._conns[conn_id]
        self._failed(conn, reason, at)
        peer = self._peers.get(conn.peer) if conn.peer else None
        if peer is None or peer.pending_dial != conn_id:
            return
        peer.pending_dial = None
        if peer.live is not None:
            return  # an inbound connection won meanwhile
        peer.attempts += 1
        self._schedule_retry(peer, now)

    def _on_dial_path_cut(self, event: DialPathCut, now: float) -> None:
        """Apply every attempt a simulator skipped while the dial's path was cut.

        The loop is the step-by-step sequence in closed form: the dial started at
        ``opened_at`` times out at ``opened_at + connect_timeout``; that failure is
        handled exactly as a ``DialFailed`` then (backoff draw, give-up check); if
        the retry it schedules also fell before ``now``, that dial starts then, and
        so on. It stops at the first timer or dial still ahead of ``now``.
        """
        if self._fixed_dial_limit is not None:
            raise UsageError("DialPathCut needs unlimited parallel dials: with "
                             "serial_dials or max_parallel_dials a dial waits for "
                             "others to end, so attempts are not independent")
        conn_id = event.conn_id
        conn = self._conns.get(conn_id)
        if conn is None or conn.phase is not ConnectionPhase.DIALING or conn.peer is None:
            return
        if self._dial_limit is not None:
            # An engaged adaptive limit (never in the model fidelity): the retries
            # would have waited for slots, which cannot be replayed; apply the
            # first timeout and let the retry queue like any other dial.
            failed_at = min(now, conn.opened_at + self.policy.connect_timeout)
            self._on_dial_failed(conn_id, "timeout", failed_at, failed_at)
            return
        peer = self._peers.get(conn.peer)
        timeout = self.policy.connect_timeout
        started = conn.opened_at
        if peer is not None and peer.pending_dial == conn_id and peer.live is None \
                and peer.address is not None:
            self._catch_up(peer, conn, now)
            return
        while True:
            failed_at = started + timeout
            if failed_at > now:
                break  # still within its connect timeout
            self._on_dial_failed(conn_id, "timeout", failed_at, failed_at)
            if peer is None or peer.pending_dial is not None or peer.live is not None:
                return
            retry_at = peer.retry_at
            if retry_at is None or retry_at >= now:
                return  # given up, or the timer is ahead: next_deadline() reports it
            new_id = self._begin_dial(peer, retry_at, retry_at)
            if new_id is None:
                return
            conn_id, started = new_id, retry_at
        if conn_id != event.conn_id and peer is not None and peer.address is not None:
            self._actions.append(Dial(conn_id, peer.key, peer.address, peer.attempts + 1,
                                      timeout, started))

    def _catch_up(self, peer: ConnectionInfo, conn: ConnectionState, now: float) -> None:
        """``_on_dial_path_cut`` for a peer whose only business is this dial, in
        closed form.

        Each skipped attempt is a timeout at its time, a backoff draw (or give-up)
        and, before ``now``, the next dial: the same ids, draws, statuses and
        telemetry (each event stamped with its own time) as handling them one by
        one, but no connection record or retry timer for the attempts already over
        (the step-by-step path adds and drops one of each per attempt, and a
        1023-validator partition catches up millions). Only a dial still in flight
        at ``now`` gets a record, only a retry still ahead a timer. The hypothesis
        test checks it against the step-by-step path, with telemetry and without.
        """
        timeout = self.policy.connect_timeout
        emit = self._emit_telemetry
        actions = self._actions
        key = peer.key
        address = peer.address
        conn_id = conn.conn_id
        connecting_event = conn.connecting_event_id
        started = conn.opened_at
        skipped = 0
        if self._dial_slots:  # a limited dial's slot is free again
            self._dial_slots.discard(conn_id)
        del self._conns[conn_id]
        while True:
            failed_at = started + timeout
            if failed_at > now:
                break  # this dial is still within its connect timeout
            # the dial times out (as _on_dial_failed, then _schedule_retry)
            event_id = self._next_event_id
            self._next_event_id = event_id + 1
            if emit:
                actions.append(EmitTelemetry(_K_CONNECT_OUT_FAILED, event_id, key, conn_id,
                                             _OUT, None, "timeout", 0, connecting_event,
                                             None, failed_at))
            peer.attempts += 1
            retry_at = self._retry_decision(peer, failed_at)
            if retry_at is None or retry_at >= now:
                peer.pending_dial = None
                if retry_at is None:
                    self._cancel_timer(peer)
                    self._set_status(peer, ConnectionStatus.GIVEN_UP, failed_at)
                else:
                    self._set_status(peer, ConnectionStatus.RETRYING, failed_at)
                    self._schedule(peer, retry_at)
                return
            self._set_status(peer, ConnectionStatus.RETRYING, failed_at)
            # the retry timer fires: the next dial starts (as _begin_dial)
            skipped += 1
            started = retry_at
            conn_id = self._next_conn_id
            self._next_conn_id = conn_id + 1
            peer.total_attempts += 1
            connecting_event = self._next_event_id
            self._next_event_id = connecting_event + 1
            if emit:
                actions.append(EmitTelemetry(_K_CONNECTING_OUT, connecting_event, key, conn_id,
                                             _OUT, address, "", peer.attempts + 1, None, None,
                                             started))
            self._set_status(peer, ConnectionStatus.CONNECTING, started)
        if not skipped:
            self._conns[conn_id] = conn
            return
        # A retry is in flight at ``now``: it gets its record and its Dial.
        self._cancel_timer(peer)
        self._conns[conn_id] = ConnectionState(conn_id, _OUT, ConnectionPhase.DIALING, started,
                                               connecting_event, key)
        peer.pending_dial = conn_id
        if address is not None:
            actions.append(Dial(conn_id, key, address, peer.attempts + 1, timeout, started))

    def _on_inbound_connecting(
        self, conn_id: ConnectionId, address: PeerAddress | None, now: float
    ) -> None:
        if conn_id in self._conns:
            return
        event_id = self._next_event_id
        self._next_event_id = event_id + 1
        if self._emit_telemetry:
            self._actions.append(EmitTelemetry(_K_CONNECTING_IN, event_id, None, conn_id, _IN,
                                               address, "", 0, None, None))
        self._conns[conn_id] = ConnectionState(conn_id, _IN, ConnectionPhase.HANDSHAKING, now,
                                               event_id)

    def _on_inbound_handshake(self, event: InboundHandshake, now: float) -> None:
        conn_id, key = event.conn_id, event.peer
        conn = self._conns.get(conn_id)
        if conn is None:
            self._on_inbound_connecting(conn_id, event.address, now)
            conn = self._conns[conn_id]
        if conn.phase is not ConnectionPhase.HANDSHAKING or conn.direction is not Direction.INBOUND:
            return
        conn.peer = key
        peer = self._peers.get(key)
        refusal: str | None = None
        if key == self.local_key:
            refusal = CloseReason.SELF.value
        elif peer is None:
            if self.policy.validators_only:
                refusal = CloseReason.NOT_IN_VALIDATOR_SET.value
            elif self._non_validators >= self.policy.non_validator_slots:
                refusal = CloseReason.NO_SLOT.value
        elif peer.role is PeerRole.NON_VALIDATOR and peer.live is not None:
            # A second connection from a slot holder is a plain duplicate.
            pass
        if refusal is not None:
            del self._conns[conn_id]
            self._failed(conn, refusal)
            self._actions.append(CloseConnection(conn_id, refusal))
            return
        if peer is None:
            peer = ConnectionInfo(key, event.address, PeerRole.NON_VALIDATOR,
                                  _we_are_preferred(self.local_key, key), now)
            self._peers[key] = peer
            self._non_validators += 1
        self._go_live(peer, conn, _K_CONNECTED_IN, _IN, now)

    def _go_live(self, peer: ConnectionInfo, conn: ConnectionState, kind: TelemetryKind,
                 direction: Direction, now: float) -> None:
        """A handshake completed (either way): say so, then try ``conn`` as the live one."""
        conn.phase = _LIVE
        event_id = self._next_event_id
        self._next_event_id = event_id + 1
        if self._emit_telemetry:
            self._actions.append(EmitTelemetry(kind, event_id, peer.key, conn.conn_id, direction,
                                               None, "", 0, conn.connecting_event_id, None))
        self._install_live(peer, conn, now)
        control = self._dial_control
        if control is not None and control.engaged and self._at_rest():
            control.open()
            self._refresh_dial_limit()

    def _at_rest(self) -> bool:
        """No dial in flight or waiting, and every validator wanted is connected
        (or given up on): nothing left for an adaptive limit to pace."""
        if self._dial_slots or self._dial_queue:
            return False
        for peer in self._peers.values():
            if peer.live is None and peer.role is PeerRole.VALIDATOR and \
                    peer.status is not ConnectionStatus.GIVEN_UP:
                return False
        return True

    def _install_live(self, peer: ConnectionInfo, conn: ConnectionState, now: float) -> None:
        """Make ``conn`` the peer's live connection unless the duplicate rule says no."""
        existing_id = peer.live
        if existing_id is not None:
            existing = self._conns[existing_id]
            if self._new_wins(peer, existing, conn):
                self._close_duplicate(peer, existing)
            else:
                self._close_duplicate(peer, conn)
                return
        peer.live = conn.conn_id
        peer.direction = conn.direction
        peer.attempts = 0
        peer.give_up_clock = None
        peer.connected_at = now
        peer.timer_generation += 1  # cancels any retry/fallback timer
        peer.retry_at = None
        if self._dial_queue and peer.key in self._dial_queue:
            self._dial_queue.remove(peer.key)
        if peer.status is not _CONNECTED:
            peer.status = _CONNECTED
            peer.last_change = now
        if conn.direction is _IN:
            self._actions.append(AcceptInbound(conn.conn_id, peer.key))

    def _new_wins(
        self, peer: ConnectionInfo, existing: ConnectionState, new: ConnectionState
    ) -> bool:
        rule = self.policy.duplicate_rule
        if rule is DuplicateRule.KEEP_OLDER:
            return False
        if rule is DuplicateRule.KEEP_NEWER:
            return True
        # A connection whose peer has gone silent loses to one that just completed
        # a handshake: its peer is most likely a restarted process that lost it
        # (so holds no duplicate to disagree about), or cut off both ways, in which
        # case the other end saw the same silence.
        if (existing.silent_since is None) != (new.silent_since is None):
            return existing.silent_since is not None
        # Both ends know who opened each connection and who the preferred
        # initiator is, so both pick the same survivor without talking.
        def by_preferred(conn: ConnectionState) -> bool:
            opened_by_us = conn.direction is Direction.OUTBOUND
            return opened_by_us == peer.we_are_preferred

        existing_preferred, new_preferred = by_preferred(existing), by_preferred(new)
        if existing_preferred != new_preferred:
            return new_preferred
        return True  # same initiator: it redialled because it thinks the old one died

    def _close_duplicate(self, peer: ConnectionInfo, conn: ConnectionState) -> None:
        reason = CloseReason.DUPLICATE.value
        del self._conns[conn.conn_id]
        if conn.conn_id == peer.live:
            peer.live = None
        # The loser was reported connected (in or out) a moment ago; close it the
        # same way any connection ends so per-connection timelines stay complete.
        self._disconnected(conn, reason, _LOCAL_CLOSE)
        self._actions.append(CloseConnection(conn.conn_id, reason))

    def _on_inbound_failed(self, conn_id: ConnectionId, reason: str) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.phase is not ConnectionPhase.HANDSHAKING:
            return
        del self._conns[conn_id]
        self._failed(conn, reason)

    def _on_lost(
        self, conn_id: ConnectionId, reason: str, side: Side | None, now: float
    ) -> None:
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        if conn.phase is ConnectionPhase.DIALING:
            self._on_dial_failed(conn_id, reason, now)
            return
        if conn.phase is ConnectionPhase.HANDSHAKING:
            self._on_inbound_failed(conn_id, reason)
            return
        del self._conns[conn_id]
        peer = self._peers.get(conn.peer) if conn.peer else None
        self._disconnected(conn, reason, side)
        if peer is None or peer.live != conn_id:
            return
        peer.live = None
        peer.direction = None
        peer.disconnects += 1
        if peer.role is PeerRole.NON_VALIDATOR:
            self._forget_peer(peer, reason)
            return
        if peer.pending_dial is not None:
            self._set_status(peer, ConnectionStatus.CONNECTING, now)
            return  # a dial is already under way
        self._set_status(peer, ConnectionStatus.DISCONNECTED, now)
        self._after_loss(peer, conn.direction, now)

    def _after_loss(self, peer: ConnectionInfo, lost: Direction, now: float) -> None:
        """Decide how to get a lost connection back."""
        policy = self.policy
        if lost is Direction.INBOUND and not policy.redial_lost_inbound:
            # Either side: wait for the peer to dial again, with no fallback dial.
            self._cancel_timer(peer)
            self._set_status(peer, ConnectionStatus.WAITING_INBOUND, now)
            return
        if not peer.we_are_preferred:
            # Whichever way the lost connection went, the preferred side redials
            # first; we fall back after the grace period if the policy allows.
            self._wait_inbound(peer, now)
            return
        if policy.reconnect_after_loss is not None:
            delay = policy.reconnect_after_loss
        else:
            delay = policy.retry_delay(1, self._rng)
        self._set_status(peer, ConnectionStatus.RETRYING, now)
        self._schedule(peer, now + delay)

    def _on_misbehaved(self, conn_id: ConnectionId, reason: str) -> None:
        conn = self._conns.get(conn_id)
        key = conn.peer if conn else None
        peer = self._peers.get(key) if key else None
        if peer is not None:
            peer.misbehaviour += 1
        self._telemetry(TelemetryKind.PEER_MISBEHAVED, key, conn_id, reason)

    def _on_shutdown(self, now: float) -> None:
        reason = CloseReason.SHUTDOWN.value
        for conn_id, conn in list(self._conns.items()):
            if conn.phase is ConnectionPhase.LIVE:
                self._disconnected(conn, reason, _LOCAL_CLOSE)
            else:
                self._failed(conn, reason)
            self._actions.append(CloseConnection(conn_id, reason))
        self._conns.clear()
        for peer in self._peers.values():
            peer.live = None
            peer.pending_dial = None
            peer.timer_generation += 1
            self._set_status(peer, ConnectionStatus.DISCONNECTED, now)
        self._timer_heap.clear()
        self._timer_buckets.clear()
        self._dial_queue.clear()
        self._backlog.clear()
        self._dial_slots.clear()
        self._shut_down = True

    # ================================================================ helpers

    def _failed(self, conn: ConnectionState, reason: str, at: float | None = None) -> None:
        """A dial or inbound handshake that ends before going live (it failed, was
        refused or the manager drops it): report its outcome, so every
        ``connecting_out``/``connecting_in`` ends in a failure or success."""
        if conn.phase is ConnectionPhase.DIALING:
            kind, direction = TelemetryKind.CONNECT_OUT_FAILED, Direction.OUTBOUND
        elif conn.phase is ConnectionPhase.HANDSHAKING:
            kind, direction = TelemetryKind.CONNECT_IN_FAILED, Direction.INBOUND
        else:
            return
        self._telemetry(kind, conn.peer, conn.conn_id, reason, direction,
                        ref_event_id=conn.connecting_event_id, at=at)

    def _disconnected(self, conn: ConnectionState, reason: str, side: Side | None) -> None:
        """A connection that was reported connected ends (``side`` closed it)."""
        self._telemetry(TelemetryKind.DISCONNECTED, conn.peer, conn.conn_id, reason,
                        conn.direction, side=side)

    def _set_status(self, peer: ConnectionInfo, status: ConnectionStatus, now: float) -> None:
        if peer.status is not status:
            peer.status = status
            peer.last_change = now

    def _schedule(self, peer: ConnectionInfo, at: float) -> None:
        generation = peer.timer_generation + 1
        peer.timer_generation = generation
        peer.retry_at = at
        bucket = self._timer_buckets.get(at)
        if bucket is None:
            self._timer_buckets[at] = bucket = []
            heapq.heappush(self._timer_heap, at)
            self.deadlines_added += 1
        bucket.append((peer.key, generation))

    def _cancel_timer(self, peer: ConnectionInfo) -> None:
        peer.timer_generation += 1
        peer.retry_at = None

    def _telemetry(
        self,
        kind: TelemetryKind,
        peer: PeerKey | None,
        conn_id: ConnectionId,
        reason: str,
        direction: Direction | None = None,
        *,
        ref_event_id: int | None = None,
        side: Side | None = None,
        at: float | None = None,
    ) -> None:
        """An event that ends a connection (or reports its misbehaviour); the
        ``connecting``/``connected`` ones are built inline on the hot paths."""
        event_id = self._next_event_id
        self._next_event_id += 1
        if self._emit_telemetry:
            self._actions.append(EmitTelemetry(kind, event_id, peer, conn_id, direction,
                                               None, reason, 0, ref_event_id, side, at))

    # ================================================================ bulk helpers

    def handle_all(self, events: Iterable[Event], now: float) -> list[Action]:
        """Handle several events at one instant and return every resulting action."""
        for event in events:
            self.handle(event, now)
        return self.drain_actions()


def _we_are_preferred(local: PeerKey, remote: PeerKey) -> bool:
    """JAMNP-S preferred-initiator rule without argument checks (keys are known
    to be 32 bytes here); identical to :func:`jamsim.identity.is_preferred_initiator`."""
    return ((local[31] > 127) != (remote[31] > 127)) != (local < remote)
