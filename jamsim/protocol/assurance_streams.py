"""Sans-IO state machines for CE 141 (assurance distribution), both sides.

``simple.md``::

    Assurer -> Validator
    --> Assurance
    --> FIN
    <-- FIN

The initiator writes kind byte, the one assurance message and FIN; the acceptor
collects exactly one message until the peer's FIN, reports it and answers with
its own FIN. The exchange succeeds only when both halves end cleanly (the CE
rule). Kept apart from :mod:`jamsim.protocol.stream_protocols` (UP 0, CE 128)
so each module stays about one protocol; the actions are the shared ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from jamsim.protocol.messages import FULL_CORE_COUNT, Assurance, decode_assurance
from jamsim.protocol.stream_protocols import (
    SendData,
    StreamAction,
    StreamCompleted,
    _OneMessageAcceptor,
    _OneMessageSender,
)
from jamsim.protocol.streams import StreamKind

__all__ = ["AssuranceReceived", "CE141Client", "CE141Server", "Ce141Action"]


@dataclass(frozen=True, slots=True)
class AssuranceReceived:
    """The acceptor decoded the peer's assurance (reported before the FIN arrives)."""

    assurance: Assurance


Ce141Action = StreamAction | AssuranceReceived


class CE141Client(_OneMessageSender[AssuranceReceived]):
    """Initiator: send one assurance and FIN, then wait for the acceptor's FIN (it
    sends no message)."""

    def __init__(self, assurance: Assurance) -> None:
        super().__init__(StreamKind.ASSURANCE_DISTRIBUTION, assurance.encode(), "CE 141",
                         replies=0)
        self.assurance = assurance

    def _reset_reason(self, code: int) -> str:
        return f"assurance rejected by peer (code {code})"


class CE141Server(_OneMessageAcceptor[Assurance, AssuranceReceived]):
    """Acceptor (kind byte already consumed): one assurance, peer FIN, our FIN."""

    def __init__(self, core_count: int = FULL_CORE_COUNT) -> None:
        super().__init__(Assurance.size(core_count), "CE 141", "assurance")
        self._core_count = core_count

    def _decode(self, raw: bytes) -> Assurance:
        return decode_assurance(raw, self._core_count)

    def _report(self, message: Assurance) -> AssuranceReceived:
        return AssuranceReceived(message)

    def _answer(self, message: Assurance) -> list[StreamAction]:
        return [SendData(b"", end_stream=True), StreamCompleted()]
