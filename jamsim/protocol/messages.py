"""UP 0 (block announcement), CE 128 (block request) and CE 141 (assurance) codecs.

Field layouts follow ``simple.md`` exactly::

    Final = Leaf = Header Hash ([u8; 32]) ++ Slot (u32)
    Handshake    = Final ++ len++[Leaf]
    Announcement = Header ++ Final
    Request      = Header Hash ++ Direction (u8: 0 ascending exclusive,
                   1 descending inclusive) ++ Maximum Blocks (u32)
    Response     = [Block], each block its own message, then FIN
    Assurance    = Anchor Hash ++ Bitfield ([u8; ceil(C/8)]) ++ Ed25519 Signature

``Header`` and ``Block`` are "as in GP": :class:`Header` has the Gray Paper
field layout (parent hash, prior state root, extrinsic hash, slot, optional epoch
and tickets markers, author index, VRF signature, offenders marker, seal) and a
:class:`Block` is that header followed by the GP-encoded extrinsic
(:func:`encode_extrinsic`). jamsim's chain is synthetic (its signatures and roots
are derived bytes, its extrinsic one preimage of padding), but the framing and
the field layout on the wire are the real ones. A header's hash is Blake2b-256 of
its encoding, as in the GP.

Constructors validate and raise :class:`ProtocolUsageError` (our bug); decoders
raise :class:`PeerProtocolError` (their bytes).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from jamsim.protocol.codec import (
    Reader,
    decode_all,
    encode_bytes_with_len,
    encode_natural,
    u16,
    u32,
)
from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError

__all__ = [
    "BANDERSNATCH_SIGNATURE_SIZE",
    "EMPTY_EXTRINSIC",
    "EMPTY_EXTRINSIC_HASH",
    "FULL_CONTEXT",
    "FULL_CORE_COUNT",
    "GRAY_PAPER_VERSION",
    "HASH_SIZE",
    "Announcement",
    "Assurance",
    "Block",
    "BlockRequest",
    "Final",
    "Handshake",
    "Header",
    "HeaderContext",
    "Leaf",
    "RequestDirection",
    "bitfield_size",
    "blake2b_256",
    "decode_announcement",
    "decode_assurance",
    "decode_block",
    "decode_block_request",
    "decode_handshake",
    "encode_extrinsic",
]

HASH_SIZE = 32
BANDERSNATCH_SIGNATURE_SIZE = 96
"""VRF signature and seal: Bandersnatch signatures, 96 bytes each (GP)."""
ED25519_SIGNATURE_SIZE = 64
MAX_OFFENDERS = 1 << 12
"""Bound on the offenders marker a decoder accepts (the GP bounds it by the
disputes in one block; this only refuses absurd lengths)."""
FULL_CORE_COUNT = 341
"""C in the GP full configuration (1023 validators, 3 per core)."""
GRAY_PAPER_VERSION = "0.7.2"
"""The Gray Paper version whose header and block layout these codecs follow.

