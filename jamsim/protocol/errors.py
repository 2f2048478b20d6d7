"""Errors of the JAMNP-S codecs, split by whose fault they are (h11 style).

``PeerProtocolError`` means the *remote* sent bytes we cannot accept: the caller
resets the stream (or closes the connection) with ``reason`` and may emit a JIP-3
"peer misbehaved" event. ``ProtocolUsageError`` means *our* caller asked for
something unencodable; it is a bug on this side, never the peer's.
"""

from __future__ import annotations

from jamsim.core.errors import JamsimError, UsageError

__all__ = [
    "MessageTooLarge",
    "PeerProtocolError",
    "ProtocolUsageError",
    "TrailingBytes",
    "TruncatedInput",
]


class PeerProtocolError(JamsimError):
    """The remote peer sent malformed or disallowed data.

    ``reason`` is short, human readable and safe to put on the wire as a reset
    reason or into a JIP-3 ``Reason`` (String<128>).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TruncatedInput(PeerProtocolError):
    """A message ended before a field it must contain."""


class TrailingBytes(PeerProtocolError):
    """A message carried bytes after its last field."""


class MessageTooLarge(PeerProtocolError):
    """A length prefix announced more bytes than the configured maximum."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class ProtocolUsageError(UsageError):
    """Our caller asked to encode a value the wire format cannot carry."""
