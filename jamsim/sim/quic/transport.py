"""The ``quic`` fidelity: real aioquic connections driven sans-IO in SimPy virtual time.

A :class:`QuicTransport` is one QUIC connection between a dialer (end ``a``) and an
acceptor (end ``b``), implementing the driver's
:class:`jamsim.sim.fidelity.Transport` protocol like the model's
:class:`jamsim.sim.model.transport.ModelTransport`. Unlike the model,
nothing about QUIC is abstracted: each end is a real :class:`JamQuicConnection`
(TLS 1.3 with the validator's Ed25519 certificate, mutual authentication, the
JAMNP-S alt-name / ALPN / allowed-key checks of :class:`PeerVerifier`, RFC 9002 loss
recovery, idle timeout, CONNECTION_CLOSE) wrapped in the asyncio node's own
:class:`jamsim.net.connection.JamConnection`, which also runs the real UP 0 handshake
stream once a connection is live. Every datagram aioquic emits is one
``Network.send`` (so loss, latency, bandwidth, partitions, crash and pause apply to
it) and is handed to the other end's ``receive_datagram`` on arrival.

Time: aioquic is given ``now=`` = SimPy virtual time. An end arms a wake-up at
``max(get_timer(), now + 1 µs)`` (the floor avoids zero-time loops when aioquic
reports a timer that is already due) whenever that is earlier than its pending
one; a wake-up that finds the timer moved later re-arms itself and a superseded
one does nothing, so there is no cancellation bookkeeping.

Memory: :mod:`jamsim.sim.quic.trimmed_connection` explains what each connection keeps;
datagrams in flight and pending wake-ups are small slotted callables here.

Decisions mirror the asyncio node (jamsim/net/node.py) so that this fidelity is a
faithful stand-in for it: a dial times out after ``Dial.timeout`` and is closed with
"connect timeout"; the acceptor has no handshake deadline of its own (aioquic's idle
timer ends an abandoned handshake); each node process has one keep-alive tick every
``min(keep_alive_interval, idle_timeout / 3)``, at which it PINGs the verified
connections it dialled and, on those it accepted, only when the peer has been silent
for 1.5 intervals (the rule all runtimes share, :mod:`jamsim.core.keepalive`; each
end records when a datagram last reached it, as the node does); the
manager's CloseConnection closes the QUIC connection with application error 0 and
is not reported back.

Deliberate differences from the node, all because the simulation delivers datagrams
to a connection object rather than to a socket:

* no connection-id routing: a datagram goes straight to its connection's other end;
  a datagram for an end whose process has crashed or restarted is dropped (the real
  node drops non-Initial packets for unknown connection ids the same way; no
  stateless reset is sent, as aioquic does not implement them);
* on resume after a pause, an end whose aioquic timer fell due while the process was
  stopped handles that timer before the queued datagrams (an idle timeout that
  expired during a long pause fires, as with the model);
* idle-timeout losses are reported with ``side=None`` (the model's convention), a
  peer's CONNECTION_CLOSE with ``Side.REMOTE``.
"""

from __future__ import annotations

import collections
import functools
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import pull_quic_header

from jamsim.core.events import (
    ConnectionEstablished,
    ConnectionLost,
    DialFailed,
    Event,
    InboundConnecting,
    InboundFailed,
    InboundHandshake,
    PeerMisbehaved,
)
from jamsim.core.keepalive import keepalive_interval, pings
from jamsim.core.types import Side
from jamsim.identity import PeerAddress, ValidatorIdentity, parse_alpn
from jamsim.net.connection import ConnOutcome, ConnState, JamConnection
from jamsim.protocol.messages import Announcement, Block, BlockRequest, Final, Handshake
from jamsim.quic.certificates import NodeCertificate, certificate_for
from jamsim.quic.config import make_configuration
from jamsim.quic.tls_workaround import JamQuicConnection
from jamsim.quic.verify import PeerVerifier
from jamsim.sim.quic.keyring import IdentityResolver
from jamsim.sim.quic.trimmed_connection import SimQuicConnection

if TYPE_CHECKING:
    from jamsim.sim.quic.slot_traffic import QuicSlotTraffic
    from jamsim.sim.simulation import SimNode, Simulation

__all__ = ["SIM_GENESIS", "QuicFabric", "QuicTransport"]

SIM_GENESIS = hashlib.blake2b(b"jamsim-sim-genesis", digest_size=32).digest()
"""Genesis header hash of simulated networks (it only shapes the ALPN string)."""

TIMER_FLOOR = 1e-6
"""Minimum delay of a QUIC timer wake-up (avoids zero-time loops)."""

