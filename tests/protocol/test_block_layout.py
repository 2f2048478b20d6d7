"""GP header / block / extrinsic layout and the CE 141 assurance, byte for byte."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.protocol.codec import encode_natural
from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError
from jamsim.protocol.messages import (
    EMPTY_EXTRINSIC,
    EMPTY_EXTRINSIC_HASH,
    Assurance,
    Block,
    Header,
    HeaderContext,
    bitfield_size,
    blake2b_256,
    decode_announcement,
    decode_assurance,
    decode_block,
    encode_extrinsic,
    epoch_mark_size,
    tickets_mark_size,
)

P, R, X = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
V, S = b"\x04" * 96, b"\x05" * 96


def test_header_fields_in_gp_order() -> None:
    h = Header(P, 0x01020304, 0x0A0B, prior_state_root=R, extrinsic_hash=X, vrf_signature=V,
               seal=S, offenders=(b"\x06" * 32,))
    wire = h.encode()
    assert wire == (
        P + R + X + b"\x04\x03\x02\x01" + b"\x00" + b"\x00" + b"\x0b\x0a" + V
        + b"\x01" + b"\x06" * 32 + S
    )
    assert h.hash() == blake2b_256(wire)


def test_header_without_markers_or_offenders_is_297_bytes() -> None:
    assert len(Header(P, 1).encode()) == 32 * 3 + 4 + 1 + 1 + 2 + 96 + 1 + 96 == 297


def test_markers_decode_with_the_context_sizes() -> None:
    ctx = HeaderContext(validator_count=3, epoch_length=2)
    epoch = b"\x07" * epoch_mark_size(3)
    tickets = b"\x08" * tickets_mark_size(2)
    assert len(epoch) == 64 + 3 * 64 and len(tickets) == 2 * 33
    h = Header(P, 9, 1, epoch_mark=epoch, tickets_mark=tickets)
    block = Block(h, EMPTY_EXTRINSIC)
    assert decode_block(block.encode(), ctx) == block
    with pytest.raises(PeerProtocolError):  # full-size context: the marker is truncated
        decode_block(block.encode())


def test_option_byte_other_than_0_or_1_is_the_peers_fault() -> None:
    wire = bytearray(Header(P, 1).encode())
    wire[100] = 2  # the epoch-marker option byte
    with pytest.raises(PeerProtocolError, match="option byte 2"):
        decode_block(bytes(wire) + EMPTY_EXTRINSIC)


def test_empty_extrinsic_layout_and_hash() -> None:
    assert EMPTY_EXTRINSIC == b"\x00" * 7  # tickets, preimages, guarantees, assurances, 3x disputes
    parts = [b"\x00", b"\x00", b"\x00", b"\x00", b"\x00\x00\x00"]
    assert blake2b_256(b"".join(blake2b_256(p) for p in parts)) == EMPTY_EXTRINSIC_HASH


def test_preimage_extrinsic_layout() -> None:
    blob = b"z" * 200
    wire, xhash = encode_extrinsic([(7, blob)])
    preimages = b"\x01" + b"\x07\x00\x00\x00" + encode_natural(200) + blob
    assert wire == b"\x00" + preimages + b"\x00\x00" + b"\x00\x00\x00"
    parts = [b"\x00", preimages, b"\x00", b"\x00", b"\x00\x00\x00"]
    assert xhash == blake2b_256(b"".join(blake2b_256(p) for p in parts))


def test_announcement_finds_the_end_of_a_header_with_offenders() -> None:
    from jamsim.protocol.messages import Announcement, Final

    ann = Announcement(Header(P, 3, offenders=(R, X)), Final(X, 2))
    assert decode_announcement(ann.encode()) == ann


def test_assurance_layout_full_configuration() -> None:
    a = Assurance(P, b"\xff" * 43, b"\x09" * 64)
    assert a.encode() == P + b"\xff" * 43 + b"\x09" * 64
    assert Assurance.size(341) == len(a.encode()) == 139
    assert decode_assurance(a.encode()) == a
    assert bitfield_size(2) == 1 and bitfield_size(8) == 1 and bitfield_size(9) == 2


@given(st.integers(1, 400), st.data())
def test_assurance_round_trip_any_core_count(cores: int, data: st.DataObject) -> None:
    field = data.draw(st.binary(min_size=bitfield_size(cores), max_size=bitfield_size(cores)))
    a = Assurance(P, field, b"\x01" * 64)
    assert decode_assurance(a.encode(), cores) == a
    with pytest.raises(PeerProtocolError):
        decode_assurance(a.encode() + b"\x00", cores)


@given(st.binary(max_size=400))
def test_random_assurance_bytes_only_raise_peer_protocol_error(data: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode_assurance(data)


def test_constructors_reject_wrong_sizes() -> None:
    with pytest.raises(ProtocolUsageError):
        Header(P, 1, vrf_signature=b"short")
    with pytest.raises(ProtocolUsageError):
        Assurance(P, b"", b"\x00" * 63)
