"""What JAM traffic a run sends: slot clock, message sizes, optional extra messages.

Sizes follow the JAMNP-S text (``simple.md``) where it fixes them:

* CE 141 assurance = anchor hash (32) ++ bitfield (one bit per core) ++ Ed25519
  signature (64). With the full set's 341 cores the bitfield is the text's 43
  bytes, so an assurance is 139 bytes. ``core_count`` defaults to ``V // 3``, the
  Gray Paper's ratio (1023 validators, 341 cores), so smaller sets get a smaller
  bitfield.
* CE 128 request = header hash (32) ++ direction (1) ++ maximum blocks (u32) = 37
  bytes.
* UP 0 announcement = header ++ final (hash 32 ++ slot 4).

Extra CE messages (:class:`ExtraMessage`) are for experiments: a kind the
harness does not already use (not CE 128 or CE 141, and each extra its own kind,
so a receiver knows what a stream is from its kind byte alone), a size, a
fan-out. Their first four bytes carry the slot (u32 little-endian) so a receiver
can tell which slot a late message belongs to; the rest is filler.

Header and block sizes are not fixed by the protocol (they depend on what the
block carries), so they are fields: ``block_size`` is the scenario's main knob.

Pure data, no I/O: real nodes, the ``quic`` fidelity and the ``model`` overlay
all build their traffic from the same config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from jamsim.core.errors import UsageError
from jamsim.protocol.messages import HASH_SIZE, Header

__all__ = [
    "ASSURANCE_FIXED_BYTES",
    "BLOCK_REQUEST_BYTES",
    "FINAL_BYTES",
    "HEADER_BYTES",
    "RESERVED_CE_KINDS",
    "ExtraMessage",
    "Fanout",
    "TrafficConfig",
    "assurance_size",
    "default_core_count",
    "slot_of_payload",
]

ANCHOR_HASH_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
ASSURANCE_FIXED_BYTES: Final = ANCHOR_HASH_BYTES + ED25519_SIGNATURE_BYTES
BLOCK_REQUEST_BYTES: Final = 32 + 1 + 4
FINAL_BYTES: Final = 32 + 4
HEADER_BYTES: Final = len(Header(bytes(HASH_SIZE), 0).encode())
"""A GP header without epoch, tickets or offenders markers (297 bytes): what the
synthetic chain's headers are on the wire, so every runtime announces the same size."""
MESSAGE_LENGTH_PREFIX: Final = 4
"""Every JAMNP-S message is preceded by a u32 length."""
RESERVED_CE_KINDS: Final = {128: "CE 128 block request", 141: "CE 141 assurance distribution"}
"""CE kinds the slot traffic already sends: an extra message may not take them."""
SLOT_TAG_BYTES: Final = 4
"""An extra message starts with its slot as a u32 LE (when it is that long)."""

Fanout = int | Literal["grid", "all"]