HOST_CID_LENGTH = 8
CLOSE_NORMAL = 0
MAX_MESSAGE_SIZE = 1 << 20
IDLE_REASON = "idle timeout"


def _no_blocks(_request: BlockRequest) -> Sequence[Block] | None:
    return None


def _ignore_announcement(_peer: bytes, _announcement: Announcement) -> None:
    return None


def _observe(_event: quic_events.QuicEvent, _conn: JamConnection) -> None:
    return None


class QuicFabric:
    """State shared by all QUIC transports of one simulation.

    Certificates and aioquic configurations are built once per validator key and
    shared by all that node's connections (they are read-only to aioquic); the
    verifier's allowed keys follow the simulation's epoch sets. Also runs one
    keep-alive timer per node process and keeps counters tests and benchmarks read.
    """

    def __init__(self, sim: Simulation, identities: IdentityResolver,
                 genesis_hash: bytes = SIM_GENESIS) -> None:
        self.sim = sim
        self.identities = identities
        self.genesis_hash = genesis_hash
        self.handshake_message = Handshake(Final(genesis_hash, 0), ())
        self.verifier = PeerVerifier(genesis_hash)
        self._verifier_sets: object = None
        self._configs: dict[tuple[bytes, bool], QuicConfiguration] = {}
        self._keepalive_gen: dict[int, int] = {}
        self.keepalive = keepalive_interval(sim.policy.idle_timeout,
                                            sim.policy.keep_alive_interval)
        self.rejections: collections.Counter[str] = collections.Counter()
        self.terminations: collections.Counter[str] = collections.Counter()
        self.datagrams = 0
        self.datagram_bytes = 0
        self.up0_handshakes = 0
        self.connection_class: type[JamQuicConnection] = SimQuicConnection
        """aioquic connection class of new connections; tests swap in the stock one
        to check the memory trims leave behaviour unchanged."""
        self.traffic: QuicSlotTraffic | None = None
        """The run's slot traffic (:mod:`jamsim.sim.quic.slot_traffic`): serves CE 128 from
        each node's blocks and hears its announcements and assurances."""

    def certificate(self, key: bytes) -> NodeCertificate:
        identity: ValidatorIdentity = self.identities(key)
        return certificate_for(identity)

    def configuration(self, key: bytes, is_client: bool) -> QuicConfiguration:
        config = self._configs.get((key, is_client))
        if config is None:
            config = make_configuration(self.certificate(key), self.genesis_hash,
                                        is_client=is_client,
                                        idle_timeout=self.sim.policy.idle_timeout)
            self._configs[(key, is_client)] = config
        return config

    def current_verifier(self) -> PeerVerifier:
        """The verifier, its allowed keys = previous, current and next epoch sets."""
        sets = self.sim._sets
        if sets is not self._verifier_sets:
            self._verifier_sets = sets
            self.verifier.set_allowed(e.key for group in sets for e in group)
        return self.verifier

    def prepare(self, keys: Sequence[bytes]) -> None:
        """Build every node's certificate and configurations up front (fail early)."""
        for key in keys:
            self.configuration(key, True)
            self.configuration(key, False)

    def handshake(self) -> Handshake:
        return self.handshake_message

    # ---------------------------------------------------------------- keep-alive

    def ensure_keepalive(self, node: SimNode) -> None:
        """Start ``node``'s keep-alive loop for its current process, once."""
        if self.keepalive is None or self._keepalive_gen.get(node.index) == node.generation:
            return
        self._keepalive_gen[node.index] = node.generation
        self._arm_keepalive(node, node.generation)

    def _arm_keepalive(self, node: SimNode, gen: int) -> None:
        assert self.keepalive is not None
        self.sim.call_for(node.index, gen, self.keepalive,
                          functools.partial(self._keepalive_tick, node, gen))

    def _keepalive_tick(self, node: SimNode, gen: int) -> None:
        interval = self.keepalive
        assert interval is not None
        for transport in list(node.ends.values()):
            if isinstance(transport, QuicTransport):
                transport.ping(node, interval)
        self._arm_keepalive(node, gen)


class _Arrival:
    """A datagram in flight to one end (a slotted stand-in for a ``functools.partial``:
    every datagram of the run holds one until it arrives)."""

    __slots__ = ("data", "to_client", "transport")

    def __init__(self, transport: QuicTransport, to_client: bool, data: bytes) -> None:
        self.transport = transport
        self.to_client = to_client
        self.data = data

    def __call__(self) -> None:
        self.transport._arrive(self.to_client, self.data)


