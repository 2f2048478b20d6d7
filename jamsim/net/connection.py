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
from collections.abc import Callable
from dataclasses import dataclass, field

from aioquic.quic import events
from aioquic.quic.connection import QuicConnection

from jamsim.identity import PeerAddress
from jamsim.protocol.assurance_streams import (
    AssuranceReceived,
    Ce141Action,
    CE141Client,
    CE141Server,
)
from jamsim.protocol.errors import PeerProtocolError
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

StreamMachine = UP0Stream | CE128Client | CE128Server | CE141Client | CE141Server
AssuranceHandler = Callable[[bytes, Assurance], None]
RequestDone = Callable[[tuple[Block, ...] | None, str], None]
"""Callback of :meth:`JamConnection.request_with`: ``(blocks, "")`` on success,
``(None, reason)`` when the request failed (reset, misbehaviour, connection lost)."""


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
    """Per-QUIC-connection state: verification, UP 0 and CE 128 streams."""

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
        max_message_size: int,
        on_assurance: AssuranceHandler | None = None,
        core_count: int = FULL_CORE_COUNT,
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
        self._verifier = verifier
        self._handshake = handshake
        self._block_source = block_source
        self._on_announcement = on_announcement
        self._max = max_message_size
        self._machines: dict[int, StreamMachine] = {}
        self._pending_kind: set[int] = set()
        self._registry = UpStreamRegistry()
        self._requests: dict[int, asyncio.Future[tuple[Block, ...]]] = {}
        self.up0: int | None = None
        self.peer_handshake: Handshake | None = None
        self._on_assurance = on_assurance
        self._core_count = core_count
        self.assurances_sent = 0
        self.assurances_done = 0
        self._callbacks: dict[int, RequestDone] = {}

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
                machine = self._machines.pop(ev.stream_id, None)
                if machine is not None:
                    self._apply(ev.stream_id, machine.reset_by_peer(ev.error_code), out)
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

    def close(self, error_code: int, reason: str) -> None:
        """Close with an application error code (our decision, not a loss)."""
        self.closed_by_us = True
        if self.state is not ConnState.CLOSED:
            self.quic.close(error_code=error_code, reason_phrase=reason[:200])
        self._fail_requests(reason)

    # ----------------------------------------------------------------- streams

    def open_up0(self) -> None:
        """Initiator side: open (or re-open) UP 0; the acceptor keeps the newest."""
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
        sid = self.quic.get_next_available_stream_id()
        fut: asyncio.Future[tuple[Block, ...]] = asyncio.get_running_loop().create_future()
        self._machines[sid] = client
        self._requests[sid] = fut
        self._apply(sid, client.open(), ConnOutcome())
        return fut

    def request_with(self, client: CE128Client, done: RequestDone) -> int:
        """CE 128 without asyncio (the simulator): ``done`` is called once with the
        outcome. Returns the stream id, for :meth:`cancel_request`."""
        sid = self.quic.get_next_available_stream_id()
        self._machines[sid] = client
        self._callbacks[sid] = done
        self._apply(sid, client.open(), ConnOutcome())
        return sid

    def cancel_request(self, sid: int) -> bool:
        """Abandon a :meth:`request_with` request (reset the stream); its callback is
        not called. False if it already finished."""
        if self._callbacks.pop(sid, None) is None:
            return False
        machine = self._machines.get(sid)
        if machine is not None:
            self._apply(sid, machine.cancel("request timed out"), ConnOutcome())
        return True

    def send_assurance(self, assurance: Assurance) -> int:
        """CE 141: open a stream carrying ``assurance``; returns its stream id."""
        sid = self.quic.get_next_available_stream_id()
        client = CE141Client(assurance)
        self._machines[sid] = client
        self.assurances_sent += 1
        self._apply(sid, client.open(), ConnOutcome())
        return sid

    def send_raw_stream(self, data: bytes, end_stream: bool = True) -> int:
        """Tests only: write arbitrary bytes on a new stream (malformed peers)."""
        sid = self.quic.get_next_available_stream_id()
        self.quic.send_stream_data(sid, data, end_stream=end_stream)
        return sid

    def _stream_data(self, sid: int, data: bytes, end: bool, out: ConnOutcome) -> None:
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
        if kind == StreamKind.BLOCK_ANNOUNCEMENT:
            up = UP0Stream(self._handshake(), initiator=False, max_message_size=self._max)
            for old in self._registry.register(kind, sid):
                self._machines.pop(old, None)
                self._reset(old, ResetCode.DUPLICATE)
            self._machines[sid] = up
            self.up0 = sid
            self._apply(sid, up.open(), out)
            return up
        if kind == StreamKind.BLOCK_REQUEST:
            server = CE128Server(self._block_source)
            self._machines[sid] = server
            return server
        if kind == StreamKind.ASSURANCE_DISTRIBUTION:
            ce141 = CE141Server(self._core_count)
            self._machines[sid] = ce141
            return ce141
        self._reset(sid, ResetCode.REJECTED)
        out.misbehaved.append(f"unknown stream kind {kind}")
        return None

    def _reset(self, sid: int, code: int) -> None:
        # Either half may already be finished; resetting it then is a no-op for us.
        with contextlib.suppress(AssertionError, ValueError):
            self.quic.reset_stream(sid, code)
        with contextlib.suppress(AssertionError, ValueError):
            self.quic.stop_stream(sid, code)

    def _apply(
        self, sid: int, actions: list[StreamAction] | list[Ce141Action], out: ConnOutcome
    ) -> None:
        for action in actions:
            if isinstance(action, AssuranceReceived):
                if self._on_assurance is not None and self.peer_key is not None:
                    self._on_assurance(self.peer_key, action.assurance)
            elif isinstance(action, SendData):
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
                fut = self._requests.pop(sid, None)
                if fut is not None and not fut.done():
                    fut.set_result(action.blocks)
                done = self._callbacks.pop(sid, None)
                if done is not None:
                    done(action.blocks, "")
            elif isinstance(action, StreamFailed):
                self._machines.pop(sid, None)
                if self.up0 == sid:
                    self._registry.remove(StreamKind.BLOCK_ANNOUNCEMENT, sid)
                fut = self._requests.pop(sid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(PeerProtocolError(action.reason))
                failed = self._callbacks.pop(sid, None)
                if failed is not None:
                    failed(None, action.reason)
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
