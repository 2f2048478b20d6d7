"""Gray Paper serialization primitives used by JAMNP-S and JIP-3.

* ``E_n``: fixed-width little-endian unsigned integers (u8, u16, u32, u64).
* ``E``: the GP general natural-number encoding, 1 to 9 bytes. For
  ``2^(7l) <= x < 2^(7(l+1))`` with ``l`` in 0..7 the first byte is
  ``2^8 - 2^(8-l) + floor(x / 2^(8l))`` (``l`` leading one bits then the high
  bits of ``x``) followed by ``x mod 2^(8l)`` in ``l`` little-endian bytes;
  ``x < 2^56`` thus fits in at most 8 bytes, anything up to ``2^64 - 1`` is
  ``0xFF`` ++ ``E_8(x)``. ``0`` is the single byte ``0x00``.
* ``len++[...]``: a sequence prefixed by its length in the natural encoding.

Decoding is strict: only the canonical (shortest) natural encoding is accepted, so
encode/decode is a bijection and two peers can never disagree on what a message
says. Every decoding failure raises a :class:`PeerProtocolError` subclass, never
``IndexError``/``struct.error``: decoders see remote bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from jamsim.protocol.errors import (
    PeerProtocolError,
    ProtocolUsageError,
    TrailingBytes,
    TruncatedInput,
)

__all__ = [
    "MAX_U64",
    "Reader",
    "decode_all",
    "decode_natural",
    "encode_bytes_with_len",
    "encode_natural",
    "encode_sequence",
    "encode_string",
    "join",
    "u8",
    "u16",
    "u32",
    "u64",
]

T = TypeVar("T")

MAX_U64 = (1 << 64) - 1


def _fixed(value: int, width: int) -> bytes:
    if not 0 <= value < 1 << (8 * width):
        raise ProtocolUsageError(f"{value} does not fit in u{8 * width}")
    return value.to_bytes(width, "little")


def u8(value: int) -> bytes:
    """``E_1``: one byte."""
    return _fixed(value, 1)


def u16(value: int) -> bytes:
    """``E_2``: two bytes little-endian."""
    return _fixed(value, 2)


def u32(value: int) -> bytes:
    """``E_4``: four bytes little-endian (JAMNP-S message sizes, slots)."""
    return _fixed(value, 4)


def u64(value: int) -> bytes:
    """``E_8``: eight bytes little-endian (JIP-3 timestamps, event ids)."""
    return _fixed(value, 8)


def encode_natural(value: int) -> bytes:
    """GP general natural-number encoding ``E(x)`` for ``0 <= x < 2^64``."""
    if value < 0 or value > MAX_U64:
        raise ProtocolUsageError(f"{value} is not a natural number below 2^64")
    if value < 0x80:
        return bytes((value,))
    for length in range(1, 8):
        if value < 1 << (7 * (length + 1)):
            prefix = 256 - (1 << (8 - length)) + (value >> (8 * length))
            low = value & ((1 << (8 * length)) - 1)
            return bytes((prefix,)) + low.to_bytes(length, "little")
    return b"\xff" + value.to_bytes(8, "little")


def encode_bytes_with_len(data: bytes) -> bytes:
    """``len++[u8]``: a byte string prefixed by its natural-encoded length."""
    return encode_natural(len(data)) + data


def encode_string(text: str, max_len: int) -> bytes:
    """JIP-3 ``String<N>``: UTF-8 bytes, at most ``max_len`` of them, ``len++``."""
    raw = text.encode("utf-8")
    if len(raw) > max_len:
        raise ProtocolUsageError(f"string of {len(raw)} bytes exceeds String<{max_len}>")
    return encode_bytes_with_len(raw)


def encode_sequence(items: Iterable[T], encode_item: Callable[[T], bytes]) -> bytes:
    """``len++[T]``: a natural-encoded count followed by each encoded item."""
    parts = [encode_item(item) for item in items]
    return encode_natural(len(parts)) + b"".join(parts)


def decode_natural(data: bytes) -> tuple[int, int]:
    """Decode ``E(x)`` at the start of ``data``; return ``(x, bytes consumed)``."""
    reader = Reader(data)
    value = reader.natural()
    return value, reader.offset


class Reader:
    """A cursor over one complete message; every read checks bounds.

    ``context`` names what is being decoded ("CE 128 request") so errors read
    like "CE 128 request: truncated: need 4 bytes for max_blocks at offset 33, have 0".
    Call :meth:`finish` at the end: trailing bytes are a protocol error too.
    """

    __slots__ = ("_data", "context", "offset")

    def __init__(self, data: bytes | bytearray | memoryview, context: str = "message") -> None:
        self._data = bytes(data)
        self.offset = 0
        self.context = context

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    def _fail(self, message: str) -> PeerProtocolError:
        return PeerProtocolError(f"{self.context}: {message}")

    def fixed(self, n: int, what: str = "bytes") -> bytes:
        """Read exactly ``n`` bytes (a fixed-length field such as a hash)."""
        end = self.offset + n
        if n < 0 or end > len(self._data):
            raise TruncatedInput(
                f"{self.context}: truncated: need {n} bytes for {what} at offset "
                f"{self.offset}, have {self.remaining}"
            )
        out = self._data[self.offset : end]
        self.offset = end
        return out

    def _int(self, width: int, what: str) -> int:
        return int.from_bytes(self.fixed(width, what), "little")

    def u8(self, what: str = "u8") -> int:
        return self._int(1, what)

    def u16(self, what: str = "u16") -> int:
        return self._int(2, what)

    def u32(self, what: str = "u32") -> int:
        return self._int(4, what)

    def u64(self, what: str = "u64") -> int:
        return self._int(8, what)

    def natural(self, what: str = "natural") -> int:
        """Read a GP natural number; reject non-canonical (over-long) forms."""
        start = self.offset
        prefix = self.u8(what)
        length = 0
        while length < 8 and prefix & (0x80 >> length):
            length += 1
        if length == 8:
            value = self._int(8, what)
            minimum = 1 << 56
        else:
            high = prefix & ((1 << (7 - length)) - 1)
            low = self._int(length, what) if length else 0
            value = (high << (8 * length)) | low
            minimum = 1 << (7 * length) if length else 0
        if value < minimum:
            self.offset = start
            raise self._fail(f"non-canonical natural-number encoding of {value} for {what}")
        return value

    def length(self, what: str, limit: int | None = None) -> int:
        """Read a ``len++`` prefix, bounded by ``limit`` and by the bytes left.

        The remaining-bytes bound stops a 9-byte prefix from claiming 2^64 items
        and making the decoder allocate or loop forever.
        """
        n = self.natural(f"length of {what}")
        if limit is not None and n > limit:
            raise self._fail(f"{what} has {n} elements, limit is {limit}")
        if n > self.remaining:
            raise TruncatedInput(
                f"{self.context}: truncated: {what} claims {n} elements but only "
                f"{self.remaining} bytes remain"
            )
        return n

    def bytes_with_len(self, what: str = "blob", limit: int | None = None) -> bytes:
        """Read ``len++[u8]``."""
        return self.fixed(self.length(what, limit), what)

    def string(self, max_len: int, what: str = "string") -> str:
        """Read JIP-3 ``String<N>``: length-bounded, valid UTF-8."""
        raw = self.bytes_with_len(what, max_len)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(f"{what} is not valid UTF-8") from exc

    def sequence(
        self, decode_item: Callable[[Reader], T], what: str = "sequence", limit: int | None = None
    ) -> list[T]:
        """Read ``len++[T]`` with ``decode_item`` reading one element."""
        count = self.length(what, limit)
        return [decode_item(self) for _ in range(count)]

    def rest(self) -> bytes:
        """Everything not read yet (a field whose length is implied by context)."""
        return self.fixed(self.remaining, "rest")

    def finish(self) -> None:
        """Fail if unread bytes remain."""
        if self.remaining:
            raise TrailingBytes(
                f"{self.context}: {self.remaining} unexpected trailing bytes "
                f"at offset {self.offset}"
            )


def decode_all(data: bytes, decode: Callable[[Reader], T], context: str) -> T:
    """Decode one whole message with ``decode`` and insist nothing is left over."""
    reader = Reader(data, context)
    value = decode(reader)
    reader.finish()
    return value


def join(parts: Sequence[bytes]) -> bytes:
    """Concatenate encoded fields (the GP ``++``)."""
    return b"".join(parts)
