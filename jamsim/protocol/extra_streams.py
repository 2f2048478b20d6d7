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

from jamsim.protocol.errors import PeerProtocolError
from jamsim.protocol.framing import encode_message, open_stream_bytes
from jamsim.protocol.stream_protocols import (
    SendData,
    StreamAction,
    StreamCompleted,
    _Machine,
    _OneMessageAcceptor,
    _State,
)

__all__ = ["ExtraAction", "ExtraClient", "ExtraReceived", "ExtraServer"]


@dataclass(frozen=True, slots=True)
class ExtraReceived:
    """The acceptor has the peer's whole message (reported before the FIN arrives)."""

    kind: int
    payload: bytes


ExtraAction = StreamAction | ExtraReceived


class ExtraClient(_Machine[ExtraReceived]):
    """Initiator: send one message of kind ``kind`` and FIN, then take the empty reply
    and the acceptor's FIN.

    The reply carries nothing to report, so :meth:`receive` only checks that it is
    exactly one empty message before the FIN (the message cap of 0 refuses any
    content on its length prefix)."""

    def __init__(self, kind: int, payload: bytes) -> None:
        super().__init__(0, f"CE {kind}")
        self.kind = kind
        self.payload = payload
        self._replied = False

    def open(self) -> list[ExtraAction]:
        self._start(f"CE {self.kind} message already sent")
        return [SendData(open_stream_bytes(self.kind, (self.payload,)), end_stream=True)]

    def receive(self, data: bytes, end_stream: bool = False) -> list[ExtraAction]:
        if not self._accepting(f"CE {self.kind}"):
            return []
        try:
            for _ in self._decoder.feed(data):
                if self._replied:
                    raise PeerProtocolError(f"CE {self.kind}: more than one reply")
                self._replied = True
            self._decoder.check()
            if not end_stream:
                return []
            self._decoder.end_of_stream()
            if not self._replied:
                raise PeerProtocolError(f"CE {self.kind}: finished without its reply")
        except PeerProtocolError as exc:
            return list(self._protocol_error(exc))
        self._state = _State.DONE
        return [StreamCompleted()]

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
