"""JAM slot traffic of one real node: author, announce, fetch, relay, assure.

The schedule (:class:`jamsim.traffic.schedule.SlotSchedule`) says who authors each
slot and when assurances go out; the chain (:class:`jamsim.traffic.chain.SyntheticChain`)
says what the blocks are. This module is the asyncio side that sends them for
real, on the node's live connections:

* at each slot start the author adds its block to its store and announces it on
  UP 0 to its grid neighbours;
* a node hearing an announcement for a block it lacks fetches it with CE 128
  (descending inclusive, one block) from the announcer, falling back to the next
  announcer if that fails, then announces it to its own grid neighbours;
* ``assurance_lead`` before each slot it sends one CE 141 assurance, anchored on
  the parent of that slot's block, to every other current validator;
* CE 128 requests are served from the node's :class:`BlockStore` only;
* each extra CE message of the config (``offset`` into every slot) goes to its
  targets on a stream of its kind (:mod:`jamsim.protocol.extra_streams`); the
  node accepts the extra kinds of its config and logs each one received whole.

Slot 0 is the chain's genesis, known to every node: it is never authored or
sent. Every node derives the same blocks from the seed, so a block is recognised
by its header hash and an assurance's anchor tells which slot it is for.

What the node saw is kept in :class:`TrafficLog` (Unix times) and reported to the
harness through the node's status reply on the control channel
(:meth:`NodeTraffic.status`, the last ``STATUS_WINDOW`` slots), which the harness
turns into the ``blocks.parquet`` / ``assurances.parquet`` rows the simulator
writes (:mod:`jamsim.testnet.traffic`). That window, and how far back an author
looks for an assurance's anchor (``ASSURANCE_LATE_SLOTS``), are the rule every
runtime follows for late deliveries (:mod:`jamsim.traffic.late`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jamsim.protocol.errors import PeerProtocolError
from jamsim.protocol.messages import (
    Announcement,
    Assurance,
    BlockRequest,
    RequestDirection,
    bitfield_size,
)
from jamsim.traffic.chain import KEEP_SLOTS, BlockStore, SyntheticChain
from jamsim.traffic.config import slot_of_payload
from jamsim.traffic.late import ASSURANCE_LATE_SLOTS, STATUS_WINDOW
from jamsim.traffic.schedule import SlotSchedule

if TYPE_CHECKING:
    from jamsim.net.node import Node

__all__ = ["NodeTraffic", "TrafficLog", "chain_for"]

log = logging.getLogger(__name__)

ASSURANCE_CONTEXT = b"jam_available"
"""GP signing context X_A of an assurance."""


def chain_for(schedule: SlotSchedule) -> SyntheticChain:
    """The synthetic chain every runtime builds for ``schedule`` (same seed, author, size)."""
    seed = int.from_bytes(hashlib.blake2b(str(schedule.seed).encode(), digest_size=8).digest(),
                          "little", signed=True)
    return SyntheticChain(seed, schedule.validator_count, block_size=schedule.block_size,
                          author=schedule.author)


@dataclass(slots=True)
class TrafficLog:
    """What one node saw, in Unix seconds, keyed by slot.

    ``blocks[slot] = (time, via)``: when the node had the block (the author: when
    it produced it) and the validator index it fetched it from (-1: authored).
    ``assured[slot]``: when it sent its assurance for ``slot``.
    ``assurances[(slot, assurer)]``: when an assurance for a slot this node
    authors arrived (the only copy the delivery tables measure).
    ``extra_sent[(slot, kind)]``: when it sent its extra messages of ``kind``.
    ``extras[(slot, kind, sender)]``: when one from ``sender`` arrived whole.
    """

    blocks: dict[int, tuple[float, int]] = field(default_factory=dict)
    assured: dict[int, float] = field(default_factory=dict)
    assurances: dict[tuple[int, int], float] = field(default_factory=dict)
    extra_sent: dict[tuple[int, int], float] = field(default_factory=dict)
    extras: dict[tuple[int, int, int], float] = field(default_factory=dict)

    def window(self, since: int) -> dict[str, list[list[float]]]:
        """JSON-ready rows of slots ``>= since`` (the extra rows only when there are)."""
        out = {
            "blocks": [[s, t, via] for s, (t, via) in sorted(self.blocks.items()) if s >= since],
            "assured": [[s, t] for s, t in sorted(self.assured.items()) if s >= since],
            "assurances": [
                [s, j, t] for (s, j), t in sorted(self.assurances.items()) if s >= since
            ],
        }
        if self.extra_sent or self.extras:
            out["extra_sent"] = [[s, k, t] for (s, k), t in sorted(self.extra_sent.items())
                                 if s >= since]
            out["extras"] = [[s, k, j, t] for (s, k, j), t in sorted(self.extras.items())
                             if s >= since]
        return out


class NodeTraffic:
    """Drives the slot traffic of ``node`` (validator ``index`` of its set).

    Create it before ``node.start()`` (it installs the node's CE 128 block source
    and listeners), call :meth:`start` after, :meth:`stop` before ``node.stop()``.
    ``start_unix`` is the Unix time at which slot 0 starts, the same for every
    node of the run.
    """

    def __init__(
        self,
        node: Node,
        index: int,
        schedule: SlotSchedule,
        start_unix: float,
        *,
        chain: SyntheticChain | None = None,
        fetch_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.index = index
        self.schedule = schedule
        self.start_unix = start_unix
        self.chain = chain if chain is not None else chain_for(schedule)
        self.fetch_timeout = (fetch_timeout if fetch_timeout is not None
                              else schedule.config.fetch_timeout)
        self._clock = clock
        self.store = BlockStore(self.chain.genesis)
        self.log = TrafficLog()
        self.fetch_failures = 0
        self._announcers: dict[bytes, list[bytes]] = {}
        self._fetching: dict[bytes, asyncio.Task[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._next_slot = 1
        self._next_assurance_slot = 1
        # extras in send order within a slot: (offset, index into config.extra)
        self._extra_steps = sorted((e.offset, i) for i, e in enumerate(schedule.config.extra))
        self._next_extra = (1, 0)  # (slot, step)
        keys = [v.key for v in node.validator_set]
        self._keys = keys
        self._index_of = {k: i for i, k in enumerate(keys)}
        self._neighbours = [keys[j] for j in schedule.grid_neighbours(index)]
        node.block_source = self.store.serve
        node.best = self.chain.genesis_final
        node.announcement_listeners.append(self._on_announcement)
        node.assurance_listeners.append(self._on_assurance)
        node.extra_listeners.append(self._on_extra)
        node.traffic = self

    # ------------------------------------------------------------------ clock

    def run_time(self) -> float:
        """Seconds since slot 0 started."""
        return self._clock() - self.start_unix

    def start(self) -> None:
        """Begin with the first slot (and assurance) not yet past."""
        now = self.run_time()
        first = max(1, self.schedule.config.first_slot)
        self._next_slot = max(first, self.schedule.slot_at(now) + 1)
        self._next_assurance_slot = first
        while self.schedule.assurance_time(self._next_assurance_slot) < now:
            self._next_assurance_slot += 1
        self._next_extra = (first, 0)
        while self._extra_steps and self._extra_time(self._next_extra) < now:
            self._advance_extra()
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._fetching.values():
            task.cancel()
        self._fetching.clear()

    def _arm(self) -> None:
        s = self.schedule
        due = min(s.slot_start(self._next_slot), s.assurance_time(self._next_assurance_slot))
        if self._extra_steps:
            due = min(due, self._extra_time(self._next_extra))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, due - self.run_time()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        s = self.schedule
        now = self.run_time()
        # A process stopped (SIGSTOP) or starved past a tick catches up without
        # sending what is already pointless: no assurance once its slot started,
        # no block once its slot ended.
        while s.assurance_time(self._next_assurance_slot) <= now:
            if now < s.slot_start(self._next_assurance_slot):
                self._assure(self._next_assurance_slot)
            self._next_assurance_slot += 1
        while s.slot_start(self._next_slot) <= now:
            if now < s.slot_end(self._next_slot):
                self._author(self._next_slot)
            self._next_slot += 1
            self.store.prune(self._next_slot - KEEP_SLOTS)
        while self._extra_steps and self._extra_time(self._next_extra) <= now:
            slot, step = self._next_extra
            if now < s.slot_end(slot):
                self._send_extra(slot, self._extra_steps[step][1])
            self._advance_extra()
        self._arm()

    # ------------------------------------------------------------------ blocks

    def _author(self, slot: int) -> None:
        if self.schedule.author(slot) != self.index:
            return
        block = self.chain.block(slot)
        self.store.add(block)
        self.log.blocks[slot] = (self._clock(), -1)
        self._announce(Announcement(block.header, self.chain.genesis_final), exclude=())

    def _announce(self, ann: Announcement, exclude: tuple[bytes, ...]) -> None:
        self.node.leaves = (self.store.best_final,)
        targets = [k for k in self._neighbours if k not in exclude]
        self.node.announce_to(targets, ann)

    def _on_announcement(self, peer: bytes, ann: Announcement) -> None:
        h = ann.header.hash()
        if h in self.store:
            return
        self._announcers.setdefault(h, []).append(peer)
        if h not in self._fetching:
            task = asyncio.get_running_loop().create_task(self._fetch(h, ann))
            self._fetching[h] = task

    async def _fetch(self, block_hash: bytes, ann: Announcement) -> None:
        request = BlockRequest(block_hash, RequestDirection.DESCENDING_INCLUSIVE, 1)
        tried = 0
        try:
            announcers = self._announcers[block_hash]
            while tried < len(announcers):
                peer = announcers[tried]
                tried += 1
                try:
                    blocks = await self.node.request_blocks(peer, request, self.fetch_timeout)
                except (PeerProtocolError, ConnectionError, TimeoutError) as exc:
                    self.fetch_failures += 1
                    log.debug("CE 128 for slot %d from %s failed: %s",
                              ann.header.slot, peer.hex()[:8], exc)
                    continue
                if len(blocks) != 1 or blocks[0].hash() != block_hash:
                    self.fetch_failures += 1
                    log.warning("CE 128: %s answered with another block", peer.hex()[:8])
                    continue
                self.store.add(blocks[0])
                slot = blocks[0].header.slot
                self.log.blocks.setdefault(slot, (self._clock(), self._index_of.get(peer, -1)))
                self._announce(ann, exclude=tuple(announcers))
                return
        finally:
            self._fetching.pop(block_hash, None)
            if block_hash in self.store:
                self._announcers.pop(block_hash, None)

    # -------------------------------------------------------------- assurances

    def _assure(self, slot: int) -> None:
        if not self.schedule.has_assurances(slot):
            return
        anchor = self.chain.hash_at(slot - 1)
        cores = self.node.core_count
        bitfield = hashlib.blake2b(anchor + self.node.key, digest_size=64).digest()
        bitfield = (bitfield * (bitfield_size(cores) // 64 + 1))[: bitfield_size(cores)]
        message = ASSURANCE_CONTEXT + hashlib.blake2b(anchor + bitfield, digest_size=32).digest()
        assurance = Assurance(anchor, bitfield, self.node.identity.sign(message))
        now = self._clock()
        self.log.assured[slot] = now
        if self.schedule.author(slot) == self.index:
            self.log.assurances.setdefault((slot, self.index), now)
        for key in self._keys:
            if key != self.node.key:
                self.node.send_assurance(key, assurance)

    def _slot_of_anchor(self, anchor: bytes) -> int | None:
        """The slot an assurance anchored on ``anchor`` is for (near the current slot:
        from ``ASSURANCE_LATE_SLOTS`` back, so a later assurance is not recognised)."""
        current = self.schedule.slot_at(self.run_time())
        for slot in range(max(1, current - ASSURANCE_LATE_SLOTS), current + 3):
            if self.chain.hash_at(slot - 1) == anchor:
                return slot
        return None

    def _on_assurance(self, peer: bytes, assurance: Assurance) -> None:
        slot = self._slot_of_anchor(assurance.anchor)
        assurer = self._index_of.get(peer)
        if slot is None or assurer is None or self.schedule.author(slot) != self.index:
            return
        self.log.assurances.setdefault((slot, assurer), self._clock())

    # -------------------------------------------------------------- extra CE

    def _extra_time(self, at: tuple[int, int]) -> float:
        slot, step = at
        return self.schedule.slot_start(slot) + self._extra_steps[step][0]

    def _advance_extra(self) -> None:
        slot, step = self._next_extra
        self._next_extra = (slot + 1, 0) if step + 1 == len(self._extra_steps) \
            else (slot, step + 1)

    def _send_extra(self, slot: int, index: int) -> None:
        extra = self.schedule.config.extra[index]
        payload = extra.payload(slot)
        self.log.extra_sent[(slot, extra.kind)] = self._clock()
        for dst in self.schedule.extra_targets(slot, self.index, index):
            self.node.send_extra(self._keys[dst], extra.kind, payload)

    def _on_extra(self, peer: bytes, kind: int, payload: bytes) -> None:
        sender = self._index_of.get(peer)
        if sender is None:
            return
        slot = slot_of_payload(payload)
        if slot is None:
            slot = self.schedule.slot_at(self.run_time())
        self.log.extras.setdefault((slot, kind, sender), self._clock())

    # ------------------------------------------------------------------ report

    def status(self) -> dict[str, Any]:
        """The node's receipts of the last ``STATUS_WINDOW`` slots, for the harness."""
        since = self.schedule.slot_at(self.run_time()) - STATUS_WINDOW
        body: dict[str, Any] = self.log.window(since)
        body["start_unix"] = self.start_unix
        body["fetch_failures"] = self.fetch_failures
        return body

