"""JAMNP-S wire format: GP codec, framing, stream kinds, UP 0 / CE 128 messages and
the sans-IO per-stream state machines. Pure: no I/O, no clock."""

from jamsim.protocol.errors import MessageTooLarge, PeerProtocolError, ProtocolUsageError
from jamsim.protocol.framing import MessageDecoder, encode_message
from jamsim.protocol.streams import StreamKind, is_ce, is_up

__all__ = [
    "MessageDecoder",
    "MessageTooLarge",
    "PeerProtocolError",
    "ProtocolUsageError",
    "StreamKind",
    "encode_message",
    "is_ce",
    "is_up",
]
