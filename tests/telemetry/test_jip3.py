"""JIP-3 codec: node info and every event kind jamsim emits round-trip; layouts."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.core.actions import EmitTelemetry
from jamsim.core.types import Direction, Side, TelemetryKind
from jamsim.identity import PeerAddress
from jamsim.protocol.errors import PeerProtocolError
from jamsim.telemetry.jip3 import (
    JAM_COMMON_ERA_UNIX,
    JamParameters,
    Jip3Encoder,
    Jip3Event,
    Jip3Session,
    NodeInfo,
    Status,
    decode_event,
    decode_node_info,
    encode_event,
    event_from_action,
    timestamp_from_unix,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
ADDR = PeerAddress("10.0.0.7", 40001)


def test_common_era_is_2025_01_01_noon_utc() -> None:
    assert JAM_COMMON_ERA_UNIX == 1_735_732_800
    assert timestamp_from_unix(JAM_COMMON_ERA_UNIX + 1.5) == 1_500_000


def test_jam_parameters_are_134_bytes_and_round_trip() -> None:
    params = JamParameters(core_count=341, validator_count=1023, epoch_length=600)
    raw = params.encode()
    assert len(raw) == 134
    assert raw[24:26] == (341).to_bytes(2, "little")  # C follows three u64 deposits
    info = NodeInfo(KEY_A, ADDR, b"\x11" * 32, params, note="hi")
    decoded = decode_node_info(info.encode())
    assert decoded == info


def test_node_info_layout_prefix() -> None:
    raw = NodeInfo(KEY_A, ADDR, b"\x11" * 32).encode()
    assert raw[0] == 0  # telemetry protocol version
    assert raw[135:167] == b"\x11" * 32  # genesis hash after the parameters
    assert raw[167:199] == KEY_A
    assert raw[199:215] == ADDR.ipv6_bytes() and raw[215:217] == (40001).to_bytes(2, "little")


EVENTS = [
    Jip3Event(1, 0, dropped=5, last_timestamp=9),
    Jip3Event(2, 10, status=Status(3, 2, 1, b"\x04\x00", 7, 1 << 40, 5, 99)),
    Jip3Event(3, 20, address=ADDR),
    Jip3Event(4, 21, address=PeerAddress("2001:db8::1", 9)),
    Jip3Event(5, 22, ref_event_id=3, reason="tls: bad certificate"),
    Jip3Event(6, 23, ref_event_id=3, peer=KEY_B),
    Jip3Event(7, 24, peer=KEY_B, address=ADDR),
    Jip3Event(8, 25, ref_event_id=6, reason="timeout"),
    Jip3Event(9, 26, ref_event_id=6),
    Jip3Event(10, 27, peer=KEY_B, side=Side.REMOTE, reason="idle timeout"),
    Jip3Event(11, 27, peer=KEY_B, side=None, reason=""),
    Jip3Event(12, 28, peer=KEY_B, reason="malformed CE 128 request"),
    Jip3Event(13, 62, opaque=b"\x01\x02\x03"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: str(e.kind))
def test_every_event_kind_round_trips(event: Jip3Event) -> None:
    assert decode_event(encode_event(event, core_count=2), core_count=2) == event


def test_connecting_out_layout() -> None:
    raw = encode_event(Jip3Event(1, 24, peer=KEY_B, address=ADDR))
    assert raw == (1).to_bytes(8, "little") + b"\x18" + KEY_B + ADDR.ipv6_bytes() + b"\x41\x9c"


def test_long_reasons_are_truncated_below_128_bytes() -> None:
    raw = encode_event(Jip3Event(1, 28, peer=KEY_B, reason="é" * 100))
    assert decode_event(raw).reason == "é" * 63  # 126 bytes; a 2-byte char won't fit in 127
    raw = encode_event(Jip3Event(1, 28, peer=KEY_B, reason="x" * 300))
    assert raw[9 + 32] == 127  # one-byte length prefix, same in GP codec and LEB128


def test_decoder_accepts_a_full_string_128_reason() -> None:
    raw = (1).to_bytes(8, "little") + b"\x1c" + KEY_B + b"\x80\x80" + b"y" * 128
    assert decode_event(raw).reason == "y" * 128


@given(st.binary(max_size=120), st.integers(0, 4))
def test_random_bytes_only_raise_peer_protocol_error(data: bytes, cores: int) -> None:
    with contextlib.suppress(PeerProtocolError):
        decode_event(data, cores)
    with contextlib.suppress(PeerProtocolError):
        decode_node_info(data)


@pytest.mark.parametrize("bad", [b"\x02", b"\x01\x05"])
def test_invalid_option_side_rejected(bad: bytes) -> None:
    raw = (0).to_bytes(8, "little") + b"\x1b" + KEY_B + bad + b"\x00"
    with pytest.raises(PeerProtocolError):
        decode_event(raw)


def test_from_manager_action_to_bytes_and_back_to_a_row() -> None:
    keys = {KEY_A: 0, KEY_B: 1}
    start = timestamp_from_unix(JAM_COMMON_ERA_UNIX + 100)
    actions = [
        EmitTelemetry(TelemetryKind.CONNECTING_OUT, 0, KEY_B, 7, Direction.OUTBOUND, ADDR),
        EmitTelemetry(
            TelemetryKind.CONNECT_OUT_FAILED, 1, KEY_B, 7, reason="timeout", ref_event_id=0
        ),
        EmitTelemetry(TelemetryKind.CONNECTED_OUT, 4, KEY_B, 9, ref_event_id=0),
    ]
    encoder = Jip3Encoder(core_count=2)
    session = Jip3Session(keys, start)
    assert session.handle(NodeInfo(KEY_A, ADDR).encode()) is None
    rows = []
    for i, action in enumerate(actions):
        ev = event_from_action(action, start + 1_000_000 * (i + 1))
        for content in encoder.encode(ev, action.event_id):
            row = session.handle(content)
            assert row is not None
            rows.append(row)
    assert [r.event for r in rows] == [
        "connecting_out",
        "connect_out_failed",
        "dropped",
        "connected_out",
    ]
    assert [r.event_id for r in rows] == [0, 1, 2, 4]  # the gap of 2 is a "dropped" event
    assert rows[1].peer == 1 and rows[1].direction == "out" and rows[1].reason == "timeout"
    assert rows[3].peer == 1 and rows[3].ref_event_id == 0 and rows[3].time == 3.0
    assert rows[0].node == 0


def test_session_requires_node_info_first() -> None:
    session = Jip3Session({}, 0)
    with pytest.raises(PeerProtocolError):
        session.handle(encode_event(Jip3Event(1, 26, ref_event_id=0)))
