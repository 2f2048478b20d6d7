"""Extra CE machines wired back to back through real framed bytes."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.extra_streams import ExtraAction, ExtraClient, ExtraReceived, ExtraServer
from jamsim.protocol.framing import encode_message
from jamsim.protocol.stream_protocols import (
    ResetStream,
    SendData,
    StreamCompleted,
    StreamFailed,
    split_kind,
)


def sent(actions: Sequence[ExtraAction]) -> tuple[bytes, bool]:
    data = b"".join(a.data for a in actions if isinstance(a, SendData))
    return data, any(a.end_stream for a in actions if isinstance(a, SendData))


def misbehaved(actions: Sequence[ExtraAction]) -> bool:
    return any(isinstance(a, ResetStream) for a in actions) and \
        any(isinstance(a, StreamFailed) and a.misbehaved for a in actions)


@given(st.integers(1, 40), st.binary(max_size=300))
def test_exchange_completes_on_both_sides_any_chunking(chunk: int, payload: bytes) -> None:
    client = ExtraClient(200, payload)
    wire, fin = sent(client.open())
    kind, rest = split_kind(wire)
    assert fin and kind == 200 and rest == encode_message(payload)
    server = ExtraServer(200, max_size=300)
    out: list[ExtraAction] = []
    for i in range(0, len(rest), chunk):
        out += server.receive(rest[i:i + chunk])
    out += server.receive(b"", end_stream=True)
    assert [a for a in out if isinstance(a, ExtraReceived)] == [ExtraReceived(200, payload)]
    reply, server_fin = sent(out)
    assert reply == encode_message(b"") and server_fin  # an empty message, then FIN
    assert isinstance(out[-1], StreamCompleted)
    assert client.receive(reply[:2]) == []
    assert client.receive(reply[2:], end_stream=True) == [StreamCompleted()]


def test_a_message_over_the_configured_size_is_refused_before_buffering() -> None:
    server = ExtraServer(200, max_size=10)
    out = server.receive(encode_message(bytes(11))[:4])  # the prefix alone
    assert misbehaved(out) and server.buffered <= 4  # the prefix, never the content


def test_two_messages_or_none_is_misbehaviour() -> None:
    assert misbehaved(ExtraServer(200, 10).receive(encode_message(b"ab") * 2, end_stream=True))
    assert misbehaved(ExtraServer(200, 10).receive(b"", end_stream=True))


def test_the_sender_wants_exactly_one_empty_reply() -> None:
    for reply in (b"", encode_message(b"x"), encode_message(b"") * 2):
        client = ExtraClient(201, b"hi")
        client.open()
        assert misbehaved(client.receive(reply, end_stream=True)), reply
