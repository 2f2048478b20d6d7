"""UP 0 / CE 128 messages: exact layouts, round trips, malformed -> PeerProtocolError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError
from jamsim.protocol.messages import (
    Announcement,
    Block,
    BlockRequest,
    Final,
    Handshake,
    Header,
    HeaderContext,
    RequestDirection,
    decode_announcement,
    decode_block,
    decode_block_request,
    decode_handshake,
)

hashes = st.binary(min_size=32, max_size=32)
slots = st.integers(min_value=0, max_value=0xFFFFFFFF)
finals = st.builds(Final, hashes, slots)
sigs = st.binary(min_size=96, max_size=96)
TINY = HeaderContext(validator_count=3, epoch_length=2)
headers = st.builds(
    Header,
    hashes,
    slots,
    st.integers(min_value=0, max_value=0xFFFF),
    prior_state_root=hashes,
    extrinsic_hash=hashes,
    vrf_signature=sigs,
    seal=sigs,
    offenders=st.lists(hashes, max_size=3).map(tuple),
)
handshakes = st.builds(Handshake, finals, st.lists(finals, max_size=8).map(tuple))
announcements = st.builds(Announcement, headers, finals)
requests = st.builds(
    BlockRequest, hashes, st.sampled_from(RequestDirection), st.integers(0, 0xFFFFFFFF)
)
blocks = st.builds(Block, headers, st.binary(max_size=64))


def test_block_request_layout_is_exactly_the_spec() -> None:
    req = BlockRequest(b"\xaa" * 32, RequestDirection.DESCENDING_INCLUSIVE, 7)
    assert req.encode() == b"\xaa" * 32 + b"\x01" + b"\x07\x00\x00\x00"
    assert len(req.encode()) == 37


def test_handshake_layout() -> None:
    hs = Handshake(Final(b"\x01" * 32, 5), (Final(b"\x02" * 32, 6),))
    assert hs.encode() == b"\x01" * 32 + b"\x05\0\0\0" + b"\x01" + b"\x02" * 32 + b"\x06\0\0\0"


@given(handshakes)
def test_handshake_round_trip(hs: Handshake) -> None:
    assert decode_handshake(hs.encode()) == hs


@given(announcements)
def test_announcement_round_trip(a: Announcement) -> None:
    assert decode_announcement(a.encode()) == a


@given(requests)
def test_request_round_trip(r: BlockRequest) -> None:
    assert decode_block_request(r.encode()) == r


@given(blocks)
def test_block_round_trip(b: Block) -> None:
    assert decode_block(b.encode()) == b
    assert b.hash() == b.header.hash()


DECODERS = [decode_handshake, decode_announcement, decode_block_request, decode_block]


@pytest.mark.parametrize("decode", DECODERS)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_peer_protocol_error(
    decode: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode(data)


@given(requests, st.data())
def test_truncation_and_trailing_bytes_rejected(r: BlockRequest, data: st.DataObject) -> None:
    wire = r.encode()
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(PeerProtocolError):
        decode_block_request(wire[:cut])
    with pytest.raises(PeerProtocolError, match="trailing"):
        decode_block_request(wire + b"\x00")


def test_invalid_direction_is_the_peers_fault() -> None:
    with pytest.raises(PeerProtocolError, match="invalid direction byte 2"):
        decode_block_request(b"\0" * 32 + b"\x02" + b"\0\0\0\0")


def test_constructors_validate_local_values() -> None:
    with pytest.raises(ProtocolUsageError):
        Final(b"short", 1)
    with pytest.raises(ProtocolUsageError):
        Final(b"\0" * 32, 1 << 32)
    with pytest.raises(ProtocolUsageError):
        BlockRequest(b"\0" * 32, 1, 3)  # type: ignore[arg-type]
