"""JAMNP-S / JIP-3 message framing: ``u32 LE size ++ content``.

:class:`MessageDecoder` is incremental and sans-IO: feed it whatever chunks the
transport delivers (QUIC stream data, TCP reads) and it returns the complete
messages so far. The size limit is enforced as soon as the 4-byte prefix is
complete, before any content is buffered, so a peer cannot make us hold a 4 GiB
message. :class:`StreamDecoder` adds the stream-kind byte that precedes the first
message on the stream initiator's side.
"""

from __future__ import annotations

from collections.abc import Iterable

from jamsim.protocol.errors import MessageTooLarge, PeerProtocolError, ProtocolUsageError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "LENGTH_PREFIX_SIZE",
    "MessageDecoder",
    "StreamDecoder",
    "encode_message",
    "encode_messages",
    "open_stream_bytes",
]

LENGTH_PREFIX_SIZE = 4
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""16 MiB: above the largest block/bundle jamsim carries; configurable per decoder."""


def encode_message(content: bytes) -> bytes:
    """Frame one message: its size as u32 LE, then the content."""
    if len(content) > 0xFFFFFFFF:
        raise ProtocolUsageError(f"message of {len(content)} bytes cannot be framed in u32")
    return len(content).to_bytes(4, "little") + content


def encode_messages(contents: Iterable[bytes]) -> bytes:
    return b"".join(encode_message(c) for c in contents)


def open_stream_bytes(kind: int, first_messages: Iterable[bytes] = ()) -> bytes:
    """Bytes an initiator writes on a new stream: kind byte, then framed messages."""
    if not 0 <= kind <= 255:
        raise ProtocolUsageError(f"stream kind must be one byte, got {kind}")
    return bytes((kind,)) + encode_messages(first_messages)


class MessageDecoder:
    """Reassemble framed messages from arbitrarily chunked bytes.

    After an error the decoder is poisoned (the stream must be reset): further
    :meth:`feed` / :meth:`end_of_stream` calls raise the same error again rather
    than resynchronising on garbage. Messages completed before the bad prefix in
    the same chunk are still returned; the error is raised by the next call.
    """

    __slots__ = ("_buf", "_error", "_need", "max_message_size")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 0:
            raise ProtocolUsageError("max_message_size must be >= 0")
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._need: int | None = None  # content size once the prefix is known
        self._error: PeerProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned message."""
        return len(self._buf)

    @property
    def at_boundary(self) -> bool:
        """True when no partial message is buffered (a clean place for FIN)."""
        return not self._buf

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data``; return every message completed by it, in order."""
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        end = len(buf)
        while True:
            if self._need is None:
                if end - pos < LENGTH_PREFIX_SIZE:
                    break
                size = int.from_bytes(buf[pos : pos + 4], "little")
                if size > self.max_message_size:
                    self._error = MessageTooLarge(size, self.max_message_size)
                    if out:  # deliver what was complete; the error surfaces next call
                        break
                    raise self._error
                self._need = size
                pos += 4
            if end - pos < self._need:
                break
            out.append(bytes(buf[pos : pos + self._need]))
            pos += self._need
            self._need = None
        if pos:
            del buf[:pos]
        return out

    @property
    def error(self) -> PeerProtocolError | None:
        """The error that poisoned this decoder, if any."""
        return self._error

    def check(self) -> None:
        """Raise a pending error (one found after messages returned by ``feed``)."""
        if self._error is not None:
            raise self._error

    def end_of_stream(self) -> None:
        """The peer finished its sending half: a partial message is an error."""
        if self._error is not None:
            raise self._error
        if self._buf or self._need is not None:
            if self._need is None:
                detail = f"{len(self._buf)} bytes of a 4-byte size prefix"
            else:
                detail = f"{len(self._buf)} of {self._need} content bytes"
            self._error = PeerProtocolError(f"stream ended inside a message ({detail})")
            raise self._error


class StreamDecoder:
    """Decoder for the acceptor's receive side: kind byte, then messages.

    ``kind`` is ``None`` until the first byte arrives.
    """

    __slots__ = ("kind", "messages")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.kind: int | None = None
        self.messages = MessageDecoder(max_message_size)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self.kind is None and data:
            self.kind = data[0]
            data = data[1:]
        return self.messages.feed(data)

    def end_of_stream(self) -> None:
        if self.kind is None:
            raise PeerProtocolError("stream ended before its kind byte")
        self.messages.end_of_stream()
