"""Sans-IO state machines for one JAMNP-S stream each (UP 0, CE 128).

Both the simulator's aioquic-fidelity driver and the real aioquic node use these,
so the bytes on a simulated stream are the bytes on a real one. A machine never
touches a socket: the driver passes stream data in (``receive(data, end_stream)``)
and performs the returned actions (``SendData``, ``ResetStream``) on its QUIC
stream; ``MessageReceived``, ``StreamCompleted`` and ``StreamFailed`` are for the
application / telemetry.

Kind byte convention: a machine created by the stream *initiator* writes the kind
byte itself (in :meth:`open`). On the *acceptor* side the driver reads the first
byte to choose the machine (see :func:`split_kind`) and feeds the rest.

Reset codes are QUIC application error codes; JAMNP-S does not assign any, so the
values in :class:`ResetCode` are jamsim's own and only the fact of a reset matters
to the peer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError
from jamsim.protocol.framing import DEFAULT_MAX_MESSAGE_SIZE, MessageDecoder, encode_message
from jamsim.protocol.messages import (
    Announcement,
    Block,
    BlockRequest,
    Handshake,
    decode_announcement,
    decode_block,
    decode_block_request,
    decode_handshake,
)
from jamsim.protocol.streams import StreamKind, is_up

__all__ = [
    "CE128Client",
    "CE128Server",
    "MessageReceived",
    "ResetCode",
    "ResetStream",
    "SendData",
    "StreamAction",
    "StreamCompleted",
    "StreamFailed",
    "UP0Stream",
    "UpStreamRegistry",
    "request_data",
    "split_kind",
]


class ResetCode(enum.IntEnum):
    PROTOCOL_ERROR = 1  # the peer sent malformed/disallowed data
    REJECTED = 2  # acceptor cannot or will not satisfy the request
    CANCELLED = 3  # initiator no longer wants the response
    DUPLICATE = 4  # a newer stream of the same UP kind replaced this one
    CLOSED = 5  # local application closed the stream


@dataclass(frozen=True, slots=True)
class SendData:
    """Write ``data`` on the stream; ``end_stream`` sets FIN after it."""

    data: bytes
    end_stream: bool = False


@dataclass(frozen=True, slots=True)
class ResetStream:
    """Abort the stream in both directions (RESET_STREAM + STOP_SENDING)."""

    code: ResetCode
    reason: str


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete, decoded message from the peer."""

    message: Handshake | Announcement | BlockRequest | Block


