"""Actions the :class:`~jamsim.core.manager.ConnectionManager` asks its driver to do.

Like the events, actions are slotted values that nobody mutates; they are not
``frozen`` only because frozen construction is 5x slower (see events.py). They are
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
@dataclass(slots=True)
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


@final
@dataclass(slots=True)
class AcceptInbound:
    """Keep inbound connection ``conn_id`` from ``peer``: it is now the live one."""

    conn_id: ConnectionId
    peer: PeerKey


@final
@dataclass(slots=True)
class CloseConnection:
    """Close ``conn_id`` (or abandon the dial) with a human-readable reason.

    The driver should not report ``ConnectionLost`` for a connection the manager
    closed; if it does, the manager ignores it.
    """

    conn_id: ConnectionId
    reason: str


@final
@dataclass(slots=True)
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


Action = Dial | AcceptInbound | CloseConnection | EmitTelemetry
