"""UP 0 (block announcement) and CE 128 (block request) message codecs.

Field layouts follow ``simple.md`` exactly::

    Final = Leaf = Header Hash ([u8; 32]) ++ Slot (u32)
    Handshake    = Final ++ len++[Leaf]
    Announcement = Header ++ Final
    Request      = Header Hash ++ Direction (u8: 0 ascending exclusive,
                   1 descending inclusive) ++ Maximum Blocks (u32)
    Response     = [Block], each block its own message, then FIN

jamsim carries no real chain, so ``Header`` and ``Block`` are *synthetic* but
honest about their framing: a :class:`Header` is
``parent hash (32) ++ slot (u32) ++ author index (u16) ++ len++[u8] (opaque body)``
and a :class:`Block` is ``Header ++ len++[u8] (extrinsic bytes)``. Like a GP
header, our header is self-delimiting (its length is implied by its own fields),
which is the property the Announcement layout needs: the receiver finds where the
header ends and the trailing ``Final`` starts without an outer length. A header's
hash is Blake2b-256 of its encoding, as in the GP. Swapping in a real GP header
codec means replacing :class:`Header` only.

Constructors validate and raise :class:`ProtocolUsageError` (our bug); decoders
raise :class:`PeerProtocolError` (their bytes).
"""

from __future__ import annotations

import enum
import hashlib
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
    "HASH_SIZE",
    "Announcement",
    "Block",
    "BlockRequest",
    "Final",
    "Handshake",
    "Header",
    "Leaf",
    "RequestDirection",
    "blake2b_256",
    "decode_announcement",
    "decode_block",
    "decode_block_request",
    "decode_handshake",
]

HASH_SIZE = 32
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
class Header:
    """Synthetic, self-delimiting block header (see module docstring)."""

    parent: bytes
    slot: int
    author_index: int = 0
    body: bytes = b""

    def __post_init__(self) -> None:
        _check_hash(self.parent, "parent hash")
        _check_uint(self.slot, 32, "slot")
        _check_uint(self.author_index, 16, "author index")

    def encode(self) -> bytes:
        return (
            self.parent + u32(self.slot) + u16(self.author_index) + encode_bytes_with_len(self.body)
        )

    def hash(self) -> bytes:
        """Blake2b-256 of the encoding, as the GP hashes headers."""
        return blake2b_256(self.encode())

    @staticmethod
    def read(r: Reader) -> Header:
        return Header(
            r.fixed(HASH_SIZE, "parent hash"),
            r.u32("slot"),
            r.u16("author index"),
            r.bytes_with_len("header body"),
        )


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
    """Synthetic block: ``Header ++ len++[u8]`` extrinsic bytes."""

    header: Header
    extrinsic: bytes = b""

    def encode(self) -> bytes:
        return self.header.encode() + encode_bytes_with_len(self.extrinsic)

    def hash(self) -> bytes:
        return self.header.hash()

    @staticmethod
    def read(r: Reader) -> Block:
        return Block(Header.read(r), r.bytes_with_len("extrinsic"))


def decode_handshake(data: bytes) -> Handshake:
    return decode_all(data, Handshake.read, "UP 0 handshake")


def decode_announcement(data: bytes) -> Announcement:
    return decode_all(data, Announcement.read, "UP 0 announcement")


def decode_block_request(data: bytes) -> BlockRequest:
    return decode_all(data, BlockRequest.read, "CE 128 request")


def decode_block(data: bytes) -> Block:
    return decode_all(data, Block.read, "CE 128 block")
