"""Framing: any chunking yields the same messages; limits fire at the prefix."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.errors import MessageTooLarge, PeerProtocolError
from jamsim.protocol.framing import (
    MessageDecoder,
    StreamDecoder,
    encode_message,
    encode_messages,
    open_stream_bytes,
)
from jamsim.protocol.streams import StreamKind, is_ce, is_up, kind_name


def chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
)
def test_any_chunking_round_trips(messages: list[bytes], cuts: list[int]) -> None:
    wire = encode_messages(messages)
    decoder = MessageDecoder()
    out: list[bytes] = []
    for piece in chunk(wire, cuts):
        out.extend(decoder.feed(piece))
    decoder.end_of_stream()
    assert out == messages
    assert decoder.at_boundary


def test_wire_format_is_u32_le_size_then_content() -> None:
    assert encode_message(b"abc") == b"\x03\x00\x00\x00abc"
    assert encode_message(b"") == b"\x00\x00\x00\x00"


def test_too_large_raises_as_soon_as_prefix_is_complete() -> None:
    decoder = MessageDecoder(max_message_size=10)
    assert decoder.feed(b"\x0b\x00\x00") == []
    with pytest.raises(MessageTooLarge, match="11 bytes exceeds the 10-byte limit") as info:
        decoder.feed(b"\x00")
    assert info.value.size == 11
    with pytest.raises(MessageTooLarge):  # poisoned: no resynchronising on garbage
        decoder.feed(b"")


@pytest.mark.parametrize("tail", [b"\x01", b"\x05\x00\x00\x00ab"])
def test_fin_inside_a_message_is_a_protocol_error(tail: bytes) -> None:
    decoder = MessageDecoder()
    decoder.feed(encode_message(b"ok") + tail)
    with pytest.raises(PeerProtocolError, match="stream ended inside a message"):
        decoder.end_of_stream()


def test_stream_decoder_reads_kind_byte_first() -> None:
    wire = open_stream_bytes(StreamKind.BLOCK_REQUEST, [b"req"])
    decoder = StreamDecoder()
    assert decoder.feed(wire[:1]) == []
    assert decoder.kind == 128
    assert decoder.feed(wire[1:]) == [b"req"]
    with pytest.raises(PeerProtocolError, match="kind byte"):
        StreamDecoder().end_of_stream()


def test_stream_kind_patterns_and_names() -> None:
    assert is_up(0) and is_up(127) and not is_up(128)
    assert is_ce(128) and is_ce(255) and not is_ce(0)
    assert kind_name(0) == "UP 0 block announcement"
    assert kind_name(128) == "CE 128 block request"
    assert kind_name(133) == "CE 133 work package submission"
    assert kind_name(200) == "CE 200 (unknown)"


def test_messages_before_an_oversized_prefix_are_still_delivered() -> None:
    decoder = MessageDecoder(max_message_size=8)
    wire = encode_message(b"one") + encode_message(b"two") + (9).to_bytes(4, "little")
    assert decoder.feed(wire) == [b"one", b"two"]
    assert isinstance(decoder.error, MessageTooLarge)
    with pytest.raises(MessageTooLarge):
        decoder.check()
    with pytest.raises(MessageTooLarge):
        decoder.end_of_stream()
