"""GP codec: fixed-width ints, natural numbers, len++ sequences, Reader errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.codec import (
    MAX_U64,
    Reader,
    decode_natural,
    encode_natural,
    encode_sequence,
    encode_string,
    u16,
    u32,
    u64,
)
from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError, TruncatedInput

# Hand-computed from the GP definition (first byte = 2^8 - 2^(8-l) + x >> 8l).
NATURAL_VECTORS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8080"),
    (255, "80ff"),
    (0x3FFF, "bfff"),
    (0x4000, "c00040"),
    ((1 << 21) - 1, "dfffff"),
    (1 << 21, "e0000020"),
    ((1 << 56) - 1, "feffffffffffffff"),
    (1 << 56, "ff0000000000000001"),
    (MAX_U64, "ffffffffffffffffff"),
]


@pytest.mark.parametrize(("value", "hexed"), NATURAL_VECTORS)
def test_natural_vectors(value: int, hexed: str) -> None:
    assert encode_natural(value).hex() == hexed
    assert decode_natural(bytes.fromhex(hexed)) == (value, len(hexed) // 2)


@given(st.integers(min_value=0, max_value=MAX_U64))
def test_natural_round_trip_and_length(value: int) -> None:
    encoded = encode_natural(value)
    assert decode_natural(encoded + b"tail") == (value, len(encoded))
    assert 1 <= len(encoded) <= 9


@pytest.mark.parametrize("hexed", ["8005", "c00000", "e0ffff0f", "ff0000000000000000"])
def test_non_canonical_naturals_rejected(hexed: str) -> None:
    """Over-long encodings of small values would make decoding non-injective."""
    with pytest.raises(PeerProtocolError, match="non-canonical"):
        decode_natural(bytes.fromhex(hexed))


@pytest.mark.parametrize("hexed", ["", "80", "c000", "ff00"])
def test_truncated_natural(hexed: str) -> None:
    with pytest.raises(TruncatedInput):
        decode_natural(bytes.fromhex(hexed))


def test_fixed_width_little_endian() -> None:
    assert u16(0x0102) == b"\x02\x01"
    assert u32(1) == b"\x01\x00\x00\x00"
    assert u64(MAX_U64) == b"\xff" * 8
    with pytest.raises(ProtocolUsageError):
        u32(1 << 32)
    with pytest.raises(ProtocolUsageError):
        encode_natural(-1)


@given(st.lists(st.integers(min_value=0, max_value=0xFFFF), max_size=300))
def test_sequence_round_trip(items: list[int]) -> None:
    data = encode_sequence(items, u16)
    r = Reader(data, "seq")
    assert r.sequence(lambda rr: rr.u16(), "items") == items
    r.finish()


def test_reader_errors_name_context_and_field() -> None:
    r = Reader(b"\x01\x02", "CE 128 request")
    with pytest.raises(TruncatedInput, match=r"CE 128 request: truncated: need 4 bytes for slot"):
        r.u32("slot")
    with pytest.raises(PeerProtocolError, match="trailing"):
        _finish_after_u8(b"\x00\x01")


def _finish_after_u8(data: bytes) -> None:
    r = Reader(data)
    r.u8()
    r.finish()


def test_huge_length_prefix_is_rejected_without_allocating() -> None:
    r = Reader(encode_natural(MAX_U64) + b"abc", "blob")
    with pytest.raises(TruncatedInput, match="claims"):
        r.bytes_with_len("payload")


def test_string_limits_and_utf8() -> None:
    assert Reader(encode_string("héllo", 32)).string(32) == "héllo"
    with pytest.raises(ProtocolUsageError):
        encode_string("x" * 33, 32)
    with pytest.raises(PeerProtocolError, match="limit"):
        Reader(encode_string("x" * 33, 64)).string(32)
    with pytest.raises(PeerProtocolError, match="UTF-8"):
        Reader(b"\x02\xff\xfe").string(32)
