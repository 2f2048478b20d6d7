"""Sans-IO state machines for the experiments' extra CE streams, both sides.

A scenario's ``traffic: extra`` names CE kinds (128-255, not the ones the slot
traffic already uses) that every validator sends each slot. They follow the CE
pattern of ``simple.md`` with the simplest request/response::

    Sender -> Receiver
    --> Message (``size`` bytes)
    --> FIN
    <-- Message (empty)
    <-- FIN

The initiator writes the kind byte, one framed message and FIN; the acceptor
collects exactly one message, no larger than the size configured for that kind
(the cap is checked on the length prefix, before anything is buffered, as
:mod:`jamsim.protocol.limits` does for the protocol's own kinds), reports it,
and on the peer's FIN answers with an empty message and its own FIN. The
exchange succeeds only when both halves end cleanly. An acceptor is created only
for the kinds its traffic config lists; any other unknown kind stays refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from jamsim.protocol.framing import encode_message
from jamsim.protocol.stream_protocols import (
    SendData,
    StreamAction,
    StreamCompleted,
    _OneMessageAcceptor,
    _OneMessageSender,
)

__all__ = ["ExtraAction", "ExtraClient", "ExtraReceived", "ExtraServer"]


@dataclass(frozen=True, slots=True)
class ExtraReceived:
    """The acceptor has the peer's whole message (reported before the FIN arrives)."""

    kind: int
    payload: bytes


ExtraAction = StreamAction | ExtraReceived


class ExtraClient(_OneMessageSender[ExtraReceived]):
    """Initiator: send one message of kind ``kind`` and FIN, then take the empty reply
    and the acceptor's FIN."""

    def __init__(self, kind: int, payload: bytes) -> None:
        super().__init__(kind, payload, f"CE {kind}", replies=1)
        self.payload = payload

    def _reset_reason(self, code: int) -> str:
        return f"CE {self.kind} message rejected by peer (code {code})"


class ExtraServer(_OneMessageAcceptor[bytes, ExtraReceived]):
    """Acceptor (kind byte already consumed): one message of at most ``max_size``
    bytes, the peer's FIN, then our empty reply and FIN."""

    def __init__(self, kind: int, max_size: int) -> None:
        super().__init__(max_size, f"CE {kind}", "payload")
        self.kind = kind

    def _decode(self, raw: bytes) -> bytes:
        return raw

    def _report(self, message: bytes) -> ExtraReceived:
        return ExtraReceived(self.kind, message)

    def _answer(self, message: bytes) -> list[StreamAction]:
        return [SendData(encode_message(b""), end_stream=True), StreamCompleted()]
