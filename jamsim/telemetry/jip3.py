"""JIP-3 telemetry wire format: node information and the events jamsim emits.

Authority: ``JIP-3.md`` in polkadot-fellows/JIPs (newest revision, which puts the
JAM parameters, the genesis hash and the GP version into node information).
Everything here is pure: bytes in, values out.

* Messages are framed exactly like JAMNP-S (``u32 LE size ++ content``); use
  :func:`jamsim.protocol.framing.encode_message` / ``MessageDecoder``.
* The first message on a connection is :class:`NodeInfo`; every later one is an
  event: ``Timestamp (u64 us since the JAM Common Era) ++ u8 discriminator ++ fields``.
* Event ids are implicit: 0 for the first event, +1 per event, +N after a
  "dropped" event replacing N events. :class:`Jip3Session` (the server side)
  assigns them; :class:`Jip3Encoder` (the node side) realigns with a "dropped"
  event when the node's own ids skip ahead (allowed by the JIP, e.g. after a
  reconnect).

Decoded here: 0 dropped, 10 status, 20-28 networking. Any other discriminator is
kept as an *opaque* event (its body is framed, so skipping it is safe and the id
count stays right): a real JAM node pointed at jamsim's collector still yields a
correct networking timeline.
"""

from __future__ import annotations

import datetime
import importlib.metadata
from dataclasses import dataclass, field

from jamsim.core.actions import EmitTelemetry
from jamsim.core.types import Side, TelemetryKind
from jamsim.identity import PeerAddress
from jamsim.protocol.codec import Reader, decode_all, encode_string, u8, u16, u32, u64
from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError
from jamsim.protocol.messages import GRAY_PAPER_VERSION
from jamsim.telemetry.records import EventRecord

__all__ = [
    "JAM_COMMON_ERA",
    "JAM_COMMON_ERA_UNIX",
    "JIP3_PROTOCOL_VERSION",
    "JamParameters",
    "Jip3Encoder",
    "Jip3Event",
    "Jip3Session",
    "NodeInfo",
    "Status",
    "decode_event",
    "decode_node_info",
    "encode_event",
    "event_from_action",
    "event_label",
    "timestamp_from_unix",
    "unix_from_timestamp",
]

JIP3_PROTOCOL_VERSION = 0
try:
    _JAMSIM_VERSION = importlib.metadata.version("jamsim")
except importlib.metadata.PackageNotFoundError:  # running from a bare source tree
    _JAMSIM_VERSION = "0"
JAM_COMMON_ERA = datetime.datetime(2025, 1, 1, 12, 0, tzinfo=datetime.UTC)
JAM_COMMON_ERA_UNIX = 1_735_732_800
"""Unix seconds of the JAM Common Era: 2025-01-01 12:00:00 UTC."""

DROPPED = 0
REASON_MAX = 128
REASON_WIRE_MAX = 127
"""Reasons we *send* are cut to 127 bytes: a length below 128 is one byte that GP's
natural-number codec and LEB128 encode identically. jamtart (paritytech/jamtart at
b7b26ba) decodes ``len++`` prefixes as LEB128, which differs from the GP codec from
128 up; staying below keeps jamsim's telemetry readable by both. We still *accept*
the full String<128>."""
NAME_MAX = 32
GP_VERSION_MAX = 16
NOTE_MAX = 512
NOTE_WIRE_MAX = 127
"""The node-information note we *send* is cut to 127 bytes, for the same reason as
``REASON_WIRE_MAX``; the other strings are bounded below 128 by their type."""
UNSPECIFIED_ADDRESS = PeerAddress("::", 0)


def timestamp_from_unix(unix_seconds: float) -> int:
    """JIP-3 Timestamp (microseconds since the JAM Common Era) from Unix time."""
    return max(0, round((unix_seconds - JAM_COMMON_ERA_UNIX) * 1_000_000))


def unix_from_timestamp(timestamp_us: int) -> float:
    return JAM_COMMON_ERA_UNIX + timestamp_us / 1_000_000


def _truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


