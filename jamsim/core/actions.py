"""Actions the :class:`~jamsim.core.manager.ConnectionManager` asks its driver to do.

Like the events, actions are slotted values that nobody mutates; they are not
``frozen`` only because frozen construction is 5x slower, and they write their
``__init__`` out for the compiled build (see events.py). They are
``@final``: drivers dispatch on the exact type (``type(a) is Dial``), which is
cheaper than ``isinstance`` in a loop that runs millions of times.

Drivers execute them in order and report the outcome back as events. Timers are not
actions: like aioquic's ``get_timer()``, the manager exposes one
``next_deadline()`` and the driver calls ``handle_timer(now)`` when it passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from jamsim.core.types import ConnectionId, Direction, PeerKey, Side, TelemetryKind
from jamsim.identity import PeerAddress

__all__ = [
    "AcceptInbound",
    "Action",
    "CloseConnection",
    "Dial",
    "EmitTelemetry",
]


@final
@dataclass(slots=True, init=False)
class Dial:
    """Open an outbound connection ``conn_id`` to ``peer`` at ``address``.

    The driver must report exactly one of ``ConnectionEstablished`` or
    ``DialFailed`` for ``conn_id`` (unless the manager closes it first). The driver
    enforces ``timeout`` seconds on the handshake.

    ``started_at`` is set only in answer to a simulator's ``DialPathCut``: the dial
    began then, while the path was cut, and is still within its timeout, so the
    driver resumes it (deadline ``started_at + timeout``) rather than starting anew.
    """

    conn_id: ConnectionId
    peer: PeerKey
    address: PeerAddress
    attempt: int
    timeout: float
    started_at: float | None = None

    def __init__(
        self,
        conn_id: ConnectionId,
        peer: PeerKey,
        address: PeerAddress,
        attempt: int,
        timeout: float,
        started_at: float | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.address = address
        self.attempt = attempt
        self.timeout = timeout
        self.started_at = started_at


@final
@dataclass(slots=True, init=False)
class AcceptInbound:
    """Keep inbound connection ``conn_id`` from ``peer``: it is now the live one."""

    conn_id: ConnectionId
    peer: PeerKey

    def __init__(self, conn_id: ConnectionId, peer: PeerKey) -> None:
        self.conn_id = conn_id
        self.peer = peer


@final
@dataclass(slots=True, init=False)
class CloseConnection:
    """Close ``conn_id`` (or abandon the dial) with a human-readable reason.

    The driver should not report ``ConnectionLost`` for a connection the manager
    closed; if it does, the manager ignores it.
    """

    conn_id: ConnectionId
    reason: str

    def __init__(self, conn_id: ConnectionId, reason: str) -> None:
        self.conn_id = conn_id
        self.reason = reason


@final
@dataclass(slots=True, init=False)
class EmitTelemetry:
    """One JIP-3 networking event for the telemetry collector.

    ``event_id`` numbers this node's events from 0 (JIP-3 implicit ids);
    ``ref_event_id`` is the id of the "connecting" event an outcome refers to.
    ``at`` is ``None`` for an event that happened at the ``now`` of the call that
    produced it; a simulator's ``DialPathCut`` produces events of earlier attempts,
    stamped with their own times.
    """

    kind: TelemetryKind
    event_id: int
    peer: PeerKey | None = None
    conn_id: ConnectionId | None = None
    direction: Direction | None = None
    address: PeerAddress | None = None
    reason: str = ""
    attempt: int = 0
    ref_event_id: int | None = None
    side: Side | None = None
    at: float | None = None

    def __init__(
        self,
        kind: TelemetryKind,
        event_id: int,
        peer: PeerKey | None = None,
        conn_id: ConnectionId | None = None,
        direction: Direction | None = None,
        address: PeerAddress | None = None,
        reason: str = "",
        attempt: int = 0,
        ref_event_id: int | None = None,
        side: Side | None = None,
        at: float | None = None,
    ) -> None:
        self.kind = kind
        self.event_id = event_id
        self.peer = peer
        self.conn_id = conn_id
        self.direction = direction
        self.address = address
        self.reason = reason
        self.attempt = attempt
        self.ref_event_id = ref_event_id
        self.side = side
        self.at = at


Action = Dial | AcceptInbound | CloseConnection | EmitTelemetry
