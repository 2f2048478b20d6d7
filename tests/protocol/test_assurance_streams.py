"""CE 141 machines wired back to back through real framed bytes."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.assurance_streams import (
    AssuranceReceived,
    Ce141Action,
    CE141Client,
    CE141Server,
)
from jamsim.protocol.framing import encode_message
from jamsim.protocol.messages import Assurance
from jamsim.protocol.stream_protocols import (
    ResetStream,
    SendData,
    StreamCompleted,
    StreamFailed,
    split_kind,
)

A = Assurance(b"\x0a" * 32, b"\x01", b"\x02" * 64)  # 2 cores: a 1-byte bitfield


def sent(actions: Sequence[Ce141Action]) -> tuple[bytes, bool]:
    data = b"".join(a.data for a in actions if isinstance(a, SendData))
    return data, any(a.end_stream for a in actions if isinstance(a, SendData))


@given(st.integers(1, 40))
def test_exchange_completes_on_both_sides_any_chunking(chunk: int) -> None:
    client = CE141Client(A)
    wire, fin = sent(client.open())
    assert fin and wire[0] == 141
    _kind, rest = split_kind(wire)
    assert rest == encode_message(A.encode())
    server = CE141Server(core_count=2)
    out: list[Ce141Action] = []
    for i in range(0, len(rest), chunk):
        out += server.receive(rest[i : i + chunk])
    out += server.receive(b"", end_stream=True)
    assert [a.assurance for a in out if isinstance(a, AssuranceReceived)] == [A]
    reply, server_fin = sent(out)
    assert reply == b"" and server_fin
    assert isinstance(out[-1], StreamCompleted)
    assert client.receive(reply, end_stream=True) == [StreamCompleted()]


def test_two_assurances_on_one_stream_is_misbehaviour() -> None:
    server = CE141Server(core_count=2)
    out = server.receive(encode_message(A.encode()) * 2, end_stream=True)
    assert any(isinstance(a, ResetStream) for a in out)
    assert any(isinstance(a, StreamFailed) and a.misbehaved for a in out)


def test_fin_without_assurance_is_misbehaviour() -> None:
    out = CE141Server(core_count=2).receive(b"", end_stream=True)
    assert any(isinstance(a, StreamFailed) and a.misbehaved for a in out)


def test_oversized_message_is_refused_before_buffering() -> None:
    server = CE141Server(core_count=2)
    out = server.receive((10_000).to_bytes(4, "little"))
    assert any(isinstance(a, ResetStream) for a in out)


def test_acceptor_data_is_misbehaviour_and_reset_is_rejection() -> None:
    client = CE141Client(A)
    client.open()
    out = client.receive(b"x", end_stream=True)
    assert any(isinstance(a, StreamFailed) and a.misbehaved for a in out)
    other = CE141Client(A)
    other.open()
    failed = other.reset_by_peer(2)
    assert len(failed) == 1 and isinstance(failed[0], StreamFailed)
    assert not failed[0].misbehaved