class _Wake:
    """A pending QUIC timer wake-up of one end (see ``QuicTransport._arm_timer``)."""

    __slots__ = ("at", "end", "transport")

    def __init__(self, transport: QuicTransport, end: _End, at: float) -> None:
        self.transport = transport
        self.end = end
        self.at = at

    def __call__(self) -> None:
        self.transport._wake(self.end, self.at)


class _End:
    """One side of a QuicTransport: a node process and its QUIC connection."""

    __slots__ = ("cid", "client", "conn", "gen", "index", "live", "timer_at", "up0")

    def __init__(self, index: int, gen: int, cid: int, client: bool) -> None:
        self.index = index
        self.gen = gen
        self.cid = cid
        self.client = client
        self.conn: JamConnection | None = None
        self.live = False
        self.timer_at: float | None = None
        self.up0 = False


class QuicTransport:
    """One real QUIC connection between node ``a`` (dialer) and node ``b``."""

    __slots__ = ("a", "b", "client", "fabric", "server", "server_started", "sim", "tid")

    def __init__(self, sim: Simulation, tid: int, a: SimNode, cid: int, b: SimNode,
                 timeout: float) -> None:
        fabric = sim.quic
        assert fabric is not None, "QuicTransport needs a quic-fidelity Simulation"
        self.sim = sim
        self.fabric = fabric
        self.tid = tid
        self.a = a.index
        self.b = b.index
        self.client = _End(a.index, a.generation, cid, True)
        self.server = _End(b.index, -1, -1, False)
        self.server_started = False
        self._start_client(a, b, timeout)

    # ---------------------------------------------------------------- helpers

    def _node(self, end: _End) -> SimNode | None:
        """The end's node if it is still the same process (not crashed/restarted)."""
        node = self.sim.nodes[end.index]
        if node.generation != end.gen or not node.alive:
            return None
        return node

    def _other(self, end: _End) -> _End:
        return self.server if end.client else self.client

    def _live_ends(self) -> int:
        return int(self.client.live) + int(self.server.live)

    def _set_live(self, end: _End, value: bool) -> None:
        if end.live == value:
            return
        old = self._live_ends()
        end.live = value
        self.sim.links.change(self.a, self.b, old, self._live_ends())

    def _feed(self, end: _End, event: Event) -> None:
        node = self._node(end)
        if node is not None:
            self.sim.feed(node, event)

    def _forget(self, end: _End) -> None:
        """Detach ``end`` from its node's manager (its connection may linger closing)."""
        self._set_live(end, False)
        node = self._node(end)
        if node is not None and node.ends.get(end.cid) is self:
            del node.ends[end.cid]

    def _drop(self, end: _End) -> None:
        """The end's QUIC state is gone for good."""
        self._forget(end)
        end.conn = None
        end.timer_at = None
        if self.client.conn is None and (self.server.conn is None or not self.server_started):
            self.sim.forget_transport(self)

    def _address(self, index: int) -> tuple[str, int]:
        address = self.sim.nodes[index].address
        return (address.host, address.port)

    def _make_conn(self, end: _End, quic: JamQuicConnection, peer: PeerAddress) -> JamConnection:
        traffic = self.fabric.traffic
        if traffic is None:
            return JamConnection(
                quic, end.cid, peer, outbound=end.client,
                verifier=self.fabric.current_verifier(),
                handshake=self.fabric.handshake,
                block_source=_no_blocks,
                on_announcement=_ignore_announcement,
                max_message_size=MAX_MESSAGE_SIZE,
            )
        return JamConnection(
            quic, end.cid, peer, outbound=end.client,
            verifier=self.fabric.current_verifier(),
            handshake=self.fabric.handshake,
            block_source=traffic.block_source(end.index),
            on_announcement=traffic.on_announcement(end.index),
            max_message_size=MAX_MESSAGE_SIZE,
            on_assurance=traffic.on_assurance(end.index),
            core_count=traffic.core_count,
            extra_kinds=traffic.extra_kinds,
            on_extra=traffic.on_extra(end.index),
        )

    # ---------------------------------------------------------------- set-up

    def _start_client(self, a: SimNode, b: SimNode, timeout: float) -> None:
        config = self.fabric.configuration(a.key, True)
        quic = self.fabric.connection_class(configuration=config)
        self.client.conn = self._make_conn(self.client, quic, b.address)
        self.fabric.ensure_keepalive(a)
        self.sim.call_for(a.index, a.generation, timeout, self._dial_timeout)

    def start(self) -> None:
        conn = self.client.conn
        assert conn is not None
        conn.quic.connect(self._address(self.b), now=self.sim.env.now)
        self._transmit(self.client)

    def _start_server(self, node: SimNode, data: bytes) -> bool:
        """First datagram at the acceptor: a new inbound QUIC connection."""
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=HOST_CID_LENGTH)
        except ValueError:
            return False
        manager = node.manager
        assert manager is not None
        config = self.fabric.configuration(node.key, False)
        quic = self.fabric.connection_class(
            configuration=config, original_destination_connection_id=header.destination_cid)
        end = self.server
        end.gen = node.generation
        end.cid = manager.allocate_connection_id()
        end.conn = self._make_conn(end, quic, self.sim.nodes[self.a].address)
        self.server_started = True
        node.ends[end.cid] = self
        self.fabric.ensure_keepalive(node)
        self.sim.feed(node, InboundConnecting(end.cid, self.sim.nodes[self.a].address))
        return True

    # ---------------------------------------------------------------- datagrams

    def _transmit(self, end: _End) -> None:
        """Send what aioquic queued on ``end`` and re-arm its timer."""
        conn = end.conn
        if conn is None:
            return
        sim = self.sim
        now = sim.env.now
        network = sim.network
        src, dst = (self.a, self.b) if end.client else (self.b, self.a)
        deliver_to_client = not end.client
        fabric = self.fabric
        for data, _addr in conn.quic.datagrams_to_send(now=now):
            fabric.datagrams += 1
            fabric.datagram_bytes += len(data)
            network.send(src, dst, _Arrival(self, deliver_to_client, data), size=len(data))
        self._arm_timer(end)

    def _arm_timer(self, end: _End) -> None:
        conn = end.conn
        if conn is None:
            return
        deadline = conn.quic.get_timer()
        if deadline is None:
            return
        now = self.sim.env.now
        at = max(deadline, now + TIMER_FLOOR)
        if end.timer_at is not None and end.timer_at <= at:
            return  # an earlier wake-up is pending; it re-arms if needed
        end.timer_at = at
        self.sim.call_for(end.index, end.gen, at - now, _Wake(self, end, at))

    def _wake(self, end: _End, at: float) -> None:
        if end.timer_at != at or end.conn is None:
            return
        end.timer_at = None
        self._fire_timer(end)

    def _fire_timer(self, end: _End) -> None:
        conn = end.conn
        assert conn is not None
        now = self.sim.env.now
        deadline = conn.quic.get_timer()
        if deadline is not None and deadline <= now:
            conn.quic.handle_timer(now=now)
            self._process(end, from_timer=True)
        else:
            self._arm_timer(end)

    def _arrive(self, to_client: bool, data: bytes) -> None:
        end = self.client if to_client else self.server
        if end.client or self.server_started:
            if end.conn is None or self._node(end) is None:
                return  # that process is gone: nobody owns this connection id any more
        else:
            node = self.sim.nodes[self.b]
            client = self.client.conn
            if not node.alive or node.manager is None or client is None or \
                    client.closed_by_us:
                return  # the dialer already gave up: its CONNECTION_CLOSE starts nothing
            if not self._start_server(node, data):
                return
            if end.conn is None:  # the manager refused it synchronously
                return
        conn = end.conn
        assert conn is not None
        peer = self._address(self.b if to_client else self.a)
        now = self.sim.env.now
        conn.heard_at = now  # what the keep-alive rule reads, as the node sets it
        conn.quic.receive_datagram(data, peer, now=now)
        self._process(end, from_timer=False)

    # ---------------------------------------------------------------- aioquic events

    def _process(self, end: _End, *, from_timer: bool) -> None:
        """Turn aioquic events into manager events (as Node._process does)."""
        conn = end.conn
        assert conn is not None
        was_closed = conn.state is ConnState.CLOSED
        outcome = conn.handle_events_with(_observe)
        node = self._node(end)
        if outcome.verified is not None and node is not None:
            self._verified(end, node, conn, outcome.verified)
        if outcome.rejected is not None:
            self.fabric.rejections[outcome.rejected.reason.label] += 1
            self._forget(end)
            reason = str(outcome.rejected)
            self._feed(end, DialFailed(end.cid, reason) if end.client
                       else InboundFailed(end.cid, reason))
        for reason in outcome.misbehaved:
            self._feed(end, PeerMisbehaved(end.cid, reason))
        if end.conn is None:
            return
        self._count_up0(end, conn)
        self._transmit(end)
        if outcome.terminated is not None and not was_closed:
            self._terminated(end, conn, outcome, from_timer)

    def _verified(self, end: _End, node: SimNode, conn: JamConnection, key: bytes) -> None:
        manager = node.manager
        assert manager is not None
        if end.client:
            self._set_live(end, True)  # the manager's CloseConnection undoes this
            self.sim.feed(node, ConnectionEstablished(end.cid, key))
            if end.conn is not None and manager.live_connection(key) == end.cid:
                conn.live = True
                conn.open_up0()
        else:
            alpn = conn.quic.tls.alpn_negotiated
            builder = parse_alpn(alpn)[1] if alpn is not None else False
            self.sim.feed(node, InboundHandshake(end.cid, key, conn.address, builder))
        quic = conn.quic
        if isinstance(quic, SimQuicConnection):
            quic.release_tls()  # JamConnection has read the peer certificate and ALPN

    def _count_up0(self, end: _End, conn: JamConnection) -> None:
        if not end.up0 and conn.peer_handshake is not None:
            end.up0 = True
            self.fabric.up0_handshakes += 1

    def _terminated(self, end: _End, conn: JamConnection, outcome: ConnOutcome,
                    from_timer: bool) -> None:
        reason = outcome.terminated or "closed"
        idle = from_timer and reason == "Idle timeout" and not conn.closed_by_us
        if idle:
            reason = IDLE_REASON
        self.fabric.terminations[reason] += 1
        attached = self._node(end) is not None and \
            self.sim.nodes[end.index].ends.get(end.cid) is self
        self._drop(end)
        if not attached or conn.closed_by_us:
            return  # closed by the manager, a dial timeout or a rejection: reported
        event: Event
        if conn.peer_key is None:
            event = DialFailed(end.cid, reason) if end.client else InboundFailed(end.cid, reason)
        else:
            event = ConnectionLost(end.cid, reason, None if idle else Side.REMOTE)
        self._feed(end, event)

    # ---------------------------------------------------------------- timers

    def _dial_timeout(self) -> None:
        end = self.client
        conn = end.conn
        if conn is None or conn.peer_key is not None or conn.closed_by_us:
            return
        node = self._node(end)
        if node is None or node.ends.get(end.cid) is not self:
            return
        conn.close(CLOSE_NORMAL, "connect timeout")
        self._transmit(end)
        self._forget(end)
        self.sim.feed(node, DialFailed(end.cid, "timeout"))

    def ping(self, node: SimNode, interval: float) -> None:
        """Keep-alive tick of ``node``: PING on its end if the connection is verified
        and the shared rule says this end PINGs (:func:`jamsim.core.keepalive.pings`:
        the dialler always, the acceptor once the dialler has been silent for 1.5
        intervals)."""
        end = self.client if node.index == self.a else self.server
        conn = end.conn
        if conn is None or end.gen != node.generation or conn.state is not ConnState.VERIFIED:
            return
        if not pings(end.client, self.sim.env.now, conn.heard_at, interval):
            return
        conn.quic.send_ping(0)
        self._transmit(end)

    # ---------------------------------------------------------------- manager actions

    def accept(self) -> None:
        """The acceptor's manager kept this inbound connection."""
        end = self.server
        if end.conn is not None and end.conn.state is ConnState.VERIFIED:
            end.conn.live = True
            self._set_live(end, True)

    def close(self, node: SimNode, reason: str) -> None:
        """``node``'s manager closed its end: CONNECTION_CLOSE, not reported back."""
        end = self.client if node.index == self.a and node.generation == self.client.gen \
            else self.server
        conn = end.conn
        self._forget(end)
        if conn is None:
            return
        conn.close(CLOSE_NORMAL, reason)
        self._transmit(end)

    # ---------------------------------------------------------------- faults

    def node_died(self, client: bool) -> None:
        """This end's process crashed: its QUIC state vanishes without a packet."""
        end = self.client if client else self.server
        self._set_live(end, False)
        end.conn = None
        end.timer_at = None
        self._drop(end)

    def paused_too_long(self, client: bool, paused_for: float) -> bool:
        """On resume: did this end's aioquic timer fall due while the process slept?"""
        end = self.client if client else self.server
        conn = end.conn
        if conn is None or paused_for <= 0:
            return False
        deadline = conn.quic.get_timer()
        return deadline is not None and deadline <= self.sim.env.now

    def expire(self, client: bool) -> None:
        """Handle the overdue timer now, before the datagrams queued during the pause."""
        end = self.client if client else self.server
        if end.conn is not None:
            end.timer_at = None
            self._fire_timer(end)

    def reassess(self) -> None:
        """Topology changed: nothing to do, aioquic's own timers notice everything."""
        return None