Nodes announce it in JIP-3 node information, so a telemetry backend can tell
which layout the blocks they move have; change it together with the layouts."""
MAX_LEAVES = 1 << 16
"""Bound on handshake leaves: generous for forks, small enough to refuse abuse."""


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProtocolUsageError(f"{what} must be {HASH_SIZE} bytes")


def _check_uint(value: int, bits: int, what: str) -> None:
    if not 0 <= value < 1 << bits:
        raise ProtocolUsageError(f"{what} must fit in u{bits}, got {value}")


def blake2b_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def encode_extrinsic(preimages: Sequence[tuple[int, bytes]] = ()) -> tuple[bytes, bytes]:
    """A GP block extrinsic holding only ``preimages``; returns ``(bytes, hash)``.

    Layout (GP): ``len++tickets ++ len++preimages ++ len++guarantees ++
    len++assurances ++ disputes`` with disputes ``len++verdicts ++ len++culprits
    ++ len++faults``; a preimage is ``E_4(service) ++ len++blob``. The extrinsic
    hash is Blake2b of the concatenated Blake2b hashes of the five parts (the
    guarantees part, when empty, encodes the same as its hashed form). Preimages
    are the one extrinsic item that carries arbitrary bytes, which is how the
    synthetic chain gives a block its configured size honestly.
    """
    items = [u32(service) + encode_bytes_with_len(blob) for service, blob in preimages]
    parts = (
        encode_natural(0),
        encode_natural(len(items)) + b"".join(items),
        encode_natural(0),
        encode_natural(0),
        encode_natural(0) * 3,
    )
    return b"".join(parts), blake2b_256(b"".join(blake2b_256(p) for p in parts))


EMPTY_EXTRINSIC, EMPTY_EXTRINSIC_HASH = encode_extrinsic()


def bitfield_size(core_count: int) -> int:
    """Bytes of an assurance bitfield: one bit per core (43 for C = 341)."""
    return (core_count + 7) // 8


@dataclass(frozen=True, slots=True)
class Final:
    """Header hash and slot of a block (the latest finalized one, or a leaf)."""

    hash: bytes
    slot: int

    def __post_init__(self) -> None:
        _check_hash(self.hash, "header hash")
        _check_uint(self.slot, 32, "slot")

    def encode(self) -> bytes:
        return self.hash + u32(self.slot)

    @staticmethod
    def read(r: Reader) -> Final:
        return Final(r.fixed(HASH_SIZE, "header hash"), r.u32("slot"))


Leaf = Final


@dataclass(frozen=True, slots=True)
class Handshake:
    """UP 0 handshake: our latest finalized block and all known leaves."""

    final: Final
    leaves: tuple[Final, ...] = ()

    def __post_init__(self) -> None:
        if len(self.leaves) > MAX_LEAVES:
            raise ProtocolUsageError(f"at most {MAX_LEAVES} leaves")

    def encode(self) -> bytes:
        return (
            self.final.encode()
            + encode_natural(len(self.leaves))
            + b"".join(leaf.encode() for leaf in self.leaves)
        )

    @staticmethod
    def read(r: Reader) -> Handshake:
        final = Final.read(r)
        leaves = r.sequence(Final.read, "leaves", MAX_LEAVES)
        return Handshake(final, tuple(leaves))


@dataclass(frozen=True, slots=True)
class HeaderContext:
    """Protocol constants a header's optional markers need to be decoded.

    The epoch marker holds one key pair per validator and the tickets marker one
    ticket per slot of the epoch, both without a length prefix (GP), so reading
    them needs ``V`` and ``E``. Defaults: the GP full configuration.
    """

    validator_count: int = 1023
    epoch_length: int = 600


FULL_CONTEXT = HeaderContext()


@dataclass(frozen=True, slots=True)
class Header:
    """A block header in the Gray Paper layout (``simple.md``: "Header = As in GP").

    Encoding (GP appendix C, block serialization)::

        parent hash (32) ++ prior state root (32) ++ extrinsic hash (32)
        ++ E_4(slot) ++ Option<epoch marker> ++ Option<tickets marker>
        ++ E_2(author index) ++ VRF signature (96) ++ len++[offender key (32)]
        ++ seal (96)

    The markers are kept as their raw encodings (``None`` when absent): jamsim's
    synthetic chain never sets them, but a real node's header must still decode.
    Constructor order keeps the fields a caller usually sets first. The header is
    self-delimiting, which the UP 0 announcement (``Header ++ Final``) relies on,
    and its hash is Blake2b-256 of the encoding, as in the GP.
    """

    parent: bytes
    slot: int
    author_index: int = 0
    prior_state_root: bytes = bytes(HASH_SIZE)
    extrinsic_hash: bytes = bytes(HASH_SIZE)
    vrf_signature: bytes = bytes(BANDERSNATCH_SIGNATURE_SIZE)
    seal: bytes = bytes(BANDERSNATCH_SIGNATURE_SIZE)
    offenders: tuple[bytes, ...] = ()
    epoch_mark: bytes | None = None
    tickets_mark: bytes | None = None

    def __post_init__(self) -> None:
        _check_hash(self.parent, "parent hash")
        _check_hash(self.prior_state_root, "prior state root")
        _check_hash(self.extrinsic_hash, "extrinsic hash")
        _check_uint(self.slot, 32, "slot")
        _check_uint(self.author_index, 16, "author index")
        for value, what in ((self.vrf_signature, "VRF signature"), (self.seal, "seal")):
            if not isinstance(value, bytes) or len(value) != BANDERSNATCH_SIGNATURE_SIZE:
                raise ProtocolUsageError(f"{what} must be {BANDERSNATCH_SIGNATURE_SIZE} bytes")
        for key in self.offenders:
            _check_hash(key, "offender key")

    def encode(self) -> bytes:
        return b"".join(
            (
                self.parent,
                self.prior_state_root,
                self.extrinsic_hash,
                u32(self.slot),
                _option(self.epoch_mark),
                _option(self.tickets_mark),
                u16(self.author_index),
                self.vrf_signature,
                encode_natural(len(self.offenders)),
                *self.offenders,
                self.seal,
            )
        )

    def hash(self) -> bytes:
        """Blake2b-256 of the encoding, as the GP hashes headers."""
        return blake2b_256(self.encode())

    @staticmethod
    def read(r: Reader, context: HeaderContext = FULL_CONTEXT) -> Header:
        parent = r.fixed(HASH_SIZE, "parent hash")
        state_root = r.fixed(HASH_SIZE, "prior state root")
        extrinsic_hash = r.fixed(HASH_SIZE, "extrinsic hash")
        slot = r.u32("slot")
        epoch_mark = _read_option(r, epoch_mark_size(context.validator_count), "epoch marker")
        tickets_mark = _read_option(r, tickets_mark_size(context.epoch_length), "tickets marker")
        author = r.u16("author index")
        vrf = r.fixed(BANDERSNATCH_SIGNATURE_SIZE, "VRF signature")
        count = r.length("offenders marker", MAX_OFFENDERS)
        offenders = tuple(r.fixed(HASH_SIZE, "offender key") for _ in range(count))
        seal = r.fixed(BANDERSNATCH_SIGNATURE_SIZE, "seal")
        return Header(
            parent,
            slot,
            author,
            prior_state_root=state_root,
            extrinsic_hash=extrinsic_hash,
            vrf_signature=vrf,
            seal=seal,
            offenders=offenders,
            epoch_mark=epoch_mark,
            tickets_mark=tickets_mark,
        )


def epoch_mark_size(validator_count: int) -> int:
    """Epoch marker: entropy ++ tickets entropy ++ [Bandersnatch ++ Ed25519 key] x V."""
    return 2 * HASH_SIZE + validator_count * 2 * HASH_SIZE


def tickets_mark_size(epoch_length: int) -> int:
    """Tickets marker: [ticket id (32) ++ attempt (u8)] x E."""
    return epoch_length * (HASH_SIZE + 1)


def _option(raw: bytes | None) -> bytes:
    return b"\x00" if raw is None else b"\x01" + raw


def _read_option(r: Reader, size: int, what: str) -> bytes | None:
    flag = r.u8(what)
    if flag == 0:
        return None
    if flag != 1:
        raise PeerProtocolError(f"{r.context}: invalid option byte {flag} for {what}")
    return r.fixed(size, what)


@dataclass(frozen=True, slots=True)
class Announcement:
    """UP 0 announcement: a new block's header and the sender's latest finalized."""

    header: Header
    final: Final

    def encode(self) -> bytes:
        return self.header.encode() + self.final.encode()

    @staticmethod
    def read(r: Reader) -> Announcement:
        return Announcement(Header.read(r), Final.read(r))


class RequestDirection(enum.IntEnum):
    ASCENDING_EXCLUSIVE = 0  # children of the given block, then grandchildren...
    DESCENDING_INCLUSIVE = 1  # the given block, then its parent, grandparent...


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """CE 128 request: ``Header Hash ++ Direction ++ Maximum Blocks``."""

    hash: bytes
    direction: RequestDirection
    max_blocks: int

    def __post_init__(self) -> None:
        _check_hash(self.hash, "header hash")
        if not isinstance(self.direction, RequestDirection):
            raise ProtocolUsageError(f"direction must be a RequestDirection: {self.direction!r}")
        _check_uint(self.max_blocks, 32, "max_blocks")

    def encode(self) -> bytes:
        return self.hash + bytes((int(self.direction),)) + u32(self.max_blocks)

    @staticmethod
    def read(r: Reader) -> BlockRequest:
        block_hash = r.fixed(HASH_SIZE, "header hash")
        raw = r.u8("direction")
        try:
            direction = RequestDirection(raw)
        except ValueError:
            raise PeerProtocolError(f"{r.context}: invalid direction byte {raw}") from None
        return BlockRequest(block_hash, direction, r.u32("max_blocks"))


@dataclass(frozen=True, slots=True)
class Block:
    """``Block = Header ++ Extrinsic`` (GP), one CE 128 response message.

    The extrinsic is kept as its encoded bytes: a block message is length-framed,
    so whatever follows the self-delimiting header is the extrinsic, and a real
    node's extrinsic need not be understood to be carried. :func:`encode_extrinsic`
    builds one in the GP layout.
    """

    header: Header
    extrinsic: bytes = EMPTY_EXTRINSIC

    def encode(self) -> bytes:
        return self.header.encode() + self.extrinsic

    def hash(self) -> bytes:
        return self.header.hash()

    @staticmethod
    def read(r: Reader, context: HeaderContext = FULL_CONTEXT) -> Block:
        return Block(Header.read(r, context), r.rest())


@dataclass(frozen=True, slots=True)
class Assurance:
    """CE 141: ``Anchor Hash ++ Bitfield ++ Ed25519 Signature``.

    The bitfield is fixed-size, one bit per core (``[u8; 43]`` at C = 341), so its
    length is a protocol constant both sides know, not a prefix on the wire.
    """

    anchor: bytes
    bitfield: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_hash(self.anchor, "anchor hash")
        if not isinstance(self.signature, bytes) or len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise ProtocolUsageError(f"signature must be {ED25519_SIGNATURE_SIZE} bytes")
        if not isinstance(self.bitfield, bytes):
            raise ProtocolUsageError("bitfield must be bytes")

    def encode(self) -> bytes:
        return self.anchor + self.bitfield + self.signature

    @staticmethod
    def size(core_count: int) -> int:
        """Encoded size for ``core_count`` cores (139 bytes at C = 341)."""
        return HASH_SIZE + bitfield_size(core_count) + ED25519_SIGNATURE_SIZE

    @staticmethod
    def read(r: Reader, core_count: int = FULL_CORE_COUNT) -> Assurance:
        return Assurance(
            r.fixed(HASH_SIZE, "anchor hash"),
            r.fixed(bitfield_size(core_count), "bitfield"),
            r.fixed(ED25519_SIGNATURE_SIZE, "signature"),
        )


def decode_assurance(data: bytes, core_count: int = FULL_CORE_COUNT) -> Assurance:
    return decode_all(data, lambda r: Assurance.read(r, core_count), "CE 141 assurance")


def decode_handshake(data: bytes) -> Handshake:
    return decode_all(data, Handshake.read, "UP 0 handshake")


def decode_announcement(data: bytes) -> Announcement:
    return decode_all(data, Announcement.read, "UP 0 announcement")


def decode_block_request(data: bytes) -> BlockRequest:
    return decode_all(data, BlockRequest.read, "CE 128 request")


def decode_block(data: bytes, context: HeaderContext = FULL_CONTEXT) -> Block:
    return decode_all(data, lambda r: Block.read(r, context), "CE 128 block")
