"""The JAM slot schedule: who authors each slot, who sends what to whom, when.

Pure and sans-IO, like the connection core: the same ``(validator_count, seed,
config)`` gives the same schedule on every runtime, so the ``model`` overlay, the
``quic`` fidelity and real nodes send the same traffic and their delivery tables
compare row for row.

Per slot ``s`` (``slot_start(s) = s * config.slot`` seconds after the run start):

* **CE 141 assurances**: at ``assurance_time(s) = slot_start(s) - assurance_lead``
  every validator sends one assurance to every other current validator (the text
  says "to all possible block authors"); the one that matters for slot ``s`` is
  the one to ``author(s)``, and it counts if it arrives before ``slot_start(s)``.
  Slots whose assurance time is before 0 send none.
* **Block**: at ``slot_start(s)`` ``author(s)`` announces its block on UP 0 to its
  grid neighbours. A node that hears an announcement for a block it lacks
  requests it with CE 128 from the announcer and, once it has it, announces it to
  its own grid neighbours. Only the author's announcements are scheduled; the
  rest are reactions (:meth:`SlotSchedule.relay_targets`).
* **Extra CE messages** (``config.extra``): each validator, ``offset`` seconds into
  the slot, to ``fanout`` peers.

Indices are positions in the current validator set (``ValidatorSet`` order); the
grid is the JAMNP-S one (:meth:`jamsim.identity.ValidatorSet.grid_neighbours`,
computed here from the count alone so no keys are needed).
"""

from __future__ import annotations

import enum
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from jamsim.core.errors import UsageError
from jamsim.traffic.config import (
    BLOCK_REQUEST_BYTES,
    MESSAGE_LENGTH_PREFIX,
    TrafficConfig,
)

__all__ = [
    "MessageKind",
    "SlotMessage",
    "SlotSchedule",
    "grid_neighbours",
    "grid_width",
]


class MessageKind(enum.Enum):
    """What a scheduled message is; ``stream_kind`` is its JAMNP-S stream kind byte."""

    ASSURANCE = "assurance"
    ANNOUNCEMENT = "announcement"
    BLOCK_REQUEST = "block_request"
    BLOCK = "block"
    EXTRA = "extra"

    @property
    def stream_kind(self) -> int:
        return _STREAM_KIND[self]


_STREAM_KIND = {
    MessageKind.ASSURANCE: 141,
    MessageKind.ANNOUNCEMENT: 0,
    MessageKind.BLOCK_REQUEST: 128,
    MessageKind.BLOCK: 128,
    MessageKind.EXTRA: 255,
}


@dataclass(frozen=True, slots=True)
class SlotMessage:
    """One message of the schedule: ``src`` sends ``size`` content bytes to ``dst`` at ``at``.

    ``size`` is the message content (what the 4-byte length prefix announces);
    ``wire_size`` adds the prefix. ``stream_kind`` is the JAMNP-S kind byte (for
    ``EXTRA`` the configured CE kind).
    """

    slot: int
    kind: MessageKind
    stream_kind: int
    src: int
    dst: int
    size: int
    at: float

    @property
    def wire_size(self) -> int:
        return self.size + MESSAGE_LENGTH_PREFIX


def grid_width(validator_count: int) -> int:
    """JAMNP-S grid width ``floor(sqrt(V))`` (at least 1)."""
    return max(1, math.isqrt(validator_count))


def grid_neighbours(index: int, validator_count: int) -> list[int]:
    """Indices sharing a row (``i // W``) or a column (``i % W``) with ``index``, ascending."""
    if not 0 <= index < validator_count:
        raise UsageError(f"validator index {index} outside 0..{validator_count - 1}")
    w = grid_width(validator_count)
    row, col = divmod(index, w)
    same_row = range(row * w, min(validator_count, (row + 1) * w))
    same_col = range(col, validator_count, w)
    return sorted({*same_row, *same_col} - {index})