# ---------------------------------------------------------------- JAM parameters

_PARAM_WIDTHS: tuple[tuple[str, int], ...] = (
    ("deposit_per_item", 8),  # B_I
    ("deposit_per_byte", 8),  # B_L
    ("deposit_per_account", 8),  # B_S
    ("core_count", 2),  # C
    ("min_turnaround_period", 4),  # D
    ("epoch_length", 4),  # E
    ("max_accumulate_gas", 8),  # G_A
    ("max_is_authorized_gas", 8),  # G_I
    ("max_refine_gas", 8),  # G_R
    ("block_gas_limit", 8),  # G_T
    ("recent_block_count", 2),  # H
    ("max_work_items", 2),  # I
    ("max_dependencies", 2),  # J
    ("max_tickets_per_block", 2),  # K
    ("max_lookup_anchor_age", 4),  # L
    ("ticket_attempts", 2),  # N
    ("auth_pool_size", 2),  # O
    ("slot_period", 2),  # P
    ("auth_queue_size", 2),  # Q
    ("rotation_period", 2),  # R
    ("max_extrinsics", 2),  # T
    ("availability_timeout", 2),  # U
    ("validator_count", 2),  # V
    ("max_authorizer_code_size", 4),  # W_A
    ("max_bundle_size", 4),  # W_B
    ("max_service_code_size", 4),  # W_C
    ("erasure_piece_size", 4),  # W_E
    ("max_imports", 4),  # W_M
    ("segment_piece_count", 4),  # W_P
    ("max_report_elective_data", 4),  # W_R
    ("transfer_memo_size", 4),  # W_T
    ("max_exports", 4),  # W_X
    ("ticket_submission_end", 4),  # Y
)