@dataclass(frozen=True, slots=True)
class StreamCompleted:
    """The exchange finished cleanly; ``blocks`` is the CE 128 response, if any."""

    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The stream is over without success.

    ``misbehaved`` is True when the peer broke the protocol (emit JIP-3 "peer
    misbehaved"); a reset by the peer or a cancellation is not misbehaviour.
    """

    reason: str
    misbehaved: bool = False


StreamAction = SendData | ResetStream | MessageReceived | StreamCompleted | StreamFailed


def split_kind(data: bytes) -> tuple[int, bytes]:
    """Acceptor side: split a new stream's first chunk into ``(kind, rest)``."""
    if not data:
        raise PeerProtocolError("stream ended before its kind byte")
    return data[0], data[1:]


def request_data(kind: int, message: bytes) -> SendData:
    """What a CE initiator sends: the kind byte, its one message, and FIN."""
    return SendData(bytes((kind,)) + encode_message(message), end_stream=True)


class _State(enum.Enum):
    IDLE = "idle"
    OPEN = "open"
    DONE = "done"


M = TypeVar("M")
"""The message a one-message acceptor collects."""
R = TypeVar("R")
"""What a machine reports for a message received (beside the shared stream actions)."""


class _Machine(Generic[R]):
    """Shared bookkeeping: state, protocol-error to reset translation, and the
    receiving loop every protocol runs.

    :meth:`receive` decodes the peer's bytes into messages, hands each to
    :meth:`_on_message` and the peer's FIN to :meth:`_on_fin`; a
    :class:`PeerProtocolError` from any of them (a malformed message, one too
    many, a FIN too early) resets the stream and blames the peer. A subclass says
    only what each message and the FIN mean in its protocol, named ``protocol``
    in usage errors.
    """

    def __init__(self, max_message_size: int, protocol: str) -> None:
        self._decoder = MessageDecoder(max_message_size)
        self._state = _State.IDLE
        self._protocol = protocol

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message held for the peer (bounded by the cap)."""
        return self._decoder.buffered

    def _require_open(self, what: str) -> None:
        if self._state is not _State.OPEN:
            raise ProtocolUsageError(f"{what} on a stream that is {self._state.value}")

    def _start(self, opened_twice: str) -> None:
        """The initiator's ``open``: IDLE to OPEN; ``opened_twice`` is the usage error
        for a second call (a stream carries one exchange)."""
        if self._state is not _State.IDLE:
            raise ProtocolUsageError(opened_twice)
        self._state = _State.OPEN

    def _accepting(self, protocol: str) -> bool:
        """Whether received data still counts (not once done); data before ``open``
        is a usage error naming ``protocol``."""
        if self._state is _State.DONE:
            return False
        if self._state is _State.IDLE:
            raise ProtocolUsageError(f"open() the {protocol} stream before feeding it data")
        return True

    def _protocol_error(self, exc: PeerProtocolError) -> list[StreamAction]:
        self._state = _State.DONE
        return [
            ResetStream(ResetCode.PROTOCOL_ERROR, exc.reason),
            StreamFailed(exc.reason, misbehaved=True),
        ]

    def reset_by_peer(self, code: int) -> list[StreamAction]:
        """The peer reset/stopped the stream."""
        if self._state is _State.DONE:
            return []
        self._state = _State.DONE
        return [StreamFailed(self._reset_reason(code))]

    def _reset_reason(self, code: int) -> str:
        return f"stream reset by peer (code {code})"

    def receive(self, data: bytes, end_stream: bool = False) -> list[StreamAction | R]:
        if not self._accepting(self._protocol):
            return []
        out: list[StreamAction | R] = []
        try:
            for raw in self._decoder.feed(data):
                action = self._on_message(raw)
                if action is not None:
                    out.append(action)
            self._decoder.check()
            if end_stream:
                self._decoder.end_of_stream()
                out.extend(self._on_fin())
        except PeerProtocolError as exc:
            out.extend(self._protocol_error(exc))
        return out

    def _on_message(self, raw: bytes) -> StreamAction | R | None:
        """One complete message from the peer: what it means, as an action (``None``:
        nothing to report)."""
        raise NotImplementedError

    def _on_fin(self) -> list[StreamAction]:
        """The peer finished its half: the actions that end the exchange."""
        raise NotImplementedError

    def cancel(self, reason: str = "cancelled") -> list[StreamAction]:
        """Local side abandons the stream."""
        if self._state is _State.DONE:
            return []
        self._state = _State.DONE
        return [ResetStream(ResetCode.CANCELLED, reason), StreamFailed(reason)]


class UP0Stream(_Machine[MessageReceived]):
    """One UP 0 block-announcement stream, either side.

    Both sides send their handshake at once; the first message received must be
    the peer's handshake, every later one an announcement. A FIN from the peer
    ends the stream: ``StreamCompleted`` if we closed first, otherwise
    ``StreamFailed`` without blame (closing a stream is allowed by the protocol).
    """

    def __init__(
        self,
        handshake: Handshake,
        *,
        initiator: bool,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(max_message_size, "UP 0")
        self.initiator = initiator
        self._handshake = handshake
        self.peer_handshake: Handshake | None = None
        self._fin_sent = False

    def open(self) -> list[StreamAction]:
        """Send our handshake (preceded by the kind byte on the initiator side)."""
        self._start("UP 0 stream already opened")
        prefix = bytes((StreamKind.BLOCK_ANNOUNCEMENT,)) if self.initiator else b""
        return [SendData(prefix + encode_message(self._handshake.encode()))]

    def announce(self, announcement: Announcement) -> list[StreamAction]:
        self._require_open("announce")
        if self._fin_sent:
            raise ProtocolUsageError("announce after close() on the UP 0 stream")
        return [SendData(encode_message(announcement.encode()))]

    def close(self) -> list[StreamAction]:
        """Finish our sending half; the stream completes when the peer's FIN arrives."""
        self._require_open("close")
        if self._fin_sent:
            return []
        self._fin_sent = True
        return [SendData(b"", end_stream=True)]

    def _on_message(self, raw: bytes) -> MessageReceived:
        if self.peer_handshake is None:
            self.peer_handshake = decode_handshake(raw)
            return MessageReceived(self.peer_handshake)
        return MessageReceived(decode_announcement(raw))

    def _on_fin(self) -> list[StreamAction]:
        self._state = _State.DONE
        if self._fin_sent:
            return [StreamCompleted()]
        # Finish our half too: a stream with one half left open is never
        # released, and its QUIC stream credit never comes back.
        self._fin_sent = True
        return [SendData(b"", end_stream=True), StreamFailed("peer closed the UP 0 stream")]


class CE128Client(_Machine[MessageReceived]):
    """Initiator of a CE 128 block request.

    ``open()`` writes kind byte, request and FIN. Blocks are reported as they
    arrive; a peer FIN completes the request, a peer reset is a rejection. More
    blocks than ``max_blocks`` is misbehaviour.
    """

    def __init__(
        self, request: BlockRequest, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        super().__init__(max_message_size, "CE 128")
        self.request = request
        self.blocks: list[Block] = []

    def open(self) -> list[StreamAction]:
        self._start("CE 128 request already sent")
        return [request_data(StreamKind.BLOCK_REQUEST, self.request.encode())]

    def _on_message(self, raw: bytes) -> MessageReceived:
        if len(self.blocks) >= self.request.max_blocks:
            raise PeerProtocolError(
                f"CE 128: peer sent more than the {self.request.max_blocks} blocks asked")
        block = decode_block(raw)
        self.blocks.append(block)
        return MessageReceived(block)

    def _on_fin(self) -> list[StreamAction]:
        self._state = _State.DONE
        return [StreamCompleted(tuple(self.blocks))]

    def _reset_reason(self, code: int) -> str:
        return f"block request rejected by peer (code {code})"


class _OneMessageSender(_Machine[R]):
    """Initiator of a CE exchange that sends exactly one message and FIN, then takes
    the acceptor's reply and FIN: ``replies`` empty messages (CE 141: none; the
    experiments' extra kinds: one). The reply carries nothing to report, so the
    message cap is 0: any content is refused on its length prefix.
    """

    def __init__(self, kind: int, message: bytes, protocol: str, *, replies: int) -> None:
        super().__init__(0, protocol)
        self.kind = kind
        self.message = message
        self._replies = replies
        self._replied = 0

    def open(self) -> list[StreamAction]:
        self._start(f"{self._protocol} message already sent")
        return [request_data(self.kind, self.message)]

    def _on_message(self, raw: bytes) -> None:
        if self._replied == self._replies:
            extra = "more than one reply" if self._replies else "a message, not just its FIN"
            raise PeerProtocolError(f"{self._protocol}: acceptor sent {extra}")
        self._replied += 1

    def _on_fin(self) -> list[StreamAction]:
        if self._replied < self._replies:
            raise PeerProtocolError(f"{self._protocol}: acceptor finished without its reply")
        self._state = _State.DONE
        return [StreamCompleted()]


BlockSource = Callable[[BlockRequest], Sequence[Block] | None]
"""Answers a request with blocks in response order, or ``None`` if it cannot."""


class _OneMessageAcceptor(_Machine[R], Generic[M, R]):
    """Acceptor of a CE exchange that opens with exactly one message and the peer's FIN
    (CE 128's request, CE 141's assurance), kind byte already consumed.

    Collects the message (reported as it decodes, before the FIN arrives); a second
    message, or a FIN with none, is misbehaviour. Once both are in, :meth:`_answer`
    says what the acceptor sends back. The two protocols differ only in the decoder,
    the report and the answer, so the collecting rules are written once here.
    """

    def __init__(self, max_message_size: int, protocol: str, message: str) -> None:
        super().__init__(max_message_size, protocol)
        self._state = _State.OPEN
        self._message = message
        self.received: M | None = None

    def _decode(self, raw: bytes) -> M:
        raise NotImplementedError

    def _report(self, message: M) -> R:
        raise NotImplementedError

    def _answer(self, message: M) -> list[StreamAction]:
        raise NotImplementedError

    def _on_message(self, raw: bytes) -> R:
        if self.received is not None:
            raise PeerProtocolError(f"{self._protocol}: more than one {self._message} message")
        self.received = self._decode(raw)
        return self._report(self.received)

    def _on_fin(self) -> list[StreamAction]:
        if self.received is None:
            article = "an" if self._message[0] in "aeiou" else "a"
            raise PeerProtocolError(
                f"{self._protocol}: stream finished without {article} {self._message}")
        self._state = _State.DONE
        return self._answer(self.received)


class CE128Server(_OneMessageAcceptor[BlockRequest, MessageReceived]):
    """Acceptor of a CE 128 block request (kind byte already consumed).

    Collects exactly one request message until the peer's FIN, asks
    ``block_source``, then sends each block as its own message and FIN. An
    unsatisfiable request is answered with a reset, as the protocol prescribes.
    """

    def __init__(
        self,
        block_source: BlockSource,
        *,
        max_message_size: int = 4096,
    ) -> None:
        super().__init__(max_message_size, "CE 128", "request")
        self._source = block_source

    def _decode(self, raw: bytes) -> BlockRequest:
        return decode_block_request(raw)

    def _report(self, message: BlockRequest) -> MessageReceived:
        return MessageReceived(message)

    def _answer(self, message: BlockRequest) -> list[StreamAction]:
        blocks = self._source(message)
        if blocks is None:
            reason = "cannot satisfy block request"
            return [ResetStream(ResetCode.REJECTED, reason), StreamFailed(reason)]
        blocks = tuple(blocks)[: message.max_blocks]
        payload = b"".join(encode_message(b.encode()) for b in blocks)
        return [SendData(payload, end_stream=True), StreamCompleted(blocks)]


class UpStreamRegistry:
    """Acceptor-side UP de-duplication: keep the greatest QUIC stream id per kind.

    ``simple.md``: an acceptor may see several open streams of one UP kind (e.g.
    after loss, a close and reopen); it keeps the stream with the greatest id and
    resets/stops the others. :meth:`register` returns the ids to reset.
    """

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[int, int] = {}

    def register(self, kind: int, stream_id: int) -> list[int]:
        if not is_up(kind):
            raise ProtocolUsageError(f"kind {kind} is not a UP kind")
        existing = self._current.get(kind)
        if existing is None or existing == stream_id:
            self._current[kind] = stream_id
            return []
        if stream_id > existing:
            self._current[kind] = stream_id
            return [existing]
        return [stream_id]

    def remove(self, kind: int, stream_id: int) -> None:
        """Forget ``stream_id`` if it is the current stream of ``kind``."""
        if self._current.get(kind) == stream_id:
            del self._current[kind]

    def current(self, kind: int) -> int | None:
        return self._current.get(kind)