def default_core_count(validator_count: int) -> int:
    """Cores for a set of ``validator_count`` validators: the GP's 3 validators per core."""
    return max(1, validator_count // 3)


def assurance_size(core_count: int) -> int:
    """Bytes of one CE 141 assurance message for ``core_count`` cores."""
    if core_count < 1:
        raise UsageError("core_count must be >= 1")
    return ASSURANCE_FIXED_BYTES + (core_count + 7) // 8


@dataclass(frozen=True, slots=True)
class ExtraMessage:
    """An extra CE message every validator sends each slot, for experiments.

    ``kind``: the CE stream kind (128-255). ``size``: bytes of the request.
    ``fanout``: how many peers each sender picks (drawn per slot from the seed),
    or ``"grid"`` (its grid neighbours) or ``"all"`` (every other validator).
    ``offset``: seconds after the slot start when it is sent.
    """

    kind: int = 255
    size: int = 1024
    fanout: Fanout = 1
    offset: float = 1.0

    def __post_init__(self) -> None:
        if not 128 <= self.kind <= 255:
            raise UsageError(f"extra message kind {self.kind} is not a CE kind (128-255)")
        if self.kind in RESERVED_CE_KINDS:
            raise UsageError(f"extra message kind {self.kind} is the slot traffic's own "
                             f"{RESERVED_CE_KINDS[self.kind]}; pick another CE kind")
        if self.size < 0:
            raise UsageError("extra message size must be >= 0")
        if isinstance(self.fanout, int) and self.fanout < 0:
            raise UsageError("extra message fanout must be >= 0")
        if not isinstance(self.fanout, int) and self.fanout not in ("grid", "all"):
            raise UsageError(f"extra message fanout {self.fanout!r}: an integer, grid or all")
        if self.offset < 0:
            raise UsageError("extra message offset must be >= 0")

    @classmethod
    def parse(cls, text: str) -> ExtraMessage:
        """``KIND:SIZE:FANOUT:OFFSET`` (fan-out a count, ``grid`` or ``all``; offset in
        seconds), the ``jamsim node --traffic-extra`` form (:meth:`option`)."""
        parts = text.split(":")
        if len(parts) != 4:
            raise UsageError(f"an extra message is KIND:SIZE:FANOUT:OFFSET, got {text!r}")
        kind, size, fanout, offset = parts
        spread: Fanout
        if fanout == "grid":
            spread = "grid"
        elif fanout == "all":
            spread = "all"
        else:
            try:
                spread = int(fanout)
            except ValueError:
                raise UsageError(f"extra message fanout {fanout!r}: an integer, grid or all"
                                 ) from None
        try:
            return cls(kind=int(kind), size=int(size), fanout=spread, offset=float(offset))
        except ValueError:
            raise UsageError(f"an extra message is KIND:SIZE:FANOUT:OFFSET with numbers, "
                             f"got {text!r}") from None

    def option(self) -> str:
        """This message as :meth:`parse` reads it."""
        return f"{self.kind}:{self.size}:{self.fanout}:{self.offset!r}"

    def payload(self, slot: int) -> bytes:
        """The message content for ``slot``: the slot as u32 LE, zero-filled to ``size``
        (truncated when ``size`` is under four bytes)."""
        return (slot % (1 << 32)).to_bytes(SLOT_TAG_BYTES, "little").ljust(
            self.size, b"\0")[:self.size]


def slot_of_payload(payload: bytes) -> int | None:
    """The slot an extra message's content names, or ``None`` when it is too short."""
    if len(payload) < SLOT_TAG_BYTES:
        return None
    return int.from_bytes(payload[:SLOT_TAG_BYTES], "little")


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """Slot clock and message sizes of the JAM traffic a run sends.

    ``slot``: slot length in seconds (GP: 6 s). ``assurance_lead``: how long before
    a slot starts its assurances are sent (JAMNP-S CE 141: "approximately 2
    seconds"). ``block_size``: bytes of a block served by CE 128. ``header_size``:
    bytes of a block header, carried by each UP 0 announcement.
    ``core_count`` / ``assurance_size``: ``None`` derives them from the set size
    (:func:`default_core_count`, :func:`assurance_size`); an explicit
    ``assurance_size`` wins. ``first_slot``: slots before it send nothing (slot 0
    starts at time 0; the set is still connecting then, which the metrics show).
    """

    slot: float = 6.0
    assurance_lead: float = 2.0
    block_size: int = 100_000
    header_size: int = HEADER_BYTES
    core_count: int | None = None
    assurance_size: int | None = None
    extra: tuple[ExtraMessage, ...] = field(default_factory=tuple)
    first_slot: int = 0

    def __post_init__(self) -> None:
        if self.slot <= 0:
            raise UsageError("slot length must be > 0")
        if not 0 <= self.assurance_lead < self.slot:
            raise UsageError("assurance lead must be >= 0 and shorter than a slot")
        if self.block_size < 0 or self.header_size < 0:
            raise UsageError("block and header sizes must be >= 0")
        if self.core_count is not None and self.core_count < 1:
            raise UsageError("core_count must be >= 1")
        if self.assurance_size is not None and self.assurance_size < 0:
            raise UsageError("assurance size must be >= 0")
        if self.first_slot < 0:
            raise UsageError("first_slot must be >= 0")
        kinds = [extra.kind for extra in self.extra]
        for extra in self.extra:
            if extra.offset >= self.slot:
                raise UsageError("extra message offset must be shorter than a slot")
            if kinds.count(extra.kind) > 1:
                raise UsageError(f"extra message kind {extra.kind} is given twice; "
                                 "each extra message needs its own kind")

    def extra_kinds(self) -> dict[int, int]:
        """Kind -> size of each extra message: what a receiver accepts, and its cap."""
        return {extra.kind: extra.size for extra in self.extra}

    def assurance_bytes(self, validator_count: int) -> int:
        """Size of one assurance for a set of ``validator_count`` validators."""
        if self.assurance_size is not None:
            return self.assurance_size
        cores = self.core_count if self.core_count is not None else \
            default_core_count(validator_count)
        return assurance_size(cores)

    def jam_parameters(self, validator_count: int) -> dict[str, int]:
        """The JAM protocol parameters this traffic implies, by JIP-3 field name.

        What a node announces in its telemetry node information must match what
        it sends: the core count its assurances' bitfields are sized for, and the
        slot period of its clock (whole seconds on the wire: a sub-second test
        slot is announced as 1 s).
        """
        cores = self.core_count if self.core_count is not None else \
            default_core_count(validator_count)
        return {"core_count": cores, "slot_period": max(1, math.ceil(self.slot))}

    @property
    def fetch_timeout(self) -> float:
        """How long a node waits for a CE 128 block before asking the next announcer.

        One slot, in every runtime: a fetch still unanswered when the next block
        is due has lost its purpose. The real node and the ``quic`` fidelity read it
        here, so a block both would have waited for is recorded by both.
        """
        return self.slot

    @property
    def announcement_bytes(self) -> int:
        """Bytes of one UP 0 announcement: the header plus the latest final hash and slot."""
        return self.header_size + FINAL_BYTES