@dataclass(frozen=True, slots=True)
class JamParameters:
    """``JAM Parameters``: the protocol constants as the GP ``fetch`` host call
    returns them (selector 0), 134 bytes of fixed-width little-endian fields.

    Defaults are the GP "tiny" configuration jamsim's small testnets use (V=6,
    C=2, E=12, P=6). The collector needs ``core_count`` to decode status events.
    """

    deposit_per_item: int = 10
    deposit_per_byte: int = 1
    deposit_per_account: int = 100
    core_count: int = 2
    min_turnaround_period: int = 32
    epoch_length: int = 12
    max_accumulate_gas: int = 10_000_000
    max_is_authorized_gas: int = 50_000_000
    max_refine_gas: int = 1_000_000_000
    block_gas_limit: int = 20_000_000
    recent_block_count: int = 8
    max_work_items: int = 16
    max_dependencies: int = 8
    max_tickets_per_block: int = 3
    max_lookup_anchor_age: int = 14_400
    ticket_attempts: int = 3
    auth_pool_size: int = 8
    slot_period: int = 6
    auth_queue_size: int = 80
    rotation_period: int = 4
    max_extrinsics: int = 128
    availability_timeout: int = 5
    validator_count: int = 6
    max_authorizer_code_size: int = 64_000
    max_bundle_size: int = 13_794_305
    max_service_code_size: int = 4_000_000
    erasure_piece_size: int = 4
    max_imports: int = 3072
    segment_piece_count: int = 1026
    max_report_elective_data: int = 48 * 1024
    transfer_memo_size: int = 128
    max_exports: int = 3072
    ticket_submission_end: int = 10

    SIZE = sum(width for _, width in _PARAM_WIDTHS)

    def __post_init__(self) -> None:
        for name, width in _PARAM_WIDTHS:
            value = getattr(self, name)
            if not 0 <= value < 1 << (8 * width):
                raise ProtocolUsageError(f"JAM parameter {name}={value} does not fit u{8 * width}")

    @staticmethod
    def for_network(validator_count: int, **overrides: int) -> JamParameters:
        """The parameters of a jamsim network of ``validator_count`` validators.

        ``V`` is the run's validator count and ``C`` follows the GP's ratio of
        three validators per core (tiny: 6 -> 2, full: 1023 -> 341); every other
        field keeps the tiny configuration unless overridden by name.
        """
        fields = {"validator_count": validator_count, "core_count": max(1, validator_count // 3)}
        fields.update(overrides)
        unknown = set(fields) - {name for name, _ in _PARAM_WIDTHS}
        if unknown:
            raise ProtocolUsageError(f"unknown JAM parameter(s): {', '.join(sorted(unknown))}")
        return JamParameters(**fields)

    def encode(self) -> bytes:
        return b"".join(
            getattr(self, name).to_bytes(width, "little") for name, width in _PARAM_WIDTHS
        )

    @staticmethod
    def read(r: Reader) -> JamParameters:
        values = {
            name: int.from_bytes(r.fixed(width, name), "little") for name, width in _PARAM_WIDTHS
        }
        return JamParameters(**values)


# ---------------------------------------------------------------- node information


def _encode_address(address: PeerAddress) -> bytes:
    return address.ipv6_bytes() + u16(address.port)


def _read_address(r: Reader) -> PeerAddress:
    return PeerAddress.from_ipv6_bytes(r.fixed(16, "peer address"), r.u16("peer port"))


def _read_peer_id(r: Reader) -> bytes:
    return r.fixed(32, "peer id")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The first message of every telemetry connection."""

    peer_id: bytes
    address: PeerAddress
    genesis_hash: bytes = b"\0" * 32
    params: JamParameters = field(default_factory=JamParameters)
    flags: int = 0
    implementation_name: str = "jamsim"
    implementation_version: str = _JAMSIM_VERSION
    gp_version: str = GRAY_PAPER_VERSION
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.peer_id) != 32 or len(self.genesis_hash) != 32:
            raise ProtocolUsageError("peer_id and genesis_hash must be 32 bytes")
        for name, limit in (
            ("implementation_name", NAME_MAX),
            ("implementation_version", NAME_MAX),
            ("gp_version", GP_VERSION_MAX),
            ("note", NOTE_MAX),
        ):
            if len(getattr(self, name).encode("utf-8")) > limit:
                raise ProtocolUsageError(f"{name} exceeds String<{limit}>")

    def encode(self) -> bytes:
        return b"".join(
            (
                u8(JIP3_PROTOCOL_VERSION),
                self.params.encode(),
                self.genesis_hash,
                self.peer_id,
                _encode_address(self.address),
                u32(self.flags),
                encode_string(self.implementation_name, NAME_MAX),
                encode_string(self.implementation_version, NAME_MAX),
                encode_string(self.gp_version, GP_VERSION_MAX),
                encode_string(_truncate_utf8(self.note, NOTE_WIRE_MAX), NOTE_MAX),
            )
        )

    @staticmethod
    def read(r: Reader) -> NodeInfo:
        version = r.u8("telemetry protocol version")
        if version != JIP3_PROTOCOL_VERSION:
            raise PeerProtocolError(f"{r.context}: unsupported telemetry version {version}")
        params = JamParameters.read(r)
        genesis = r.fixed(32, "genesis hash")
        return NodeInfo(
            peer_id=_read_peer_id(r),
            address=_read_address(r),
            genesis_hash=genesis,
            params=params,
            flags=r.u32("node flags"),
            implementation_name=r.string(NAME_MAX, "implementation name"),
            implementation_version=r.string(NAME_MAX, "implementation version"),
            gp_version=r.string(GP_VERSION_MAX, "gp version"),
            note=r.string(NOTE_MAX, "note"),
        )


def decode_node_info(data: bytes) -> NodeInfo:
    return decode_all(data, NodeInfo.read, "JIP-3 node information")


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Status:
    """Event 10 fields; ``guarantees_by_core`` has one byte per core."""

    total_peers: int = 0
    validator_peers: int = 0
    up0_peers: int = 0
    guarantees_by_core: bytes = b""
    shards: int = 0
    shard_bytes: int = 0
    preimages: int = 0
    preimage_bytes: int = 0

    def summary(self) -> str:
        return (
            f"peers={self.total_peers} validator_peers={self.validator_peers} "
            f"up0_peers={self.up0_peers}"
        )


@dataclass(frozen=True, slots=True)
class Jip3Event:
    """One decoded (or to-be-encoded) JIP-3 event.

    Only the fields of ``kind`` are meaningful: see :func:`encode_event`.
    ``kind`` is the discriminator (0 dropped, 10 status, 20-28 networking, other
    values opaque with their body in ``opaque``).
    """

    timestamp: int
    kind: int
    peer: bytes | None = None
    address: PeerAddress | None = None
    ref_event_id: int | None = None
    reason: str = ""
    side: Side | None = None
    status: Status | None = None
    dropped: int = 0
    last_timestamp: int = 0
    opaque: bytes = b""

    @property
    def id_span(self) -> int:
        """How many event ids this message accounts for (JIP-3 "dropped" rule)."""
        return self.dropped if self.kind == DROPPED else 1


def event_label(kind: int) -> str:
    """snake_case event name for event tables (``connected_out``)."""
    if kind == DROPPED:
        return "dropped"
    try:
        return TelemetryKind(kind).label
    except ValueError:
        return f"jip3_{kind}"


_K = TelemetryKind


def _peer(ev: Jip3Event) -> bytes:
    if ev.peer is None or len(ev.peer) != 32:
        raise ProtocolUsageError(f"JIP-3 event {ev.kind} needs a 32-byte peer id")
    return ev.peer


def _ref(ev: Jip3Event) -> bytes:
    if ev.ref_event_id is None:
        raise ProtocolUsageError(f"JIP-3 event {ev.kind} needs ref_event_id")
    return u64(ev.ref_event_id)


def _reason(ev: Jip3Event) -> bytes:
    return encode_string(_truncate_utf8(ev.reason, REASON_WIRE_MAX), REASON_MAX)


def _addr(ev: Jip3Event) -> bytes:
    return _encode_address(ev.address or UNSPECIFIED_ADDRESS)


def encode_event(ev: Jip3Event, core_count: int = 2) -> bytes:
    """Encode one event message's content (frame it with ``encode_message``).

    Reasons longer than 127 bytes are truncated (at a character boundary, see
    ``REASON_WIRE_MAX``) rather than refused: telemetry must never take a node down.
    """
    head = u64(ev.timestamp) + u8(ev.kind)
    k = ev.kind
    if k == DROPPED:
        body = u64(ev.last_timestamp) + u64(ev.dropped)
    elif k == _K.STATUS:
        s = ev.status or Status(guarantees_by_core=bytes(core_count))
        if len(s.guarantees_by_core) != core_count:
            raise ProtocolUsageError(f"status needs {core_count} per-core guarantee counts")
        body = (
            u32(s.total_peers)
            + u32(s.validator_peers)
            + u32(s.up0_peers)
            + s.guarantees_by_core
            + u32(s.shards)
            + u64(s.shard_bytes)
            + u32(s.preimages)
            + u32(s.preimage_bytes)
        )
    elif k in (_K.CONNECTION_REFUSED, _K.CONNECTING_IN):
        body = _addr(ev)
    elif k in (_K.CONNECT_IN_FAILED, _K.CONNECT_OUT_FAILED):
        body = _ref(ev) + _reason(ev)
    elif k == _K.CONNECTED_IN:
        body = _ref(ev) + _peer(ev)
    elif k == _K.CONNECTING_OUT:
        body = _peer(ev) + _addr(ev)
    elif k == _K.CONNECTED_OUT:
        body = _ref(ev)
    elif k == _K.DISCONNECTED:
        side = b"\x00" if ev.side is None else b"\x01" + u8(int(ev.side))
        body = _peer(ev) + side + _reason(ev)
    elif k == _K.PEER_MISBEHAVED:
        body = _peer(ev) + _reason(ev)
    else:
        body = ev.opaque
    return head + body


def _read_side(r: Reader) -> Side | None:
    tag = r.u8("option tag")
    if tag == 0:
        return None
    if tag != 1:
        raise PeerProtocolError(f"{r.context}: invalid Option tag {tag}")
    raw = r.u8("connection side")
    if raw not in (0, 1):
        raise PeerProtocolError(f"{r.context}: invalid connection side {raw}")
    return Side(raw)


def _read_event(r: Reader, core_count: int) -> Jip3Event:
    ts = r.u64("timestamp")
    k = r.u8("discriminator")
    if k == DROPPED:
        return Jip3Event(ts, k, last_timestamp=r.u64("last timestamp"), dropped=r.u64("dropped"))
    if k == _K.STATUS:
        status = Status(
            r.u32("total peers"),
            r.u32("validator peers"),
            r.u32("up0 peers"),
            r.fixed(core_count, "guarantees by core"),
            r.u32("shards"),
            r.u64("shard bytes"),
            r.u32("preimages"),
            r.u32("preimage bytes"),
        )
        return Jip3Event(ts, k, status=status)
    if k in (_K.CONNECTION_REFUSED, _K.CONNECTING_IN):
        return Jip3Event(ts, k, address=_read_address(r))
    if k in (_K.CONNECT_IN_FAILED, _K.CONNECT_OUT_FAILED):
        return Jip3Event(ts, k, ref_event_id=r.u64("event id"), reason=r.string(REASON_MAX))
    if k == _K.CONNECTED_IN:
        return Jip3Event(ts, k, ref_event_id=r.u64("event id"), peer=_read_peer_id(r))
    if k == _K.CONNECTING_OUT:
        return Jip3Event(ts, k, peer=_read_peer_id(r), address=_read_address(r))
    if k == _K.CONNECTED_OUT:
        return Jip3Event(ts, k, ref_event_id=r.u64("event id"))
    if k == _K.DISCONNECTED:
        peer = _read_peer_id(r)
        side = _read_side(r)
        return Jip3Event(ts, k, peer=peer, side=side, reason=r.string(REASON_MAX, "reason"))
    if k == _K.PEER_MISBEHAVED:
        return Jip3Event(ts, k, peer=_read_peer_id(r), reason=r.string(REASON_MAX, "reason"))
    return Jip3Event(ts, k, opaque=r.rest())


def decode_event(data: bytes, core_count: int = 2) -> Jip3Event:
    """Decode one event message's content; malformed -> :class:`PeerProtocolError`."""
    return decode_all(data, lambda r: _read_event(r, core_count), "JIP-3 event")


def event_from_action(
    action: EmitTelemetry, timestamp: int, status: Status | None = None
) -> Jip3Event:
    """The JIP-3 event for a manager's :class:`EmitTelemetry` action.

    ``attempt``, ``conn_id`` and ``direction`` have no JIP-3 field (direction is
    implied by the kind); they live only in jamsim's own event tables.
    """
    return Jip3Event(
        timestamp=timestamp,
        kind=int(action.kind),
        peer=action.peer,
        address=action.address,
        ref_event_id=action.ref_event_id,
        reason=action.reason,
        side=action.side,
        status=status,
    )


# ---------------------------------------------------------------- node side


class Jip3Encoder:
    """Node-side id bookkeeping for one telemetry connection.

    The manager numbers its events itself. On the wire ids are implicit, so when
    the node's id jumps ahead of the wire id (events dropped while the server was
    unreachable, or a reconnect), a "dropped" event covering the gap is sent first.
    """

    __slots__ = ("core_count", "next_wire_id")

    def __init__(self, core_count: int = 2) -> None:
        self.core_count = core_count
        self.next_wire_id = 0

    def encode(self, event: Jip3Event, event_id: int | None = None) -> list[bytes]:
        """Contents (unframed) to send for ``event`` whose node-side id is ``event_id``."""
        content = encode_event(event, self.core_count)
        return self.sequence(content, event.id_span, event.timestamp, event_id)

    def sequence(
        self, content: bytes, id_span: int, timestamp: int, event_id: int | None
    ) -> list[bytes]:
        """Place an already-encoded event at ``event_id``, prefixing a gap filler."""
        out: list[bytes] = []
        if event_id is not None:
            if event_id < self.next_wire_id:
                raise ProtocolUsageError(
                    f"event id {event_id} already used on this connection "
                    f"(next {self.next_wire_id})"
                )
            gap = event_id - self.next_wire_id
            if gap:
                out.append(self.dropped(gap, timestamp, timestamp))
        out.append(content)
        self.next_wire_id += id_span
        return out

    def dropped(self, count: int, first_ts: int, last_ts: int) -> bytes:
        self.next_wire_id += count
        return encode_event(Jip3Event(first_ts, DROPPED, dropped=count, last_timestamp=last_ts))


# ---------------------------------------------------------------- server side


_DIRECTION = {
    _K.CONNECTION_REFUSED: "in",
    _K.CONNECTING_IN: "in",
    _K.CONNECT_IN_FAILED: "in",
    _K.CONNECTED_IN: "in",
    _K.CONNECTING_OUT: "out",
    _K.CONNECT_OUT_FAILED: "out",
    _K.CONNECTED_OUT: "out",
}


MAX_TRACKED_ATTEMPTS = 65_536


class Jip3Session:
    """Server-side decoder state for one telemetry connection (sans-IO).

    Feed it message contents in order (:meth:`handle`): the first must be node
    information; each event gets its implicit id and becomes an
    :class:`EventRecord`. "Connect out failed"/"connected out" (25, 26) name only
    the id of their "connecting out" event; the session resolves the peer through
    it (remembering the newest ``MAX_TRACKED_ATTEMPTS`` attempts only), so
    rows carry ``peer``/``direction`` the way simulator rows do. Inbound outcomes
    carry no peer before the handshake, in JIP-3 as in the simulator.
    """

    def __init__(
        self,
        key_to_index: dict[bytes, int],
        run_start_timestamp: int,
    ) -> None:
        self.key_to_index = key_to_index
        self.run_start_timestamp = run_start_timestamp
        self.node_info: NodeInfo | None = None
        self.next_event_id = 0
        self._pending_out: dict[int, bytes] = {}

    @property
    def node_index(self) -> int:
        if self.node_info is None:
            return -1
        return self.key_to_index.get(self.node_info.peer_id, -1)

    def handle(self, content: bytes) -> EventRecord | None:
        """Decode one message; return its row (``None`` for node information)."""
        if self.node_info is None:
            self.node_info = decode_node_info(content)
            return None
        ev = decode_event(content, self.node_info.params.core_count)
        event_id = self.next_event_id
        self.next_event_id += ev.id_span
        return self.record(ev, event_id)

    def record(self, ev: Jip3Event, event_id: int) -> EventRecord:
        assert self.node_info is not None
        peer = ev.peer
        if ev.kind == _K.CONNECTING_OUT and peer is not None:
            self._pending_out[event_id] = peer
            if len(self._pending_out) > MAX_TRACKED_ATTEMPTS:  # forget the oldest attempt
                del self._pending_out[next(iter(self._pending_out))]
        elif ev.kind in (_K.CONNECT_OUT_FAILED, _K.CONNECTED_OUT) and ev.ref_event_id is not None:
            peer = self._pending_out.get(ev.ref_event_id)
        reason = ev.reason
        if ev.kind == _K.STATUS and ev.status is not None:
            reason = ev.status.summary()
        elif ev.kind == DROPPED:
            reason = f"{ev.dropped} events dropped"
        try:
            direction = _DIRECTION.get(TelemetryKind(ev.kind), "")
        except ValueError:
            direction = ""
        return EventRecord(
            time=(ev.timestamp - self.run_start_timestamp) / 1_000_000,
            node=self.node_index,
            peer=self.key_to_index.get(peer, -1) if peer is not None else -1,
            event=event_label(ev.kind),
            kind=ev.kind,
            direction=direction,
            reason=reason,
            event_id=event_id,
            ref_event_id=-1 if ev.ref_event_id is None else ev.ref_event_id,
            side=-1 if ev.side is None else int(ev.side),
        )


assert JamParameters.SIZE == 134, "JAM parameters are 134 bytes in GP 0.7"
