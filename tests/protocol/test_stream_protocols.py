"""Per-stream state machines, wired back to back through real framed bytes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.assurance_streams import CE141Client
from jamsim.protocol.errors import ProtocolUsageError
from jamsim.protocol.framing import encode_message
from jamsim.protocol.limits import MAX_BLOCK_SIZE
from jamsim.protocol.messages import (
    Announcement,
    Assurance,
    Block,
    BlockRequest,
    Final,
    Handshake,
    Header,
    RequestDirection,
)
from jamsim.protocol.stream_protocols import (
    CE128Client,
    CE128Server,
    MessageReceived,
    ResetCode,
    ResetStream,
    SendData,
    StreamAction,
    StreamCompleted,
    StreamFailed,
    UP0Stream,
    UpStreamRegistry,
    request_data,
    split_kind,
)
from jamsim.protocol.streams import StreamKind

GENESIS = b"\0" * 32


def chain(n: int) -> list[Block]:
    out, parent = [], GENESIS
    for slot in range(1, n + 1):
        block = Block(Header(parent, slot, slot % 6), b"x" * slot)
        out.append(block)
        parent = block.hash()
    return out


def sent(actions: Sequence[StreamAction]) -> tuple[bytes, bool]:
    data = b"".join(a.data for a in actions if isinstance(a, SendData))
    fin = any(a.end_stream for a in actions if isinstance(a, SendData))
    return data, fin


def ascending_source(blocks: list[Block]):  # type: ignore[no-untyped-def]
    by_hash = {b.hash(): i for i, b in enumerate(blocks)}

    def source(req: BlockRequest) -> list[Block] | None:
        if req.hash == GENESIS:
            start = 0
        elif req.hash in by_hash:
            start = by_hash[req.hash] + 1
        else:
            return None
        return blocks[start : start + req.max_blocks]

    return source


@given(st.integers(0, 12), st.integers(1, 20), st.integers(1, 50))
def test_ce128_exchange_any_chunking(n: int, max_blocks: int, chunk: int) -> None:
    blocks = chain(n)
    client = CE128Client(BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, max_blocks))
    wire, fin = sent(client.open())
    assert fin and wire[0] == 128
    _kind, rest = split_kind(wire)
    server = CE128Server(ascending_source(blocks))
    server_out: list[StreamAction] = []
    for i in range(0, len(rest), chunk):
        server_out += server.receive(rest[i : i + chunk])
    server_out += server.receive(b"", end_stream=True)
    response, server_fin = sent(server_out)
    assert server_fin and isinstance(server_out[-1], StreamCompleted)
    client_out: list[StreamAction] = []
    for i in range(0, len(response), chunk):
        client_out += client.receive(response[i : i + chunk])
    client_out += client.receive(b"", end_stream=True)
    expected = tuple(blocks[:max_blocks])
    assert client_out[-1] == StreamCompleted(expected)
    assert [a.message for a in client_out if isinstance(a, MessageReceived)] == list(expected)


def test_unsatisfiable_request_is_reset_and_client_sees_rejection() -> None:
    server = CE128Server(ascending_source(chain(3)))
    req = BlockRequest(b"\x09" * 32, RequestDirection.ASCENDING_EXCLUSIVE, 5)
    out = server.receive(encode_message(req.encode()), end_stream=True)
    assert isinstance(out[-2], ResetStream) and out[-2].code is ResetCode.REJECTED
    assert out[-1] == StreamFailed("cannot satisfy block request")
    client = CE128Client(req)
    client.open()
    failed = client.reset_by_peer(ResetCode.REJECTED)
    assert failed == [StreamFailed("block request rejected by peer (code 2)")]
    assert client.receive(b"late") == []


def test_server_rejects_garbage_and_two_requests() -> None:
    server = CE128Server(ascending_source([]))
    out = server.receive(b"\x03\x00\x00\x00abc", end_stream=True)
    assert isinstance(out[0], ResetStream) and out[0].code is ResetCode.PROTOCOL_ERROR
    assert isinstance(out[1], StreamFailed) and out[1].misbehaved
    req = BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, 1).encode()
    out = CE128Server(ascending_source([])).receive(encode_message(req) * 2)
    assert "more than one request" in out[-1].reason  # type: ignore[union-attr]


def test_server_limits_request_size() -> None:
    out = CE128Server(ascending_source([])).receive(b"\xff\xff\x00\x00")
    assert isinstance(out[-1], StreamFailed) and "exceeds" in out[-1].reason


def test_client_rejects_too_many_blocks_and_fin_mid_message() -> None:
    blocks = chain(3)
    client = CE128Client(BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, 2))
    client.open()
    out = client.receive(b"".join(encode_message(b.encode()) for b in blocks))
    assert isinstance(out[-1], StreamFailed) and out[-1].misbehaved
    assert "more than the 2 blocks" in out[-1].reason
    client = CE128Client(BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, 2))
    client.open()
    out = client.receive(encode_message(blocks[0].encode())[:-1], end_stream=True)
    assert isinstance(out[-1], StreamFailed) and "inside a message" in out[-1].reason


@given(st.binary(max_size=120), st.booleans())
def test_random_bytes_only_produce_protocol_failures(data: bytes, fin: bool) -> None:
    for machine in (
        CE128Server(ascending_source(chain(2))),
        _opened(CE128Client(BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, 9))),
        _opened(UP0Stream(Handshake(Final(GENESIS, 0)), initiator=True)),
    ):
        for action in machine.receive(data, fin):
            assert isinstance(
                action, SendData | ResetStream | MessageReceived | StreamCompleted | StreamFailed
            )


def _opened(machine: CE128Client | UP0Stream) -> CE128Client | UP0Stream:
    machine.open()
    return machine


def test_up0_handshake_then_announcements_both_directions() -> None:
    final = Final(GENESIS, 0)
    a = UP0Stream(Handshake(final, (Final(b"\x01" * 32, 3),)), initiator=True)
    b = UP0Stream(Handshake(final), initiator=False)
    a_wire, _ = sent(a.open())
    kind, rest = split_kind(a_wire)
    assert kind == 0
    b_wire, _ = sent(b.open())
    got_b = b.receive(rest)
    got_a = a.receive(b_wire)
    assert got_b == [MessageReceived(Handshake(final, (Final(b"\x01" * 32, 3),)))]
    assert got_a == [MessageReceived(Handshake(final))]
    ann = Announcement(chain(1)[0].header, final)
    data, _ = sent(a.announce(ann))
    assert b.receive(data) == [MessageReceived(ann)]
    assert b.peer_handshake is not None


def test_up0_announcement_before_handshake_is_misbehaviour() -> None:
    b = UP0Stream(Handshake(Final(GENESIS, 0)), initiator=False)
    b.open()
    ann = Announcement(chain(1)[0].header, Final(GENESIS, 0))
    out = b.receive(encode_message(ann.encode()))
    assert isinstance(out[0], ResetStream)
    assert isinstance(out[1], StreamFailed) and out[1].misbehaved


def test_up0_peer_fin_ends_stream_without_blame() -> None:
    b = UP0Stream(Handshake(Final(GENESIS, 0)), initiator=False)
    b.open()
    out = b.receive(encode_message(Handshake(Final(GENESIS, 0)).encode()), end_stream=True)
    assert out[-1] == StreamFailed("peer closed the UP 0 stream")
    # Our half is finished too, so the stream (and its QUIC credit) is released.
    assert out[-2] == SendData(b"", end_stream=True)


def test_up_registry_keeps_greatest_stream_id() -> None:
    reg = UpStreamRegistry()
    assert reg.register(0, 4) == []
    assert reg.register(0, 8) == [4]
    assert reg.register(0, 0) == [0]  # an older stream arriving late is reset
    assert reg.current(0) == 8
    reg.remove(0, 4)  # not current: ignored
    assert reg.current(0) == 8
    reg.remove(0, 8)
    assert reg.current(0) is None


@given(st.integers(0, 6), st.integers(1, 40))
def test_up0_announcements_survive_any_chunking(n: int, chunk: int) -> None:
    final = Final(GENESIS, 0)
    a = UP0Stream(Handshake(final), initiator=True)
    b = UP0Stream(Handshake(final), initiator=False)
    wire, _ = sent(a.open())
    anns = [Announcement(blk.header, final) for blk in chain(n)]
    for ann in anns:
        wire += sent(a.announce(ann))[0]
    wire += sent(a.close())[0]
    _, rest = split_kind(wire)
    b.open()
    got: list[StreamAction] = []
    for i in range(0, len(rest), chunk):
        got += b.receive(rest[i : i + chunk])
    got += b.receive(b"", end_stream=True)
    messages = [x.message for x in got if isinstance(x, MessageReceived)]
    assert messages == [Handshake(final), *anns]
    assert got[-1] == StreamFailed("peer closed the UP 0 stream")


def test_up0_local_close_then_peer_fin_completes() -> None:
    a = UP0Stream(Handshake(Final(GENESIS, 0)), initiator=True)
    a.open()
    assert a.close() == [SendData(b"", end_stream=True)]
    out = a.receive(encode_message(Handshake(Final(GENESIS, 0)).encode()), end_stream=True)
    assert out[-1] == StreamCompleted()


def test_a_block_of_the_maximum_size_fits_and_one_byte_more_is_refused() -> None:
    header = Header(GENESIS, 1, 0)
    overhead = len(Block(header, b"").encode())
    # The extrinsic's len++ prefix grows with its length: find the size that fills exactly.
    extrinsic_len = MAX_BLOCK_SIZE - overhead
    while len(Block(header, b"x" * extrinsic_len).encode()) > MAX_BLOCK_SIZE:
        extrinsic_len -= 1
    big = Block(header, b"x" * extrinsic_len)
    wire = encode_message(big.encode())
    assert len(wire) - 4 == MAX_BLOCK_SIZE
    request = BlockRequest(big.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 1)
    client = CE128Client(request, max_message_size=MAX_BLOCK_SIZE)
    client.open()
    got = []
    for at in range(0, len(wire), 1 << 20):  # as QUIC would deliver it, in pieces
        got += client.receive(wire[at : at + (1 << 20)])
    got += client.receive(b"", end_stream=True)
    assert got[-1] == StreamCompleted((big,))

    too_big = CE128Client(request, max_message_size=MAX_BLOCK_SIZE)
    too_big.open()
    out = too_big.receive((MAX_BLOCK_SIZE + 1).to_bytes(4, "little"))
    assert out[0] == ResetStream(ResetCode.PROTOCOL_ERROR, out[0].reason)  # type: ignore[union-attr]
    assert isinstance(out[1], StreamFailed) and out[1].misbehaved


def _initiators() -> list[CE128Client | CE141Client | UP0Stream]:
    return [UP0Stream(Handshake(Final(GENESIS, 0)), initiator=True),
            CE128Client(BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, 1)),
            CE141Client(Assurance(b"\x0a" * 32, b"\x01", b"\x02" * 64))]


def test_initiators_refuse_a_second_open_and_data_before_open() -> None:
    """The open-once and data-before-open rules every initiating machine shares."""
    for machine, protocol in zip(_initiators(), ("UP 0", "CE 128", "CE 141"), strict=True):
        with pytest.raises(ProtocolUsageError, match=f"open\\(\\) the {protocol} stream"):
            machine.receive(b"\x00")
        machine.open()
        with pytest.raises(ProtocolUsageError, match="already"):
            machine.open()
        machine.cancel()
        assert machine.receive(b"\x00", end_stream=True) == []  # done: ignored


def test_a_ce_request_is_kind_byte_message_and_fin() -> None:
    request = BlockRequest(GENESIS, RequestDirection.ASCENDING_EXCLUSIVE, 3)
    [sent] = CE128Client(request).open()
    assert sent == request_data(StreamKind.BLOCK_REQUEST, request.encode())
    assert sent == SendData(bytes((StreamKind.BLOCK_REQUEST,)) + encode_message(request.encode()),
                            end_stream=True)
