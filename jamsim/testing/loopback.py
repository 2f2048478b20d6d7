"""An in-memory transport that wires ConnectionManagers back to back.

No sockets, no event loop, no clock: a :class:`Loopback` turns each manager's
``Dial``/``CloseConnection`` actions into pending *deliveries* (the events the
other end would observe) and lets the caller choose which delivery happens next.
Tests use it to explore interleavings (hypothesis picks the order); it is also the
smallest possible driver, which keeps the manager honest about being sans-IO.

Each transport connection has two ends, one per node, each with its own
connection id allocated by that node's manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from jamsim.core.actions import AcceptInbound, CloseConnection, Dial, EmitTelemetry
from jamsim.core.events import (
    ConnectionEstablished,
    ConnectionLost,
    DialFailed,
    Event,
    InboundFailed,
    InboundHandshake,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.types import ConnectionId, PeerKey, Side

__all__ = ["Delivery", "Loopback", "Transport"]


@dataclass(slots=True)
class Transport:
    """One transport connection between ``dialer`` and ``acceptor``."""

    dialer: PeerKey
    acceptor: PeerKey
    dialer_id: ConnectionId
    acceptor_id: ConnectionId | None = None
    dialer_open: bool = False
    acceptor_open: bool = False
    closed: bool = False


@dataclass(slots=True)
class Delivery:
    """An event waiting to reach ``node``."""

    node: PeerKey
    event: Event
    transport: Transport | None = None


@dataclass
class Loopback:
    """Managers keyed by their local key, plus in-flight deliveries."""

    managers: dict[PeerKey, ConnectionManager]
    reachable: Callable[[PeerKey, PeerKey], bool] = lambda a, b: True
    now: float = 0.0
    pending: list[Delivery] = field(default_factory=list)
    transports: list[Transport] = field(default_factory=list)
    telemetry: list[tuple[PeerKey, EmitTelemetry]] = field(default_factory=list)

    # ------------------------------------------------------------------ driving

    def handle(self, node: PeerKey, event: Event) -> None:
        self.managers[node].handle(event, self.now)
        self.pump(node)

    def pump(self, node: PeerKey) -> None:
        """Turn ``node``'s queued actions into deliveries."""
        manager = self.managers[node]
        while (action := manager.next_action()) is not None:
            match action:
                case Dial():
                    self._dial(node, action)
                case CloseConnection(conn_id=conn_id, reason=reason):
                    self._close(node, conn_id, reason)
                case EmitTelemetry():
                    self.telemetry.append((node, action))
                case AcceptInbound():
                    pass

    def deliver(self, index: int) -> None:
        """Perform pending delivery ``index`` (any order is a legal interleaving)."""
        delivery = self.pending.pop(index)
        transport = delivery.transport
        if transport is not None and isinstance(delivery.event, InboundHandshake):
            transport.acceptor_open = True
        if transport is not None and isinstance(delivery.event, ConnectionEstablished):
            transport.dialer_open = True
        self.handle(delivery.node, delivery.event)

    def fire_timers(self) -> bool:
        """Advance ``now`` to the earliest manager deadline and fire it."""
        deadlines = [
            (d, key) for key, m in self.managers.items() if (d := m.next_deadline()) is not None
        ]
        if not deadlines:
            return False
        deadline, _ = min(deadlines)
        self.now = max(self.now, deadline)
        for key, manager in self.managers.items():
            manager.handle_timer(self.now)
            self.pump(key)
        return True

    def start(self, events: Iterable[tuple[PeerKey, Event]]) -> None:
        for node, event in events:
            self.handle(node, event)

    def settle(self, max_steps: int = 10_000) -> int:
        """Deliver everything in FIFO order and fire timers until nothing is left
        to do or every pair is connected; returns the steps taken."""
        for step in range(max_steps):
            if self.pending:
                self.deliver(0)
            elif self.all_connected() or not self.fire_timers():
                return step
        raise RuntimeError(f"loopback did not settle in {max_steps} steps")

    # ------------------------------------------------------------------ faults

    def cut(self, transport: Transport, reason: str = "transport lost") -> None:
        """Kill an open transport: each end that saw it open learns it was lost."""
        if transport.closed:
            return
        transport.closed = True
        self._drop_pending_for(transport)
        # An end that saw the connection open loses it; one that did not, fails it.
        dialer_event: Event = (ConnectionLost(transport.dialer_id, reason, None)
                               if transport.dialer_open
                               else DialFailed(transport.dialer_id, reason))
        self.pending.append(Delivery(transport.dialer, dialer_event))
        acceptor_id = transport.acceptor_id
        if acceptor_id is not None:
            acceptor_event: Event = (ConnectionLost(acceptor_id, reason, None)
                                     if transport.acceptor_open
                                     else InboundFailed(acceptor_id, reason))
            self.pending.append(Delivery(transport.acceptor, acceptor_event))

    # ------------------------------------------------------------------ queries

    def live_transport(self, a: PeerKey, b: PeerKey) -> Transport | None:
        """The transport both ``a`` and ``b`` consider live, if they agree."""
        a_id = self.managers[a].live_connection(b)
        b_id = self.managers[b].live_connection(a)
        if a_id is None or b_id is None:
            return None
        for t in self.transports:
            if t.closed:
                continue
            ends = {(t.dialer, t.dialer_id), (t.acceptor, t.acceptor_id)}
            if (a, a_id) in ends and (b, b_id) in ends:
                return t
        return None

    def open_transports(self, a: PeerKey, b: PeerKey) -> list[Transport]:
        return [t for t in self.transports
                if not t.closed and {t.dialer, t.acceptor} == {a, b}]

    def all_connected(self) -> bool:
        keys = list(self.managers)
        return all(
            self.live_transport(a, b) is not None
            for i, a in enumerate(keys) for b in keys[i + 1:]
        )

    # ------------------------------------------------------------------ internals

    def _dial(self, node: PeerKey, dial: Dial) -> None:
        transport = Transport(node, dial.peer, dial.conn_id)
        self.transports.append(transport)
        remote = self.managers.get(dial.peer)
        if remote is None or not self.reachable(node, dial.peer):
            transport.closed = True
            self.pending.append(Delivery(node, DialFailed(dial.conn_id, "unreachable")))
            return
        transport.acceptor_id = remote.allocate_connection_id()
        self.pending.append(Delivery(
            dial.peer, InboundHandshake(transport.acceptor_id, node), transport))
        self.pending.append(Delivery(
            node, ConnectionEstablished(dial.conn_id, dial.peer), transport))

    def _close(self, node: PeerKey, conn_id: ConnectionId, reason: str) -> None:
        for transport in self.transports:
            if transport.closed:
                continue
            if transport.dialer == node and transport.dialer_id == conn_id:
                self._close_from(transport, node, reason)
                return
            if transport.acceptor == node and transport.acceptor_id == conn_id:
                self._close_from(transport, node, reason)
                return

    def _close_from(self, transport: Transport, closer: PeerKey, reason: str) -> None:
        """``closer`` closed its end: the other end hears of it, or its open fails."""
        transport.closed = True
        self._drop_pending_for(transport)
        if closer == transport.dialer:
            if transport.acceptor_id is None:
                return
            if transport.acceptor_open:
                self.pending.append(Delivery(transport.acceptor, ConnectionLost(
                    transport.acceptor_id, reason, Side.REMOTE)))
            else:
                self.pending.append(Delivery(
                    transport.acceptor, InboundFailed(transport.acceptor_id, reason)))
        elif transport.dialer_open:
            self.pending.append(Delivery(transport.dialer, ConnectionLost(
                transport.dialer_id, reason, Side.REMOTE)))
        else:
            self.pending.append(Delivery(transport.dialer, DialFailed(transport.dialer_id, reason)))

    def _drop_pending_for(self, transport: Transport) -> None:
        self.pending = [d for d in self.pending if d.transport is not transport]
