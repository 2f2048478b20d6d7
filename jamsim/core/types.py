"""Small value types shared by the sans-IO core: ids, enums and the peer record."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jamsim.identity import PeerAddress

__all__ = [
    "CloseReason",
    "ConnectionId",
    "ConnectionStatus",
    "Direction",
    "NodeLifecycle",
    "PeerKey",
    "PeerRole",
    "Side",
    "TelemetryKind",
]

PeerKey = bytes
"""A peer's 32-byte Ed25519 public key: the one identity JAMNP-S knows."""

ConnectionId = int
"""Identifies one transport connection (one QUIC connection or dial attempt).

Allocated by :meth:`ConnectionManager.allocate_connection_id` for both directions,
so an id is unique within one node for the node's whole life.
"""


class Direction(enum.Enum):
    OUTBOUND = "out"
    INBOUND = "in"


class Side(enum.IntEnum):
    """Who closed a connection (JIP-3 ``Connection Side``)."""

    LOCAL = 0
    REMOTE = 1


class ConnectionStatus(enum.Enum):
    """Where the manager is with one remote peer (mirrors Jamixir's statuses)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RETRYING = "retrying"
    WAITING_INBOUND = "waiting_inbound"
    GIVEN_UP = "given_up"


class PeerRole(enum.Enum):
    """Why the manager cares about a peer."""

    VALIDATOR = "validator"  # in the previous, current or next epoch's set
    NON_VALIDATOR = "non_validator"  # e.g. a work-package builder, in a bounded slot


class CloseReason(enum.Enum):
    """Why the manager closes or refuses a connection; values are the wire reasons."""

    DUPLICATE = "duplicate connection"
    NOT_IN_VALIDATOR_SET = "peer not in validator set"
    NO_SLOT = "no non-validator slot free"
    SHUTDOWN = "shutting down"
    SELF = "connection to self"


class _EventKind(enum.IntEnum):
    """An ``int`` event discriminator that an event table also names (no members:
    the two kinds of rows below share how they are named)."""

    @property
    def label(self) -> str:
        """snake_case name used in event tables (``connected_out``, ``node_crashed``)."""
        return self.name.lower()


class TelemetryKind(_EventKind):
    """JIP-3 networking event discriminators the connection layer emits."""

    STATUS = 10
    CONNECTION_REFUSED = 20
    CONNECTING_IN = 21
    CONNECT_IN_FAILED = 22
    CONNECTED_IN = 23
    CONNECTING_OUT = 24
    CONNECT_OUT_FAILED = 25
    CONNECTED_OUT = 26
    DISCONNECTED = 27
    PEER_MISBEHAVED = 28


class NodeLifecycle(_EventKind):
    """What happened to a node's process, as the harness saw it (not JIP-3).

    A process cannot report its own crash, so the runtime that crashed, paused,
    resumed or restarted it writes these rows itself (``peer`` -1). The kinds sit
    above JIP-3's discriminators (networking 10 and 20-28, block distribution
    60-68, none beyond 200) so a table can carry both without a clash; they are
    never sent on the JIP-3 wire. The analysis closes every session of a node at
    its crash or restart (jamsim/analysis/sessions.py).
    """

    NODE_CRASHED = 240
    NODE_PAUSED = 241
    NODE_RESUMED = 242
    NODE_RESTARTED = 243


@dataclass(frozen=True, slots=True)
class PeerEndpoint:
    """A peer the manager should be connected to: key plus published address."""

    key: PeerKey
    address: PeerAddress
