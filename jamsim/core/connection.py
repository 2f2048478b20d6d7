"""Per-peer and per-connection state records of the ConnectionManager.

Two levels, because a peer can briefly have several transport connections (a dial
in flight while an inbound arrives, a duplicate pair after a simultaneous dial):

* :class:`ConnectionInfo` — one per remote peer: what the manager is doing about it
  (status, attempts, which connection is live, when to act next).
* :class:`ConnectionState` — one per transport connection: direction and phase.

Both use ``__slots__``: at 1023 validators a simulation holds about a million of
them, so their size is the simulator's memory footprint. Their ``__init__``
methods are written out field by field like the events' (see events.py on why
that repetition stays).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jamsim.core.types import (
    ConnectionId,
    ConnectionStatus,
    Direction,
    PeerKey,
    PeerRole,
)
from jamsim.identity import PeerAddress

__all__ = ["ConnectionInfo", "ConnectionPhase", "ConnectionState", "PeerSnapshot"]


class ConnectionPhase(enum.Enum):
    DIALING = "dialing"  # outbound, handshake in progress
    HANDSHAKING = "handshaking"  # inbound, peer not yet verified
    LIVE = "live"


class ConnectionState:
    """One transport connection as the manager sees it."""

    __slots__ = ("conn_id", "connecting_event_id", "direction", "opened_at", "peer", "phase",
                 "silent_since")

    def __init__(
        self,
        conn_id: ConnectionId,
        direction: Direction,
        phase: ConnectionPhase,
        opened_at: float,
        connecting_event_id: int,
        peer: PeerKey | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.direction = direction
        self.phase = phase
        self.opened_at = opened_at
        self.connecting_event_id = connecting_event_id
        self.peer = peer
        self.silent_since: float | None = None
        """Since when the peer has not answered on it, as last reported (PeerSilence)."""

    def __repr__(self) -> str:
        peer = self.peer.hex()[:8] if self.peer else None
        return (
            f"ConnectionState(#{self.conn_id} {self.direction.value} {self.phase.value} "
            f"peer={peer})"
        )


class ConnectionInfo:
    """What the manager knows and intends about one remote peer (mutable, internal).

    ``attempts`` counts consecutive failed dials since the last live connection;
    ``total_attempts`` every dial ever made. ``timer_generation`` invalidates heap
    entries lazily: bumping it cancels whatever timer the peer had.
    """

    __slots__ = (
        "address",
        "attempts",
        "connected_at",
        "direction",
        "disconnects",
        "give_up_clock",
        "in_current_set",
        "key",
        "last_change",
        "live",
        "misbehaviour",
        "pending_dial",
        "retry_at",
        "role",
        "status",
        "timer_generation",
        "total_attempts",
        "we_are_preferred",
    )

    def __init__(
        self,
        key: PeerKey,
        address: PeerAddress | None,
        role: PeerRole,
        we_are_preferred: bool,
        now: float,
    ) -> None:
        self.key = key
        self.address = address
        self.role = role
        self.we_are_preferred = we_are_preferred
        self.status = ConnectionStatus.DISCONNECTED
        self.direction: Direction | None = None
        self.live: ConnectionId | None = None
        self.pending_dial: ConnectionId | None = None
        self.attempts = 0
        self.total_attempts = 0
        self.disconnects = 0
        self.misbehaviour = 0
        self.give_up_clock: float | None = None
        self.retry_at: float | None = None
        self.connected_at: float | None = None
        self.last_change = now
        self.in_current_set = False
        self.timer_generation = 0

    def snapshot(self) -> PeerSnapshot:
        return PeerSnapshot(
            key=self.key,
            status=self.status,
            direction=self.direction,
            conn_id=self.live,
            pending_dial=self.pending_dial,
            attempts=self.attempts,
            total_attempts=self.total_attempts,
            disconnects=self.disconnects,
            retry_at=self.retry_at,
            connected_at=self.connected_at,
            last_change=self.last_change,
            role=self.role,
            we_are_preferred=self.we_are_preferred,
        )


@dataclass(frozen=True, slots=True)
class PeerSnapshot:
    """Read-only copy of a :class:`ConnectionInfo` handed to callers."""

    key: PeerKey
    status: ConnectionStatus
    direction: Direction | None
    conn_id: ConnectionId | None
    pending_dial: ConnectionId | None
    attempts: int
    total_attempts: int
    disconnects: int
    retry_at: float | None
    connected_at: float | None
    last_change: float
    role: PeerRole
    we_are_preferred: bool
