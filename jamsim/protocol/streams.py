"""JAMNP-S stream kinds: the first byte the initiator sends on every stream.

0..127 are Unique Persistent (UP) kinds, 128..255 Common Ephemeral (CE) kinds
(``simple.md``, "Protocols and streams"). Unknown kinds are still valid UP/CE
bytes: :func:`classify` tells the pattern for any byte, :class:`StreamKind` names
the ones the protocol text defines.
"""

from __future__ import annotations

import enum

from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError

__all__ = ["CE_MIN", "StreamKind", "StreamPattern", "classify", "is_ce", "is_up", "kind_name"]

CE_MIN = 128


class StreamPattern(enum.Enum):
    UP = "UP"  # unique persistent: at most one per kind per connection
    CE = "CE"  # common ephemeral: one request/response, both halves FIN


class StreamKind(enum.IntEnum):
    """Stream kinds defined by JAMNP-S (``simple.md``)."""

    BLOCK_ANNOUNCEMENT = 0
    BLOCK_REQUEST = 128
    STATE_REQUEST = 129
    SAFROLE_TICKET_TO_PROXY = 131
    SAFROLE_TICKET_TO_ALL = 132
    WORK_PACKAGE_SUBMISSION = 133
    WORK_PACKAGE_SHARING = 134
    WORK_REPORT_DISTRIBUTION = 135
    WORK_REPORT_REQUEST = 136
    SHARD_DISTRIBUTION = 137
    AUDIT_SHARD_REQUEST = 138
    SEGMENT_SHARD_REQUEST = 139
    SEGMENT_SHARD_REQUEST_JUSTIFIED = 140
    ASSURANCE_DISTRIBUTION = 141
    PREIMAGE_ANNOUNCEMENT = 142
    PREIMAGE_REQUEST = 143
    AUDIT_ANNOUNCEMENT = 144
    JUDGMENT_PUBLICATION = 145

    @property
    def pattern(self) -> StreamPattern:
        return classify(self.value)

    @property
    def label(self) -> str:
        """``"UP 0 block announcement"`` style, as the protocol text names it."""
        return f"{self.pattern.value} {self.value} {self.name.lower().replace('_', ' ')}"


def _check(kind: int) -> None:
    if not 0 <= kind <= 255:
        raise ProtocolUsageError(f"stream kind must be one byte, got {kind}")


def is_up(kind: int) -> bool:
    """True for UP kinds (0..127)."""
    _check(kind)
    return kind < CE_MIN


def is_ce(kind: int) -> bool:
    """True for CE kinds (128..255)."""
    _check(kind)
    return kind >= CE_MIN


def classify(kind: int) -> StreamPattern:
    return StreamPattern.UP if is_up(kind) else StreamPattern.CE


def kind_name(kind: int) -> str:
    """A readable name for any kind byte, defined by the protocol or not."""
    try:
        return StreamKind(kind).label
    except ValueError:
        return f"{classify(kind).value} {kind} (unknown)"


def parse_kind_byte(data: bytes) -> int:
    """The stream kind from a stream's first byte; empty data is the peer's fault."""
    if not data:
        raise PeerProtocolError("stream ended before its kind byte")
    return data[0]


__all__ += ["parse_kind_byte"]
