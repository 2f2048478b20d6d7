"""A synthetic JAM chain: genesis plus one block per slot, and a node's block store.

Why synthetic: jamsim measures how the network carries blocks, not what is in
them, yet the bytes on the wire must be the real ones (``simple.md``: UP 0 carries
GP headers, CE 128 carries GP blocks). :class:`SyntheticChain` therefore builds
GP-layout headers and blocks (:mod:`jamsim.protocol.messages`) whose contents are
derived from ``(seed, slot)``: the same seed gives every node, every runtime and
every rerun byte-identical blocks and hashes, so a block is recognised by its
header hash exactly as in JAM. The extrinsic is one preimage of padding sized so
that the whole encoded block is ``block_size`` bytes.

:class:`BlockStore` is what one node *knows*: the author adds the block it
produced, every other node adds what it fetched with CE 128. It answers CE 128
requests (ascending exclusive / descending inclusive) from those blocks only, so
a node cannot serve a block it never received.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from jamsim.core.errors import UsageError
from jamsim.protocol.codec import encode_natural
from jamsim.protocol.limits import MAX_BLOCK_SIZE
from jamsim.protocol.messages import (
    BANDERSNATCH_SIGNATURE_SIZE,
    EMPTY_EXTRINSIC,
    EMPTY_EXTRINSIC_HASH,
    HASH_SIZE,
    Block,
    BlockRequest,
    Final,
    Header,
    RequestDirection,
    encode_extrinsic,
)

__all__ = ["KEEP_SLOTS", "BlockStore", "SyntheticChain", "seeded_author"]

AuthorFn = Callable[[int], int]
"""``author(slot)``: the validator index that authors ``slot``'s block."""

KEEP_SLOTS = 16
"""Slots of blocks a node keeps to serve CE 128 (see :meth:`BlockStore.prune`)."""

PREIMAGE_SERVICE = 0
"""Service id of the padding preimage (any u32 would do; 0 reads as "none")."""


def _derive(seed: int, slot: int, label: bytes, size: int) -> bytes:
    """``size`` deterministic bytes for one field of one slot's block."""
    out = b""
    counter = 0
    while len(out) < size:
        h = hashlib.blake2b(digest_size=64)
        h.update(label + seed.to_bytes(8, "little", signed=True) + slot.to_bytes(4, "little"))
        h.update(counter.to_bytes(4, "little"))
        out += h.digest()
        counter += 1
    return out[:size]


def seeded_author(seed: int, validator_count: int) -> AuthorFn:
    """An author per slot drawn from the seed (uniform over the validator indices)."""
    if validator_count <= 0:
        raise UsageError("validator_count must be positive")

    def author(slot: int) -> int:
        return int.from_bytes(_derive(seed, slot, b"author", 8), "little") % validator_count

    return author


def _preimage_overhead(blob_len: int) -> int:
    """Bytes a one-preimage extrinsic adds beyond ``blob_len`` (see encode_extrinsic)."""
    # tickets(1) + count(1) + service(4) + len++ prefix + guarantees(1) + assurances(1)
    # + disputes(3)
    return 1 + 1 + 4 + len(encode_natural(blob_len)) + 1 + 1 + 3


