"""One JAMNP-S QUIC connection of the asyncio node: TLS verification and streams.

The class is sans-IO apart from the QuicConnection it wraps: the node feeds it
aioquic events and reads back what happened (verified key, lost reason, stream
results). Stream bytes are handled by the shared sans-IO machines in
:mod:`jamsim.protocol.stream_protocols`, so the simulator and the node speak the
same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aioquic.quic import events
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode, QuicFrameType

from jamsim.identity import PeerAddress
from jamsim.protocol.assurance_streams import (
    AssuranceReceived,
    Ce141Action,
    CE141Client,
    CE141Server,
)
from jamsim.protocol.errors import PeerProtocolError
from jamsim.protocol.extra_streams import ExtraAction, ExtraClient, ExtraReceived, ExtraServer
from jamsim.protocol.limits import (
    MAX_CE128_REQUEST,
    MAX_STREAMS_PER_CONNECTION,
    MAX_UNFINISHED_RESETS,
    MAX_UP0_MESSAGE,
)
from jamsim.protocol.messages import FULL_CORE_COUNT, Announcement, Assurance, Block, Handshake
from jamsim.protocol.stream_protocols import BlockSource as BlockSource
from jamsim.protocol.stream_protocols import (
    CE128Client,
    CE128Server,
    MessageReceived,
    ResetCode,
    ResetStream,
    SendData,
    StreamAction,
    StreamCompleted,
    StreamFailed,
    UP0Stream,
    UpStreamRegistry,
    split_kind,
)
from jamsim.protocol.streams import StreamKind
from jamsim.quic.tls_workaround import peer_certificate
from jamsim.quic.verify import PeerVerificationError, PeerVerifier

StreamMachine = (UP0Stream | CE128Client | CE128Server | CE141Client | CE141Server
                 | ExtraClient | ExtraServer)
AssuranceHandler = Callable[[bytes, Assurance], None]
ExtraHandler = Callable[[bytes, int, bytes], None]
"""``(peer key, kind, payload)`` of an extra CE message received whole."""
ExtraDone = Callable[[bool], None]
"""Called once when an extra CE exchange we opened ends: True when it completed."""
RequestDone = Callable[[tuple[Block, ...] | None, str], None]
"""Callback of :meth:`JamConnection.request_with`: ``(blocks, "")`` on success,
``(None, reason)`` when the request failed (reset, misbehaviour, connection lost)."""


RESET_STREAMS_LEFT_OPEN = 0x109
"""Close code: the peer ignored our STOP_SENDING on more than
``MAX_UNFINISHED_RESETS`` streams (listed with the other codes in docs/real-nodes.md)."""


class ConnState(enum.Enum):
    HANDSHAKING = "handshaking"
    VERIFIED = "verified"
    CLOSED = "closed"


@dataclass(slots=True)
class ConnOutcome:
    """What one batch of aioquic events meant for the connection manager."""

    verified: bytes | None = None
    rejected: PeerVerificationError | None = None
    terminated: str | None = None
    misbehaved: list[str] = field(default_factory=list)


class JamConnection:
    """Per-QUIC-connection state: verification, UP 0, CE 128, CE 141 and the
    experiments' extra CE streams (only the kinds in ``extra_kinds`` are accepted)."""

    def __init__(
        self,
        quic: QuicConnection,
        conn_id: int,
        address: PeerAddress,
        *,
        outbound: bool,
        verifier: PeerVerifier,
        handshake: Callable[[], Handshake],
        block_source: BlockSource,
        on_announcement: Callable[[bytes, Announcement], None],
        max_message_size: int | None,
        clock: Callable[[], float] = lambda: 0.0,
        on_assurance: AssuranceHandler | None = None,
        core_count: int = FULL_CORE_COUNT,
        extra_kinds: Mapping[int, int] | None = None,
        on_extra: ExtraHandler | None = None,
    ) -> None:
        self.quic = quic
        self.conn_id = conn_id
        self.address = address
        self.outbound = outbound
        self.state = ConnState.HANDSHAKING
        self.peer_key: bytes | None = None
        self.live = False
        self.closed_by_us = False
        self.timer: asyncio.TimerHandle | None = None
        self.heard_at = clock()
        """When the last datagram of this connection arrived (the node sets it)."""
        self._verifier = verifier
        self._handshake = handshake
        self._block_source = block_source
        self._on_announcement = on_announcement
        self._max = max_message_size if max_message_size is not None else MAX_UP0_MESSAGE
        self._machines: dict[int, StreamMachine] = {}
        self._pending_kind: set[int] = set()
        self._registry = UpStreamRegistry()
        self._requests: dict[int, asyncio.Future[tuple[Block, ...]]] = {}
        # Streams we reset whose peer half may still deliver data: their bytes are
        # dropped, never parsed as a new stream. An entry goes when the peer's FIN or
        # reset arrives; a peer that sends neither keeps the stream and so its QUIC
        # stream credit, which bounds this set.
        self._dead: set[int] = set()
        # Streams whose sending half the peer stopped in the batch being handled
        # (id -> its error code): their machines end once the batch is read.
        self._send_stopped: dict[int, int] = {}
        # CE requests served by us and still waiting for the peer's request + FIN.
        self._request_opened: dict[int, float] = {}
        self._clock = clock
        self.up0: int | None = None
        self.peer_handshake: Handshake | None = None
        self._on_assurance = on_assurance
        self._core_count = core_count
        self.assurances_sent = 0
        self.assurances_done = 0
        self._callbacks: dict[int, RequestDone] = {}
        # Extra CE kinds we accept (kind -> largest message), from the traffic config.
        self._extra_kinds: dict[int, int] = dict(extra_kinds or {})
        self._on_extra = on_extra
        self._extra_done: dict[int, ExtraDone] = {}

    # ------------------------------------------------------------------ events

    def handle_events_with(
        self, observe: Callable[[events.QuicEvent, JamConnection], None]
    ) -> ConnOutcome:
        """Consume pending aioquic events; ``observe`` sees each first (cid routing)."""
        out = ConnOutcome()
        while (ev := self.quic.next_event()) is not None:
            observe(ev, self)
            if isinstance(ev, events.HandshakeCompleted):
                self._verify(ev.alpn_protocol, out)
            elif isinstance(ev, events.ConnectionTerminated):
                self.state = ConnState.CLOSED
                out.terminated = ev.reason_phrase or f"error {ev.error_code:#x}"
                self._fail_requests(out.terminated)
            elif isinstance(ev, events.StreamDataReceived):
                if self.state is ConnState.VERIFIED:
                    self._stream_data(ev.stream_id, ev.data, ev.end_stream, out)
            elif isinstance(ev, events.StreamReset):
                self._dead.discard(ev.stream_id)
                self._request_opened.pop(ev.stream_id, None)
                machine = self._machines.pop(ev.stream_id, None)
                if machine is not None:
                    self._apply(ev.stream_id, machine.reset_by_peer(ev.error_code), out)
                # Release our half as well (a no-op once it has finished): aioquic
                # frees a stream, and gives its credit back, only when both are over.
                with contextlib.suppress(AssertionError, ValueError):
                    self.quic.reset_stream(ev.stream_id, ResetCode.CANCELLED)
            elif isinstance(ev, events.StopSendingReceived):
                # aioquic has already reset our sending half (RFC 9000, 3.5), so
                # nothing more is written there. What the peer sent before asking,
                # which may follow the STOP_SENDING frame in the same packet
                # (quinn puts it first), is still read: the exchange ends, failing
                # its machine and stopping our receiving half, once this batch is.
                self._send_stopped[ev.stream_id] = ev.error_code
        for sid, code in self._send_stopped.items():
            machine = self._machines.pop(sid, None)
            if machine is not None:
                self._apply(sid, machine.reset_by_peer(code), out)
            self._reset(sid, ResetCode.CANCELLED)
        self._send_stopped.clear()
        return out

    def _verify(self, alpn: str | None, out: ConnOutcome) -> None:
        try:
            key = self._verifier.verify(peer_certificate(self.quic), alpn)
        except PeerVerificationError as exc:
            out.rejected = exc
            self.close(exc.error_code, str(exc))
            return
        self.peer_key = key
        self.state = ConnState.VERIFIED
        out.verified = key

    def buffered_bytes(self) -> int:
        """Bytes held in stream decoders (what the peer can make us buffer)."""
        return sum(m.buffered for m in self._machines.values())

    def open_streams(self) -> int:
        return len(self._machines)

    def close(self, error_code: int, reason: str) -> None:
        """Close with an application error code (our decision, not a loss)."""
        self.closed_by_us = True
        if self.state is not ConnState.CLOSED:
            self.quic.close(error_code=error_code, reason_phrase=reason[:200])
        self._fail_requests(reason)

    def close_internal_error(self, detail: str) -> None:
        """Close after a bug met on this connection's input: QUIC INTERNAL_ERROR."""
        self.closed_by_us = True
        if self.state is not ConnState.CLOSED:
            self.quic.close(
                error_code=QuicErrorCode.INTERNAL_ERROR,
                frame_type=QuicFrameType.PADDING,
                reason_phrase=f"internal error: {detail}"[:200],
            )
            self.state = ConnState.CLOSED
        self._fail_requests("internal error")

    # ----------------------------------------------------------------- streams

    def open_up0(self) -> None:
        """Initiator side: open (or re-open) UP 0; the acceptor keeps the newest."""
        previous = self.up0
        if previous is not None:  # ours to replace: reset it rather than leave it open
            self._reset(previous, ResetCode.DUPLICATE)
        sid = self.quic.get_next_available_stream_id()
        machine = UP0Stream(self._handshake(), initiator=True, max_message_size=self._max)
        self._machines[sid] = machine
        self.up0 = sid
        self._apply(sid, machine.open(), ConnOutcome())

    def announce(self, announcement: Announcement) -> bool:
        machine = self._machines.get(self.up0) if self.up0 is not None else None
        if not isinstance(machine, UP0Stream):
            return False
        self._apply(self.up0, machine.announce(announcement), ConnOutcome())  # type: ignore[arg-type]
        return True

    def request(self, client: CE128Client) -> asyncio.Future[tuple[Block, ...]]:
        return self.request_stream(client)[1]

    def request_stream(
        self, client: CE128Client
    ) -> tuple[int, asyncio.Future[tuple[Block, ...]]]:
        """Open a CE 128 request; returns its stream id and the response future."""
        sid = self.quic.get_next_available_stream_id()
        fut: asyncio.Future[tuple[Block, ...]] = asyncio.get_running_loop().create_future()
        self._machines[sid] = client
        self._requests[sid] = fut
        self._apply(sid, client.open(), ConnOutcome())
        return sid, fut

    def request_with(self, client: CE128Client, done: RequestDone) -> int:
        """CE 128 without asyncio (the simulator): ``done`` is called once with the
        outcome. Returns the stream id, for :meth:`cancel_request`."""
        sid = self.quic.get_next_available_stream_id()
        self._machines[sid] = client
        self._callbacks[sid] = done
        self._apply(sid, client.open(), ConnOutcome())
        return sid

    def send_assurance(self, assurance: Assurance) -> int:
        """CE 141: open a stream carrying ``assurance``; returns its stream id."""
        sid = self.quic.get_next_available_stream_id()
        client = CE141Client(assurance)
        self._machines[sid] = client
        self.assurances_sent += 1
        self._apply(sid, client.open(), ConnOutcome())
        return sid

    def send_extra(self, kind: int, payload: bytes, done: ExtraDone | None = None) -> int:
        """An extra CE ``kind`` exchange carrying ``payload``; ``done`` hears how it
        ended. Returns the stream id."""
        sid = self.quic.get_next_available_stream_id()
        client = ExtraClient(kind, payload)
        self._machines[sid] = client
        if done is not None:
            self._extra_done[sid] = done
        self._apply(sid, client.open(), ConnOutcome())
        return sid

    def send_raw_stream(self, data: bytes, end_stream: bool = True) -> int:
        """Tests only: write arbitrary bytes on a new stream (malformed peers)."""
        sid = self.quic.get_next_available_stream_id()
        self.quic.send_stream_data(sid, data, end_stream=end_stream)
        return sid

    def _stream_data(self, sid: int, data: bytes, end: bool, out: ConnOutcome) -> None:
        if sid not in self._dead:
            self._stream_bytes(sid, data, end, out)
        if end:  # the peer's half is over: nothing more can arrive on this id
            self._dead.discard(sid)

    def _stream_bytes(self, sid: int, data: bytes, end: bool, out: ConnOutcome) -> None:
        machine = self._machines.get(sid)
        if machine is None:
            if not data and not end:
                return
            try:
                kind, rest = split_kind(data)
            except PeerProtocolError as exc:
                self._reset(sid, ResetCode.PROTOCOL_ERROR)
                out.misbehaved.append(exc.reason)
                return
            new = self._accept_stream(sid, kind, out)
            if new is None:
                return
            machine, data = new, rest
        self._apply(sid, machine.receive(data, end), out)

    def _accept_stream(self, sid: int, kind: int, out: ConnOutcome) -> StreamMachine | None:
        if len(self._machines) >= MAX_STREAMS_PER_CONNECTION:
            # Behind QUIC's own stream credit (the same number), so what a connection
            # holds stays bounded whatever the QUIC stack grants.
            self._reset(sid, ResetCode.REJECTED)
            out.misbehaved.append(f"more than {MAX_STREAMS_PER_CONNECTION} streams open")
            return None
        if kind == StreamKind.BLOCK_ANNOUNCEMENT:
            superseded = self._registry.register(kind, sid)
            for old in superseded:
                self._reset(old, ResetCode.DUPLICATE)
            if sid in superseded:
                # A lower id arriving after a higher one (reordering): it lost.
                return None
            up = UP0Stream(self._handshake(), initiator=False, max_message_size=self._max)
            self._machines[sid] = up
            self.up0 = sid
            self._apply(sid, up.open(), out)
            return up
        if kind == StreamKind.BLOCK_REQUEST:
            server = CE128Server(self._block_source, max_message_size=MAX_CE128_REQUEST)
            self._machines[sid] = server
            self._request_opened[sid] = self._clock()
            return server
        if kind == StreamKind.ASSURANCE_DISTRIBUTION:
            ce141 = CE141Server(self._core_count)
            self._machines[sid] = ce141
            return ce141
        if kind in self._extra_kinds:
            extra = ExtraServer(kind, self._extra_kinds[kind])
            self._machines[sid] = extra
            self._request_opened[sid] = self._clock()
            return extra
        self._reset(sid, ResetCode.REJECTED)
        out.misbehaved.append(f"unknown stream kind {kind}")
        return None

    def expire_requests(self, now: float, timeout: float) -> int:
        """Reset served CE streams whose request is not finished ``timeout`` after opening.

        Returns how many were reset. A request is a few dozen bytes sent with its FIN
        in one write, so a peer that has not finished it by then never will; without
        this the stream (and its buffer) would live as long as the connection.
        """
        expired = [sid for sid, t in self._request_opened.items() if now - t >= timeout]
        for sid in expired:
            self._reset(sid, ResetCode.CANCELLED)
        return len(expired)

    def cancel_request(self, sid: int) -> bool:
        """Abandon our own CE request (its answer is no longer awaited): the stream
        is reset with CANCELLED and a :meth:`request_with` callback is not called.
        False if the request had already finished."""
        pending = self._callbacks.pop(sid, None) is not None
        pending = self._requests.pop(sid, None) is not None or pending
        if self._machines.get(sid) is not None:
            self._reset(sid, ResetCode.CANCELLED)
        return pending

    def _reset(self, sid: int, code: int) -> None:
        self._machines.pop(sid, None)
        self._request_opened.pop(sid, None)
        if self.up0 == sid:
            self.up0 = None
            self._registry.remove(StreamKind.BLOCK_ANNOUNCEMENT, sid)
        self._dead.add(sid)
        if len(self._dead) > MAX_UNFINISHED_RESETS and self.state is not ConnState.CLOSED:
            # RFC 9000 has a peer answer STOP_SENDING with RESET_STREAM; one that
            # leaves this many reset streams open is holding state on purpose.
            self.close(RESET_STREAMS_LEFT_OPEN, "too many reset streams left open")
        # Either half may already be finished; resetting it then is a no-op for us.
        with contextlib.suppress(AssertionError, ValueError):
            self.quic.reset_stream(sid, code)
        with contextlib.suppress(AssertionError, ValueError):
            self.quic.stop_stream(sid, code)

    def _apply(
        self, sid: int, actions: list[StreamAction] | list[Ce141Action] | list[ExtraAction],
        out: ConnOutcome,
    ) -> None:
        for action in actions:
            if isinstance(action, AssuranceReceived):
                if self._on_assurance is not None and self.peer_key is not None:
                    self._on_assurance(self.peer_key, action.assurance)
            elif isinstance(action, ExtraReceived):
                if self._on_extra is not None and self.peer_key is not None:
                    self._on_extra(self.peer_key, action.kind, action.payload)
            elif isinstance(action, SendData):
                # Never write to a stream we reset or whose sending half was stopped.
                if sid not in self._dead and sid not in self._send_stopped:
                    self.quic.send_stream_data(sid, action.data, end_stream=action.end_stream)
            elif isinstance(action, ResetStream):
                self._reset(sid, action.code)
            elif isinstance(action, MessageReceived):
                msg = action.message
                if isinstance(msg, Handshake):
                    self.peer_handshake = msg
                elif isinstance(msg, Announcement) and self.peer_key is not None:
                    self._on_announcement(self.peer_key, msg)
            elif isinstance(action, StreamCompleted):
                if isinstance(self._machines.pop(sid, None), CE141Client):
                    self.assurances_done += 1
                self._request_opened.pop(sid, None)
                fut = self._requests.pop(sid, None)
                if fut is not None and not fut.done():
                    fut.set_result(action.blocks)
                done = self._callbacks.pop(sid, None)
                if done is not None:
                    done(action.blocks, "")
                extra_done = self._extra_done.pop(sid, None)
                if extra_done is not None:
                    extra_done(True)
            elif isinstance(action, StreamFailed):
                self._machines.pop(sid, None)
                self._request_opened.pop(sid, None)
                if self.up0 == sid:
                    self._registry.remove(StreamKind.BLOCK_ANNOUNCEMENT, sid)
                fut = self._requests.pop(sid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(PeerProtocolError(action.reason))
                failed = self._callbacks.pop(sid, None)
                if failed is not None:
                    failed(None, action.reason)
                extra_failed = self._extra_done.pop(sid, None)
                if extra_failed is not None:
                    extra_failed(False)
                if action.misbehaved:
                    out.misbehaved.append(action.reason)

    def _fail_requests(self, reason: str) -> None:
        for fut in self._requests.values():
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
        self._requests.clear()
        callbacks, self._callbacks = self._callbacks, {}
        for done in callbacks.values():
            done(None, reason)
        extras, self._extra_done = self._extra_done, {}
        for extra_done in extras.values():
            extra_done(False)