class SlotSchedule:
    """The deterministic JAM traffic schedule of one validator set and seed."""

    __slots__ = ("_grid", "_seed_bytes", "config", "seed", "validator_count")

    def __init__(self, validator_count: int, seed: int | str,
                 config: TrafficConfig | None = None) -> None:
        if validator_count < 1:
            raise UsageError("a schedule needs at least one validator")
        self.validator_count = validator_count
        self.seed = seed
        self.config = config or TrafficConfig()
        self._seed_bytes = str(seed).encode()
        self._grid: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ clock

    def slot_start(self, slot: int) -> float:
        """Seconds after the run start when ``slot`` begins (its block is authored)."""
        return slot * self.config.slot

    def slot_end(self, slot: int) -> float:
        """When ``slot`` ends: a block or assurance counts as on time before this."""
        return (slot + 1) * self.config.slot

    def assurance_time(self, slot: int) -> float:
        """When the assurances for ``slot`` are sent (``assurance_lead`` before it starts)."""
        return self.slot_start(slot) - self.config.assurance_lead

    def slot_at(self, t: float) -> int:
        """The slot running at time ``t``."""
        return math.floor(t / self.config.slot)

    def slots(self, duration: float) -> range:
        """The slots a run of ``duration`` s sends and measures, in every runtime.

        From ``config.first_slot`` but never slot 0: slot 0 is genesis, nothing is
        authored in it (a real node starts its chain there). Up to the last slot that
        ends by ``duration``: a slot the run's end cuts short would count as lost
        what the end cut off.
        """
        first = max(1, self.config.first_slot)
        last = math.floor(duration / self.config.slot + 1e-9)  # slot_end(last - 1) <= duration
        return range(first, max(first, last))

    def has_assurances(self, slot: int) -> bool:
        """Whether ``slot``'s assurances are sent (their time is not before the run)."""
        return slot >= self.config.first_slot and self.assurance_time(slot) >= 0

    # ------------------------------------------------------------------ roles

    def author(self, slot: int) -> int:
        """The block author of ``slot``: a uniform draw from the seed (blake2b), not a
        Safrole lottery, so every runtime agrees without any chain state."""
        if slot < 0:
            raise UsageError("slot must be >= 0")
        digest = hashlib.blake2b(
            b"jamsim-author:" + self._seed_bytes + b":" + str(slot).encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "little") % self.validator_count

    def grid_neighbours(self, index: int) -> list[int]:
        """The JAMNP-S grid neighbours of ``index`` (cached; do not mutate the list)."""
        cached = self._grid.get(index)
        if cached is None:
            cached = grid_neighbours(index, self.validator_count)
            self._grid[index] = cached
        return cached

    def relay_targets(self, node: int, slot: int) -> list[int]:
        """Whom ``node`` announces ``slot``'s block to once it has it: its grid neighbours."""
        del slot  # the grid is per epoch, not per slot
        return self.grid_neighbours(node)

    # ------------------------------------------------------------------ sizes

    @property
    def assurance_size(self) -> int:
        return self.config.assurance_bytes(self.validator_count)

    @property
    def announcement_size(self) -> int:
        return self.config.announcement_bytes

    @property
    def block_request_size(self) -> int:
        return BLOCK_REQUEST_BYTES

    @property
    def block_size(self) -> int:
        return self.config.block_size

    # ------------------------------------------------------------------ messages

    def messages(self, slot: int, node: int) -> list[SlotMessage]:
        """What ``node`` sends on its own initiative for ``slot``, in time order.

        Assurances for ``slot`` (sent before it starts), the block announcements
        when ``node`` authors it, the extra messages. Relayed announcements and
        CE 128 exchanges are reactions to received messages, not listed.
        """
        if not 0 <= node < self.validator_count:
            raise UsageError(f"validator index {node} outside 0..{self.validator_count - 1}")
        out: list[SlotMessage] = []
        if self.has_assurances(slot):
            at = self.assurance_time(slot)
            size = self.assurance_size
            out.extend(
                SlotMessage(slot, MessageKind.ASSURANCE, 141, node, dst, size, at)
                for dst in range(self.validator_count) if dst != node
            )
        if slot >= self.config.first_slot and self.author(slot) == node:
            at = self.slot_start(slot)
            size = self.announcement_size
            out.extend(
                SlotMessage(slot, MessageKind.ANNOUNCEMENT, 0, node, dst, size, at)
                for dst in self.grid_neighbours(node)
            )
        if slot >= self.config.first_slot:
            for n, extra in enumerate(self.config.extra):
                at = self.slot_start(slot) + extra.offset
                out.extend(
                    SlotMessage(slot, MessageKind.EXTRA, extra.kind, node, dst, extra.size, at)
                    for dst in self.extra_targets(slot, node, n)
                )
        out.sort(key=lambda m: m.at)
        return out

    def all_messages(self, slot: int) -> Iterator[SlotMessage]:
        """Every node's :meth:`messages` for ``slot`` (V * (V - 1) assurances: iterate)."""
        for node in range(self.validator_count):
            yield from self.messages(slot, node)

    def extra_targets(self, slot: int, node: int, extra_index: int) -> list[int]:
        """Recipients of ``config.extra[extra_index]`` sent by ``node`` in ``slot``."""
        extra = self.config.extra[extra_index]
        fanout = extra.fanout
        v = self.validator_count
        if fanout == "all":
            return [*range(node), *range(node + 1, v)]
        if fanout == "grid":
            return list(self.grid_neighbours(node))
        count = min(int(fanout), v - 1)
        rng = random.Random(
            b"jamsim-extra:" + self._seed_bytes
            + f":{slot}:{node}:{extra_index}".encode()
        )
        # A draw from the V - 1 others, by position (the position past ``node``
        # names the next validator): no list of them built per call at V=1023.
        return sorted(j + (j >= node) for j in rng.sample(range(v - 1), count))