class SyntheticChain:
    """Genesis plus one block per slot, deterministic from ``seed`` and the slot.

    ``block_size`` is the encoded size of every non-genesis block: exact, except
    one byte short where the padding's length prefix grows a byte (e.g. 437), and
    never below a header with an empty extrinsic (304 bytes).
    Blocks are rebuilt on demand from their slot; only header hashes are cached.
    """

    def __init__(
        self,
        seed: int,
        validator_count: int,
        *,
        block_size: int = 0,
        author: AuthorFn | None = None,
    ) -> None:
        if block_size > MAX_BLOCK_SIZE:
            raise UsageError(f"block_size {block_size} exceeds the {MAX_BLOCK_SIZE}-byte maximum")
        if block_size < 0:
            raise UsageError("block_size must be >= 0")
        self.seed = seed
        self.validator_count = validator_count
        self.block_size = block_size
        self.author = author if author is not None else seeded_author(seed, validator_count)
        self.genesis = Block(
            Header(
                bytes(HASH_SIZE),
                0,
                0,
                prior_state_root=_derive(seed, 0, b"state", HASH_SIZE),
                extrinsic_hash=EMPTY_EXTRINSIC_HASH,
            ),
            EMPTY_EXTRINSIC,
        )
        self._hashes: list[bytes] = [self.genesis.hash()]
        self._padding = self._padding_size(block_size)

    @staticmethod
    def _padding_size(block_size: int) -> int:
        header = len(Header(bytes(HASH_SIZE), 0).encode())
        room = block_size - header
        blob = max(0, room - _preimage_overhead(0))
        while blob > 0 and header + blob + _preimage_overhead(blob) > block_size:
            blob -= 1
        return blob

    @property
    def genesis_final(self) -> Final:
        return Final(self._hashes[0], 0)

    def hash_at(self, slot: int) -> bytes:
        """Header hash of ``slot``'s block (building the chain up to it)."""
        while len(self._hashes) <= slot:
            self._hashes.append(self._build(len(self._hashes), self._hashes[-1]).hash())
        return self._hashes[slot]

    def block(self, slot: int) -> Block:
        """``slot``'s block: parent is ``slot - 1``'s (slot 0 is genesis)."""
        if slot < 0:
            raise UsageError(f"slot must be >= 0, got {slot}")
        if slot == 0:
            return self.genesis
        return self._build(slot, self.hash_at(slot - 1))

    def _build(self, slot: int, parent: bytes) -> Block:
        if self._padding:
            blob = _derive(self.seed, slot, b"body", min(self._padding, 64)) * (
                self._padding // 64 + 1
            )
            extrinsic, xhash = encode_extrinsic([(PREIMAGE_SERVICE, blob[: self._padding])])
        else:
            extrinsic, xhash = EMPTY_EXTRINSIC, EMPTY_EXTRINSIC_HASH
        header = Header(
            parent,
            slot,
            self.author(slot),
            prior_state_root=_derive(self.seed, slot, b"state", HASH_SIZE),
            extrinsic_hash=xhash,
            vrf_signature=_derive(self.seed, slot, b"vrf", BANDERSNATCH_SIGNATURE_SIZE),
            seal=_derive(self.seed, slot, b"seal", BANDERSNATCH_SIGNATURE_SIZE),
        )
        return Block(header, extrinsic)


class BlockStore:
    """The blocks one node holds, answering CE 128 requests from them.

    A request that cannot be satisfied (unknown hash, or no block in the asked
    direction) gets ``None``, which the CE 128 server turns into a stream reset as
    ``simple.md`` prescribes. ``max_blocks == 0`` is satisfiable by nothing.
    """

    def __init__(self, genesis: Block) -> None:
        self._blocks: dict[bytes, Block] = {}
        self._children: dict[bytes, list[bytes]] = {}
        self.best: Block = genesis
        self.add(genesis)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, block_hash: bytes) -> Block | None:
        return self._blocks.get(block_hash)

    @property
    def best_final(self) -> Final:
        return Final(self.best.hash(), self.best.header.slot)

    def add(self, block: Block) -> bool:
        """Store ``block``; False if it was already known."""
        h = block.hash()
        if h in self._blocks:
            return False
        self._blocks[h] = block
        self._children.setdefault(block.header.parent, []).append(h)
        if block.header.slot > self.best.header.slot:
            self.best = block
        return True

    def prune(self, before_slot: int) -> int:
        """Forget blocks of slots before ``before_slot`` (genesis stays); returns how many.

        Why: a node keeps every block it holds to serve CE 128, and at 100 kB per
        6 s slot an hour-long testnet would hold ~60 MB per node. The drivers keep
        a window of recent slots; older requests are then unsatisfiable (reset),
        like those for blocks a node never had.
        """
        old = [h for h, b in self._blocks.items() if 0 < b.header.slot < before_slot]
        for h in old:
            block = self._blocks.pop(h)
            siblings = self._children.get(block.header.parent)
            if siblings is not None:
                siblings.remove(h)
                if not siblings:
                    del self._children[block.header.parent]
        return len(old)

    def serve(self, request: BlockRequest) -> Sequence[Block] | None:
        """The CE 128 response to ``request``, in response order, or None."""
        start = self._blocks.get(request.hash)
        if start is None:
            return None
        out: list[Block] = []
        if request.direction is RequestDirection.DESCENDING_INCLUSIVE:
            block: Block | None = start
            while block is not None and len(out) < request.max_blocks:
                out.append(block)
                block = self._blocks.get(block.header.parent)
        else:
            current = request.hash
            while len(out) < request.max_blocks:
                children = self._children.get(current)
                if not children:
                    break
                # Several children are a fork: follow the one with the lowest slot
                # then hash, the same choice on every node.
                child = min(
                    (self._blocks[c] for c in children), key=lambda b: (b.header.slot, b.hash())
                )
                out.append(child)
                current = child.hash()
        if request.max_blocks and not out:
            return None
        return out
