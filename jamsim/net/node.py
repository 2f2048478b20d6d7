"""The asyncio JAMNP-S node: a thin driver around the sans-IO ConnectionManager.

One UDP socket serves both listening and dialling; datagrams are routed to
QuicConnection objects by destination connection id. All decisions (whom to dial,
which of two simultaneous connections wins, retries) are the manager's; this module
only performs its actions on real sockets and reports what happened, and verifies
peers with :mod:`jamsim.quic.verify`. One ``loop.call_at`` timer follows
``manager.next_deadline()`` and one per QUIC connection follows ``get_timer()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic import events
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from aioquic.tls import State as TlsState

from jamsim.core.actions import AcceptInbound, CloseConnection, Dial, EmitTelemetry
from jamsim.core.events import (
    ConnectionEstablished,
    ConnectionLost,
    DialFailed,
    InboundConnecting,
    InboundFailed,
    InboundHandshake,
    PeerMisbehaved,
    ReceiveDrops,
    Shutdown,
    ValidatorSetChanged,
)
from jamsim.core.keepalive import keepalive_interval, pings
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import PeerEndpoint, Side
from jamsim.identity import PeerAddress, ValidatorIdentity, ValidatorSet, parse_alpn
from jamsim.net.connection import BlockSource, JamConnection
from jamsim.net.socket_drops import ReceiveDropCounter
from jamsim.net.status import STATUS_INTERVAL, StatusReporter, peer_status
from jamsim.protocol.limits import CE_REQUEST_TIMEOUT, MAX_BLOCK_SIZE
from jamsim.protocol.messages import (
    FULL_CORE_COUNT,
    Announcement,
    Assurance,
    Block,
    BlockRequest,
    Final,
    Handshake,
)
from jamsim.protocol.stream_protocols import CE128Client
from jamsim.quic import tls_workaround
from jamsim.quic.certificates import certificate_for
from jamsim.quic.config import make_configuration
from jamsim.quic.tls_workaround import JamQuicConnection
from jamsim.quic.verify import PeerVerifier, refusal_code

log = logging.getLogger(__name__)

Addr = tuple[str, int]
#: Hook on the datagram path: ``filter(direction, data, addr)`` returns the datagram
#: to pass on or None to drop it ("in" before QUIC sees it, "out" before the socket).
DatagramFilter = Callable[[str, bytes, Addr], bytes | None]

_HOST_CID_LENGTH = 8
_CLOSE_NORMAL = 0
_UNANSWERED = (TlsState.CLIENT_HANDSHAKE_START, TlsState.CLIENT_EXPECT_SERVER_HELLO)
DROP_WATCH_INTERVAL = 1.0
"""Seconds between two reads of the socket's receive-buffer drops: a fifth of
the preset's connect timeout, so the adaptive dial limit hears of an overloaded
host well within the timeout of the dials it sent, for one read of a /proc
table (about a hundred lines on a 128-node host) per second."""


def _no_blocks(_request: BlockRequest) -> Sequence[Block] | None:
    return None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, node: Node) -> None:
        self.node = node

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.node._datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class Node:
    """A JAMNP-S validator node on loopback UDP (asyncio, aioquic).

    ``impairment`` is a :class:`jamsim.net.impairment.DatagramImpairment` plugged
    into the socket; ``datagram_filter`` is a simpler synchronous hook (drop or
    rewrite one datagram). ``quic_overrides`` edits the client configuration of
    outgoing connections (tests acting as a misbehaving peer).
    """

    def __init__(
        self,
        identity: ValidatorIdentity,
        validator_set: ValidatorSet,
        genesis_hash: bytes,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        policy: ConnectionPolicy | None = None,
        telemetry: Any | None = None,
        impairment: Any | None = None,
        datagram_filter: DatagramFilter | None = None,
        allow_non_validators: bool | None = None,
        block_source: BlockSource = _no_blocks,
        max_message_size: int | None = None,
        request_timeout: float = CE_REQUEST_TIMEOUT,
        rng_seed: int = 0,
        quic_overrides: Callable[[Any], None] | None = None,
        core_count: int = FULL_CORE_COUNT,
        extra_kinds: Mapping[int, int] | None = None,
    ) -> None:
        self.identity = identity
        self.key = identity.public_key
        self.validator_set = validator_set
        self.genesis_hash = genesis_hash
        self.host = host
        self.port = port
        self.policy = policy or ConnectionPolicy.preset("jamnp-s")
        self.telemetry = telemetry
        self.impairment = impairment
        self.datagram_filter = datagram_filter
        self.block_source = block_source
        self.max_message_size = max_message_size
        self.request_timeout = request_timeout
        self.quic_overrides = quic_overrides
        self.manager = ConnectionManager(self.key, self.policy, rng_seed=rng_seed)
        if allow_non_validators is None:
            # Keys outside the validator sets take the policy's non-validator
            # (builder) slots; the manager refuses them once the slots are full.
            allow_non_validators = (
                not self.policy.validators_only and self.policy.non_validator_slots > 0
            )
        self.verifier = PeerVerifier(
            genesis_hash,
            frozenset(validator_set.keys()),
            allow_non_validators=allow_non_validators,
        )
        self.internal_errors: Counter[str] = Counter()
        self.cert = certificate_for(identity)
        self.rejections: Counter[str] = Counter()
        self.misbehaviours: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.announcements: list[tuple[bytes, Announcement]] = []
        self.announcement_event = asyncio.Event()
        self.best = Final(genesis_hash, 0)
        self.leaves: tuple[Final, ...] = ()
        self.core_count = core_count
        # Slot traffic (jamsim.net.traffic) listens here; the node itself only counts.
        self.announcement_listeners: list[Callable[[bytes, Announcement], None]] = []
        self.assurance_listeners: list[Callable[[bytes, Assurance], None]] = []
        self.assurances_received = 0
        # Extra CE kinds of the run's traffic config (kind -> largest message); a
        # stream of any other unknown kind is refused as before.
        self.extra_kinds: dict[int, int] = dict(extra_kinds or {})
        self.extra_listeners: list[Callable[[bytes, int, bytes], None]] = []
        self.traffic: Any | None = None  # a jamsim.net.traffic.NodeTraffic, if one drives us
        self._conns: dict[int, JamConnection] = {}
        self._by_cid: dict[bytes, JamConnection] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._manager_timer: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._drop_watch: asyncio.TimerHandle | None = None
        self._drops: ReceiveDropCounter | None = None
        # Connection ids of dropped connections -> until when datagrams to them
        # are stale (in expiry order); how many such datagrams were dropped.
        self._stale: dict[bytes, float] = {}
        self._stale_memory = max(self.policy.connect_timeout, self.policy.idle_timeout or 0.0)
        self.stale_datagrams = 0
        self._status: StatusReporter | None = None
        self.status_interval = STATUS_INTERVAL
        self._changed = asyncio.Event()
        self._stopped = False

    # ================================================================ lifecycle

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.host, self.port)

    async def start(self) -> None:
        """Bind the UDP socket, then feed the validator set (the Init task)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        if self.impairment is not None:
            from jamsim.net.impairment import impair_datagram_endpoint

            impair_datagram_endpoint(transport, protocol, self.impairment)
        if self.telemetry is not None:
            self.telemetry.start()
            if hasattr(self.telemetry, "emit_status"):
                self._status = StatusReporter(self._report_status, self.status_interval)
                self._status.start()
        self.set_validators(self.validator_set)
        self._arm_keepalive()
        self._arm_sweep()
        drops = ReceiveDropCounter(transport.get_extra_info("socket"))
        if drops.available:
            self._drops = drops
            self._arm_drop_watch()

    def set_validators(self, current: ValidatorSet, previous: Sequence[PeerEndpoint] = ()) -> None:
        """Init task step: a new validator set for the manager and the verifier."""
        self.validator_set = current
        endpoints = tuple(PeerEndpoint(v.key, v.address) for v in current)
        keys = {e.key for e in endpoints} | {e.key for e in previous}
        self.verifier.set_allowed(keys)
        self._manager_event(ValidatorSetChanged(previous=tuple(previous), current=endpoints))

    async def stop(self) -> None:
        """Graceful shutdown: tell the manager, close every connection, release all."""
        if self._stopped:
            return
        self._stopped = True
        self._manager_event(Shutdown())
        if self._status is not None:
            self._status.stop()
        for conn in list(self._conns.values()):
            conn.close(_CLOSE_NORMAL, "shutdown")
            self._transmit(conn)
        for handle in (self._manager_timer, self._keepalive, self._sweep, self._drop_watch):
            if handle is not None:
                handle.cancel()
        for conn in self._conns.values():
            if conn.timer is not None:
                conn.timer.cancel()
        self._conns.clear()
        self._by_cid.clear()
        if self.telemetry is not None:
            with contextlib.suppress(Exception):
                await self.telemetry.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ================================================================== queries

    def status(self) -> dict[str, Any]:
        live = sorted(k.hex() for k in self.manager.live_peers())
        return {
            "key": self.key.hex(),
            "host": self.host,
            "port": self.port,
            "connected": live,
            "connected_count": len(live),
            "quic_connections": len(self._conns),
            "dial_limit": self.manager.dial_limit,
            "receive_drops": self._drops.total if self._drops is not None else 0,
            "stale_datagrams": self.stale_datagrams,
            "rejections": dict(self.rejections),
            "misbehaviours": dict(self.misbehaviours),
            "internal_errors": dict(self.internal_errors),
            "lost": dict(self.lost),
            **({"traffic": self.traffic.status()} if self.traffic is not None else {}),
        }

    def _report_status(self) -> None:
        """Send the JIP-3 status event (10) with this moment's peer counts."""
        telemetry = self.telemetry
        if telemetry is None:
            return
        live = self.connected_peers()
        up0 = [p for p in live if (c := self._live_conn(p)) is not None and c.up0 is not None]
        cores = telemetry.node_info.params.core_count
        status = peer_status(live, self.verifier.allowed_keys, up0, cores)
        telemetry.emit_status(status, self.manager.allocate_event_id())

    def connected_peers(self) -> set[bytes]:
        return {k for k in self.manager.live_peers() if self._live_conn(k) is not None}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (bounded) until ``predicate()`` holds; re-checked on every change."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # ============================================================ application

    def _live_conn(self, peer: bytes) -> JamConnection | None:
        cid = self.manager.live_connection(peer)
        conn = self._conns.get(cid) if cid is not None else None
        return conn if conn is not None and conn.peer_key == peer else None

    async def request_blocks(
        self, peer: bytes, request: BlockRequest, timeout: float = 5.0
    ) -> tuple[Block, ...]:
        """CE 128 on the live connection to ``peer``."""
        conn = self._live_conn(peer)
        if conn is None:
            raise ConnectionError(f"no live connection to {peer.hex()[:16]}")
        cap = self.max_message_size if self.max_message_size is not None else MAX_BLOCK_SIZE
        sid, fut = conn.request_stream(CE128Client(request, max_message_size=cap))
        self._transmit(conn)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            conn.cancel_request(sid)
            self._transmit(conn)
            raise

    def announce(self, announcement: Announcement) -> int:
        """Send ``announcement`` on UP 0 to every live peer; returns how many."""
        self.best = announcement.final
        sent = 0
        for peer in self.manager.live_peers():
            conn = self._live_conn(peer)
            if conn is not None and conn.announce(announcement):
                self._transmit(conn)
                sent += 1
        return sent

    def announce_to(self, peers: Iterable[bytes], announcement: Announcement) -> list[bytes]:
        """Send ``announcement`` on UP 0 to those of ``peers`` with a live stream."""
        sent: list[bytes] = []
        for peer in peers:
            conn = self._live_conn(peer)
            if conn is not None and conn.announce(announcement):
                self._transmit(conn)
                sent.append(peer)
        return sent

    def send_assurance(self, peer: bytes, assurance: Assurance) -> bool:
        """CE 141 to ``peer`` on its live connection; False when there is none."""
        conn = self._live_conn(peer)
        if conn is None:
            return False
        conn.send_assurance(assurance)
        self._transmit(conn)
        return True

    def send_extra(self, peer: bytes, kind: int, payload: bytes) -> bool:
        """An extra CE ``kind`` message to ``peer`` on its live connection; False when
        there is none."""
        conn = self._live_conn(peer)
        if conn is None:
            return False
        conn.send_extra(kind, payload)
        self._transmit(conn)
        return True

    def _on_extra(self, peer: bytes, kind: int, payload: bytes) -> None:
        for listener in self.extra_listeners:
            listener(peer, kind, payload)

    def _handshake(self) -> Handshake:
        return Handshake(self.best, self.leaves)

    def _on_announcement(self, peer: bytes, ann: Announcement) -> None:
        if self.announcement_listeners:
            for listener in self.announcement_listeners:
                listener(peer, ann)
        else:
            self.announcements.append((peer, ann))
        self._changed.set()

    def _on_assurance(self, peer: bytes, assurance: Assurance) -> None:
        self.assurances_received += 1
        for listener in self.assurance_listeners:
            listener(peer, assurance)

    # ================================================================ manager

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _manager_event(self, event: Any) -> None:
        self.manager.handle(event, self._now())
        self._run_actions()

    def _run_actions(self) -> None:
        while (action := self.manager.next_action()) is not None:
            if isinstance(action, Dial):
                self._dial(action)
            elif isinstance(action, AcceptInbound):
                conn = self._conns.get(action.conn_id)
                if conn is not None:
                    conn.live = True
            elif isinstance(action, CloseConnection):
                conn = self._conns.get(action.conn_id)
                if conn is not None:
                    conn.close(refusal_code(action.reason), action.reason)
                    self._transmit(conn)
            elif isinstance(action, EmitTelemetry) and self.telemetry is not None:
                self.telemetry.emit_action(action)
        self._arm_manager_timer()
        self._changed.set()

    def _arm_manager_timer(self) -> None:
        if self._manager_timer is not None:
            self._manager_timer.cancel()
            self._manager_timer = None
        deadline = self.manager.next_deadline()
        if deadline is not None and self._loop is not None and not self._stopped:
            self._manager_timer = self._loop.call_at(deadline, self._on_manager_timer)

    def _on_manager_timer(self) -> None:
        self._manager_timer = None
        self.manager.handle_timer(self._now())
        self._run_actions()

    # =================================================================== dial

    def _new_quic(self, is_client: bool, odcid: bytes | None = None) -> JamQuicConnection:
        config = make_configuration(
            self.cert, self.genesis_hash, is_client=is_client, idle_timeout=self.policy.idle_timeout
        )
        if is_client and self.quic_overrides is not None:
            self.quic_overrides(config)
        return JamQuicConnection(configuration=config, original_destination_connection_id=odcid)

    def _register(self, conn: JamConnection) -> None:
        self._conns[conn.conn_id] = conn
        self._by_cid[conn.quic.host_cid] = conn

    def _dial(self, action: Dial) -> None:
        if self._transport is None:
            self.manager.handle(DialFailed(action.conn_id, "node stopped"), self._now())
            return
        quic = self._new_quic(is_client=True)
        conn = self._make_conn(quic, action.conn_id, action.address, outbound=True)
        self._register(conn)
        quic.connect((action.address.host, action.address.port), now=self._now())
        self._transmit(conn)
        assert self._loop is not None
        self._loop.call_at(self._now() + action.timeout, self._dial_timeout, conn)

    def _dial_timeout(self, conn: JamConnection) -> None:
        if self._conns.get(conn.conn_id) is conn and conn.peer_key is None:
            conn.close(_CLOSE_NORMAL, "connect timeout")
            self._transmit(conn)
            self._forget(conn)
            # Stalled: the peer answered (its ServerHello came back) but the
            # handshake did not finish in time, i.e. overload, not unreachability.
            stalled = conn.quic.tls.state not in _UNANSWERED
            self._manager_event(DialFailed(conn.conn_id, "timeout", stalled))

    def _make_conn(
        self, quic: JamQuicConnection, conn_id: int, address: PeerAddress, *, outbound: bool
    ) -> JamConnection:
        return JamConnection(
            quic,
            conn_id,
            address,
            outbound=outbound,
            verifier=self.verifier,
            handshake=self._handshake,
            block_source=self.block_source,
            on_announcement=self._on_announcement,
            max_message_size=self.max_message_size,
            clock=self._now,
            on_assurance=self._on_assurance,
            core_count=self.core_count,
            extra_kinds=self.extra_kinds,
            on_extra=self._on_extra,
        )

    # ============================================================== datagrams

    def _datagram_received(self, data: bytes, addr: Addr) -> None:
        if self._stopped:
            return
        if self.datagram_filter is not None:
            filtered = self.datagram_filter("in", data, addr)
            if filtered is None:
                return
            data = filtered
        try:
            conn = self._route(data, addr)
        except Exception as exc:  # not yet any connection's: drop the datagram
            self.internal_errors[type(exc).__name__] += 1
            log.error("dropped a datagram from %s:%s after an internal error (%s: %s)",
                      addr[0], addr[1], type(exc).__name__, str(exc)[:200])
            return
        if conn is None:
            return
        now = self._now()
        conn.heard_at = now
        with self._guard(conn):
            conn.quic.receive_datagram(data, addr, now=now)
            self._process(conn)

    def _route(self, data: bytes, addr: Addr) -> JamConnection | None:
        """The connection a datagram belongs to; a new one for a fresh Initial."""
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=_HOST_CID_LENGTH)
        except ValueError:
            return None
        conn = self._by_cid.get(header.destination_cid)
        if conn is None:
            if header.packet_type is not QuicPacketType.INITIAL:
                return None
            if header.destination_cid in self._stale:
                # For a connection we dropped: a retransmitted Initial of a dial
                # we closed, or the answer to a dial we abandoned (a server's
                # Initial to our old id). Either would become a new inbound
                # connection that can only fail, at a connection's set-up cost.
                self.stale_datagrams += 1
                return None
            quic = self._new_quic(is_client=False, odcid=header.destination_cid)
            cid = self.manager.allocate_connection_id()
            conn = self._make_conn(quic, cid, PeerAddress(addr[0], addr[1]), outbound=False)
            self._register(conn)
            self._by_cid[header.destination_cid] = conn
            self.manager.handle(InboundConnecting(cid, conn.address), self._now())
        return conn

    @contextlib.contextmanager
    def _guard(self, conn: JamConnection) -> Iterator[None]:
        """THE RULE: nothing a peer sends may raise out of the datagram path.

        Any exception while handling one connection's input closes that connection
        with INTERNAL_ERROR, is logged once (one line, no traceback: the type and
        message say what went wrong) and counted; every other connection, and the
        node, carry on.
        """
        try:
            yield
        except Exception as exc:  # the boundary this rule is about
            self._internal_error(conn, exc)

    def _internal_error(self, conn: JamConnection, exc: Exception) -> None:
        what = f"{type(exc).__name__}: {exc}"
        self.internal_errors[type(exc).__name__] += 1
        log.error("connection %d to %s closed after an internal error (%s)",
                  conn.conn_id, conn.address, what[:300])
        try:
            conn.close_internal_error(what)
            self._transmit(conn)
        except Exception as again:  # the connection is beyond repair
            log.error("connection %d: closing failed too (%s)", conn.conn_id,
                      type(again).__name__)
        if self._conns.get(conn.conn_id) is not conn:
            return
        self._forget(conn)
        event: Any
        if conn.peer_key is None:
            event = (
                DialFailed(conn.conn_id, "internal error")
                if conn.outbound
                else InboundFailed(conn.conn_id, "internal error")
            )
        else:
            self.lost["internal error"] += 1
            event = ConnectionLost(conn.conn_id, "internal error", Side.LOCAL)
        self._manager_event(event)

    def _process(self, conn: JamConnection) -> None:
        """Turn aioquic events into manager events, then flush and re-arm timers."""
        # Route connection-id changes before the JamConnection consumes events.
        outcome = conn.handle_events_with(self._cid_event)
        if outcome.verified is not None:
            if conn.outbound:
                rtt = tls_workaround.latest_rtt_sample(conn.quic)  # of the first answer
                self.manager.handle(
                    ConnectionEstablished(conn.conn_id, outcome.verified, rtt), self._now()
                )
            else:
                builder = False
                alpn = conn.quic.tls.alpn_negotiated
                if alpn is not None:
                    builder = parse_alpn(alpn)[1]
                self.manager.handle(
                    InboundHandshake(conn.conn_id, outcome.verified, conn.address, builder),
                    self._now(),
                )
            self._run_actions()
            if conn.outbound and self.manager.live_connection(outcome.verified) == conn.conn_id:
                conn.live = True
                conn.open_up0()
        if outcome.rejected is not None:
            reason = outcome.rejected.reason.label
            self.rejections[reason] += 1
            log.warning("rejected peer at %s: %s", conn.address, outcome.rejected)
            event: Any = (
                DialFailed(conn.conn_id, str(outcome.rejected))
                if conn.outbound
                else InboundFailed(conn.conn_id, str(outcome.rejected))
            )
            self.manager.handle(event, self._now())
        for reason in outcome.misbehaved:
            self.misbehaviours[reason] += 1
            log.warning("peer %s misbehaved: %s", conn.address, reason)
            self.manager.handle(PeerMisbehaved(conn.conn_id, reason), self._now())
        self._transmit(conn)
        if outcome.terminated is not None:
            self._terminated(conn, outcome.terminated)
        self._run_actions()

    def _cid_event(self, ev: events.QuicEvent, conn: JamConnection) -> None:
        if isinstance(ev, events.ConnectionIdIssued):
            self._by_cid[ev.connection_id] = conn
        elif (
            isinstance(ev, events.ConnectionIdRetired)
            and self._by_cid.get(ev.connection_id) is conn
        ):
            del self._by_cid[ev.connection_id]

    def _terminated(self, conn: JamConnection, reason: str) -> None:
        if self._conns.get(conn.conn_id) is not conn:
            return
        self._forget(conn)
        if conn.closed_by_us and conn.peer_key is None:
            return  # rejected or timed out: already reported
        if conn.closed_by_us and not conn.live:
            return
        if conn.peer_key is None:
            event: Any = (
                DialFailed(conn.conn_id, reason)
                if conn.outbound
                else InboundFailed(conn.conn_id, reason)
            )
        else:
            self.lost[reason] += 1
            side = Side.LOCAL if conn.closed_by_us else Side.REMOTE
            event = ConnectionLost(conn.conn_id, reason, side)
        self.manager.handle(event, self._now())

    def _forget(self, conn: JamConnection) -> None:
        """Drop a connection; its connection ids stay known as stale for a while
        (:meth:`_route`)."""
        self._conns.pop(conn.conn_id, None)
        until = self._now() + self._stale_memory if self._loop is not None else 0.0
        for cid in [c for c, v in self._by_cid.items() if v is conn]:
            del self._by_cid[cid]
            self._stale.pop(cid, None)  # re-inserted last: the dict stays in expiry order
            self._stale[cid] = until
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def _transmit(self, conn: JamConnection) -> None:
        if self._transport is None:
            return
        try:
            datagrams = conn.quic.datagrams_to_send(now=self._now())
        except IndexError:
            # aioquic: a server connection whose first Initial was unusable (e.g. a
            # stray retransmission for a connection we already dropped) has no network
            # path. Nothing was ever established, so just drop it.
            if self._conns.get(conn.conn_id) is conn:
                self._forget(conn)
                if not conn.outbound:
                    self.manager.handle(InboundFailed(conn.conn_id, "bad initial"), self._now())
            return
        for data, addr in datagrams:
            out: bytes | None = data
            if self.datagram_filter is not None:
                out = self.datagram_filter("out", data, (addr[0], addr[1]))
            if out is not None:
                self._transport.sendto(out, addr)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        deadline = conn.quic.get_timer()
        if deadline is not None and self._loop is not None and conn.conn_id in self._conns:
            conn.timer = self._loop.call_at(deadline, self._on_quic_timer, conn)

    def _on_quic_timer(self, conn: JamConnection) -> None:
        conn.timer = None
        with self._guard(conn):
            conn.quic.handle_timer(now=self._now())
            self._process(conn)

    # ========================================================= request timeout

    def _arm_sweep(self) -> None:
        if self._loop is None or self._stopped:
            return
        self._sweep = self._loop.call_later(
            max(self.request_timeout / 4, 0.05), self._sweep_requests
        )

    def _sweep_requests(self) -> None:
        """Reset served CE streams whose request did not finish within the
        timeout; forget stale connection ids that have expired."""
        now = self._now()
        stale = self._stale
        while stale and stale[next(iter(stale))] <= now:
            del stale[next(iter(stale))]
        for conn in list(self._conns.values()):
            with self._guard(conn):
                if conn.expire_requests(now, self.request_timeout):
                    self.misbehaviours["request timeout"] += 1
                    self._transmit(conn)
        self._arm_sweep()

    # ========================================================= overload signal

    def _arm_drop_watch(self) -> None:
        if self._loop is None or self._stopped:
            return
        self._drop_watch = self._loop.call_later(DROP_WATCH_INTERVAL, self._watch_drops)

    def _watch_drops(self) -> None:
        """Report datagrams the socket dropped for want of buffer space: this
        node cannot keep up, however its dials end (``ReceiveDrops``)."""
        self._drop_watch = None
        if self._drops is not None and (new := self._drops.new_drops()):
            self._manager_event(ReceiveDrops(new))
        self._arm_drop_watch()

    # ============================================================== keep-alive

    def _keepalive_interval(self) -> float | None:
        """The policy's keep-alive, at least three per idle timeout
        (:func:`jamsim.core.keepalive.keepalive_interval`)."""
        return keepalive_interval(self.policy.idle_timeout, self.policy.keep_alive_interval)

    def _arm_keepalive(self) -> None:
        interval = self._keepalive_interval()
        if interval is None or self._loop is None or self._stopped:
            return
        self._keepalive = self._loop.call_later(interval, self._send_keepalives)

    def _send_keepalives(self) -> None:
        """PING the connections this node opened; the others only once their
        peer has been silent for one and a half intervals (the rule every runtime
        shares, :func:`jamsim.core.keepalive.pings`).

        One PING per connection and interval keeps both ends' idle timers
        running, so the accepting end stays quiet: half the datagrams of PINGs
        from both ends (a fully meshed 64-node local testnet spent 0.7 of its two
        cores on keep-alives from both ends, docs/real-nodes.md).
        """
        now = self._now()
        interval = self._keepalive_interval() or 0.0
        for conn in list(self._conns.values()):
            if conn.peer_key is None or not pings(conn.outbound, now, conn.heard_at, interval):
                continue
            with self._guard(conn):
                conn.quic.send_ping(0)
                self._transmit(conn)
        self._arm_keepalive()
