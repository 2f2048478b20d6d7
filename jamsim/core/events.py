"""Events a driver feeds into :class:`~jamsim.core.manager.ConnectionManager`.

Every event is a value: treat it as immutable. The classes are slotted but not
``frozen``: a frozen dataclass's ``__init__`` goes through ``object.__setattr__``
per field and measured 1.7 us against 0.3 us here, and a 1023-validator
simulation builds several million events and actions (see benchmarks/bench_core.py).
The ones built per connection also write their ``__init__`` out (``init=False``):
under the mypyc build (scripts/build_native.py) a dataclass-generated ``__init__``
stays an interpreted function, 8x slower than the compiled one. Those written-out
``__init__`` methods (here, in actions.py and for the per-connection state in
connection.py) repeat one shape, field by field, and a clone detector lists them:
the repetition is deliberate, and folding it into a shared helper would put the
interpreted path back (docs/architecture.md, "The compiled engine").

Time is not part of the event: it is passed alongside it
(``manager.handle(event, now)``), exactly as aioquic takes ``now`` in
``receive_datagram``. A driver reports what its transport *observed*; deciding what
to do about it is the manager's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from jamsim.core.errors import UsageError
from jamsim.core.types import ConnectionId, PeerEndpoint, PeerKey, Side
from jamsim.identity import PeerAddress

__all__ = [
    "ConnectionEstablished",
    "ConnectionLost",
    "DialFailed",
    "DialPathCut",
    "Event",
    "InboundConnecting",
    "InboundFailed",
    "InboundHandshake",
    "PeerMisbehaved",
    "PeerSilence",
    "ReceiveDrops",
    "Shutdown",
    "ValidatorSetChanged",
]


@dataclass(slots=True)
class ValidatorSetChanged:
    """The previous, current and next epoch's validator sets (the Init task's input).

    The manager keeps a connection to every key in the union (minus itself), closes
    connections to validators that dropped out, and dials newcomers per policy.
    Peers are given with their published addresses so dials know where to go.
    """

    previous: tuple[PeerEndpoint, ...] = ()
    current: tuple[PeerEndpoint, ...] = ()
    next: tuple[PeerEndpoint, ...] = ()


@dataclass(slots=True, init=False)
class ConnectionEstablished:
    """An outbound dial completed its QUIC/TLS handshake with the expected key.

    ``answer_rtt``: how long the peer took to answer, as the transport measured
    it (QUIC's first RTT sample: from sending the packet that was acknowledged to
    the acknowledgement, so loss recovery and a partition the dial waited through
    do not count); ``None`` if not measured. Far above any path's RTT it means the
    peer, or this node, queued the handshake: ``policy.adaptive_dials`` treats it
    as overload.
    """

    conn_id: ConnectionId
    peer: PeerKey
    answer_rtt: float | None = None

    def __init__(self, conn_id: ConnectionId, peer: PeerKey,
                 answer_rtt: float | None = None) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.answer_rtt = answer_rtt


@dataclass(slots=True, init=False)
class DialFailed:
    """An outbound dial did not complete (timeout, refused, TLS failure...).

    ``stalled``: the dial reached its connect timeout *after* the peer had
    answered (some packet came back): a handshake under way that could not
    finish in time, the sign of an overloaded host (``policy.adaptive_dials``
    shrinks the dial limit on it). False for every other failure, above all a
    timeout with no answer at all (unreachable peer, partition), which must not
    throttle dialling.
    """

    conn_id: ConnectionId
    reason: str
    stalled: bool = False

    def __init__(self, conn_id: ConnectionId, reason: str, stalled: bool = False) -> None:
        self.conn_id = conn_id
        self.reason = reason
        self.stalled = stalled


@dataclass(slots=True, init=False)
class InboundConnecting:
    """A new inbound transport connection started (before the peer is known).

    The driver allocates ``conn_id`` with ``manager.allocate_connection_id()``.
    Optional: it only feeds telemetry (JIP-3 "connecting in").
    """

    conn_id: ConnectionId
    address: PeerAddress | None = None

    def __init__(self, conn_id: ConnectionId, address: PeerAddress | None = None) -> None:
        self.conn_id = conn_id
        self.address = address


@dataclass(slots=True, init=False)
class InboundHandshake:
    """An inbound connection completed TLS with a verified certificate for ``peer``.

    The manager answers with ``AcceptInbound`` or ``CloseConnection``.
    """

    conn_id: ConnectionId
    peer: PeerKey
    address: PeerAddress | None = None
    builder: bool = False

    def __init__(
        self,
        conn_id: ConnectionId,
        peer: PeerKey,
        address: PeerAddress | None = None,
        builder: bool = False,
    ) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.address = address
        self.builder = builder


@dataclass(slots=True, init=False)
class InboundFailed:
    """An inbound connection failed before its handshake completed."""

    conn_id: ConnectionId
    reason: str

    def __init__(self, conn_id: ConnectionId, reason: str) -> None:
        self.conn_id = conn_id
        self.reason = reason


@dataclass(slots=True, init=False)
class DialPathCut:
    """Outbound dial ``conn_id`` has had no path to its peer since it started.

    For simulators only, which know what a real node cannot: every packet the dial
    sent was dropped (partition, crashed peer) and stays dropped until the
    topology changes. Instead of reporting each timed-out attempt and waiting for
    each retry timer, the simulator reports this once, when the path opens (or
    when the manager must be up to date), with ``now`` = that instant. The manager
    then applies every attempt that began and timed out before ``now``, each at its
    own time: the same counters, backoff draws, give-up decisions, statuses and
    telemetry (stamped with each attempt's time) as handling each ``DialFailed``
    and retry timer in turn. A dial still within its connect timeout at ``now`` is
    asked for again as a :class:`~jamsim.core.actions.Dial` with ``started_at``.

    Not supported with ``policy.serial_dials`` or ``max_parallel_dials``: there
    one dial waits for others, so attempts to different peers are not
    independent. An adaptive limit (``policy.adaptive_dials``) is open until a
    dial stalls, which the ``model`` fidelity never reports; should it be engaged
    all the same, only the dial's first timeout is applied and its retries queue
    for a slot like any other dial.
    """

    conn_id: ConnectionId

    def __init__(self, conn_id: ConnectionId) -> None:
        self.conn_id = conn_id


@dataclass(slots=True, init=False)
class ConnectionLost:
    """A live connection (either direction) ended: closed by ``side`` or timed out."""

    conn_id: ConnectionId
    reason: str
    side: Side | None = Side.REMOTE

    def __init__(self, conn_id: ConnectionId, reason: str, side: Side | None = Side.REMOTE) -> None:
        self.conn_id = conn_id
        self.reason = reason
        self.side = side


@dataclass(slots=True, init=False)
class PeerSilence:
    """Since when the peer of live connection ``conn_id`` has not been heard from
    (``None``: it answers), as the transport sees it now.

    A driver reports it just before a handshake that may duplicate that
    connection, so the duplicate rule can prefer the connection whose peer proved
    liveness most recently: a restarted peer's new connection must not be refused
    in favour of the dead one it replaces.
    """

    conn_id: ConnectionId
    since: float | None

    def __init__(self, conn_id: ConnectionId, since: float | None) -> None:
        self.conn_id = conn_id
        self.since = since


@dataclass(slots=True, init=False)
class ReceiveDrops:
    """The node's own socket dropped ``dropped`` datagrams since the last report
    because its receive buffer was full: the node cannot keep up with what
    arrives.

    A real node's driver measures it (Linux: the socket's ``drops`` counter);
    a simulator without a CPU model never reports it. ``policy.adaptive_dials``
    reads it as overload: on a crowded host the dropped datagrams are the
    handshakes themselves, so dials time out with no answer at all, which on
    its own must not throttle (it is also what a partition looks like). A
    partition fills no receive buffer.
    """

    dropped: int

    def __init__(self, dropped: int) -> None:
        if dropped < 0:
            raise UsageError(f"ReceiveDrops.dropped counts datagrams, got {dropped}")
        self.dropped = dropped


@dataclass(slots=True)
class PeerMisbehaved:
    """The peer sent bad data on ``conn_id`` (malformed frame, oversize message...).

    Reported for telemetry and accounting; the stream was already reset by whoever
    noticed. The connection stays up unless the driver also reports it lost.
    """

    conn_id: ConnectionId
    reason: str


@dataclass(slots=True)
class Shutdown:
    """Close everything and stop dialling (the node is stopping)."""


Event = (
    ValidatorSetChanged
    | ConnectionEstablished
    | DialFailed
    | DialPathCut
    | InboundConnecting
    | InboundHandshake
    | InboundFailed
    | ConnectionLost
    | PeerMisbehaved
    | Shutdown
    | PeerSilence
    | ReceiveDrops
)
