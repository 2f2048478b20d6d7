"""JAM slot traffic in the ``quic`` fidelity: real messages on real aioquic streams.

The ``model`` fidelity evaluates each slot analytically
(:mod:`jamsim.traffic.simulated`); here the same schedule is *sent*: the author's
UP 0 announcements, the CE 128 fetch of every node that hears of a block it
lacks, the relays, and every CE 141 assurance, each on the transports'
:class:`~jamsim.net.connection.JamConnection` (the asyncio node's own stream
code), so loss recovery, congestion control, stream credit and head-of-line
effects of aioquic shape the delivery times, and data sent across a cut path is
what makes QUIC give up on a connection.

Behaviour mirrors the real node's driver (:mod:`jamsim.net.traffic`): slot 0 is
genesis, blocks come from the same synthetic chain, a fetch falls back to the
next announcer after ``fetch_timeout`` or a failure, assurances are anchored on
the parent of their slot's block. Only a live process (not crashed, not paused)
acts on a slot tick. Extra CE messages (``config.extra``) go out ``offset``
into each slot on a stream of their kind (:mod:`jamsim.protocol.extra_streams`),
from each live sender to each of its targets it holds a live connection to; a
receiver records one when the whole message has arrived.

:class:`QuicSlotTraffic` takes the constructor arguments of
:class:`jamsim.traffic.simulated.SimulatedTraffic` and hands its sinks the same
per-slot :class:`~jamsim.traffic.records.BlockBatch` /
:class:`~jamsim.traffic.records.AssuranceBatch` (and
:class:`~jamsim.traffic.records.MessageBatch`), once per slot and in slot order.

**Late arrivals** are recorded with their real time under the rule every runtime
follows (:mod:`jamsim.traffic.late`, the real node's): a block or extra message
until the end of slot ``slot + LATE_SLOTS`` (a real node's status window, 64
slots), an assurance until the end of the next slot (``ASSURANCE_LATE_SLOTS``: a
real author no longer recognises its anchor after that), and nothing at or after
the run's end (``until``). Whether
something arrived *within* its slot is the analysis's question
(:mod:`jamsim.analysis.delivery`), answered from those times alike for every
runtime. A slot is handed over at the first slot start at which it can record
nothing more: every node has the block, and every assurance and extra message
sent has arrived (or the assurance window is over); when everything arrives
within its slot, that is the start of the next slot. Otherwise it waits for its
window to close, and later slots wait behind it. Memory therefore holds at most
``LATE_SLOTS + 1`` slots of receipts, and that many only while slots have
something outstanding (a partition, a crashed author). Measured at V=1023: 0.29
MB a slot for blocks and assurances, and 8 bytes a scheduled extra message (the
rows of the slot's batch, :class:`_ExtraRows`): 0.5 MB a slot with ``grid``
fan-out, so ~53 MB for a whole window.
:meth:`QuicSlotTraffic.finish` hands over the slots still open when the run stops.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jamsim.net.connection import JamConnection
from jamsim.protocol.limits import MAX_BLOCK_SIZE
from jamsim.protocol.messages import (
    Announcement,
    Assurance,
    Block,
    BlockRequest,
    RequestDirection,
    bitfield_size,
)
from jamsim.protocol.stream_protocols import CE128Client
from jamsim.traffic.chain import KEEP_SLOTS, BlockStore
from jamsim.traffic.config import TrafficConfig, default_core_count, slot_of_payload
from jamsim.traffic.late import recorded_before
from jamsim.traffic.receipts import hops_from_via
from jamsim.traffic.records import (
    NEVER,
    AssuranceBatch,
    AssuranceDelivery,
    BlockBatch,
    BlockDelivery,
    MessageBatch,
    assurances_batch,
    blocks_batch,
)
from jamsim.traffic.schedule import MessageKind, SlotSchedule
from jamsim.traffic.simulated import TrafficRecording

if TYPE_CHECKING:
    from jamsim.sim.quic.transport import QuicTransport, _End
    from jamsim.sim.simulation import SimNode, Simulation

__all__ = ["QuicSlotTraffic", "QuicTrafficRecording"]


class _NodeState:
    """What one validator (position in the current set) holds."""

    __slots__ = ("announcers", "fetching", "store")

    def __init__(self, store: BlockStore) -> None:
        self.store = store
        self.announcers: dict[bytes, list[bytes]] = {}
        self.fetching: dict[bytes, int] = {}  # hash -> announcers tried so far


class _SlotReceipts:
    """What was sent and what arrived of one slot's traffic, while the slot is open.

    Positions are in the current validator set. ``assurances_out`` and
    ``extras_out`` count messages sent and not yet arrived, so a slot whose
    traffic has all arrived is handed over without waiting for the late window.
    """

    __slots__ = ("assurances_out", "assured", "blocks", "delivered", "extras", "extras_out")

    def __init__(self) -> None:
        self.blocks: dict[int, tuple[float, int]] = {}  # node -> (had it when, via)
        self.assured: dict[int, float] = {}  # assurer -> sent when
        self.delivered: dict[int, float] = {}  # assurer -> the author had it when
        self.assurances_out = 0
        self.extras: _ExtraRows | None = None  # made by the slot's first extra
        self.extras_out = 0


class _ExtraRows:
    """One slot's extra messages laid out as the rows of its
    :class:`~jamsim.traffic.records.MessageBatch`: by extra, then sender, then the
    sender's targets in schedule order (ascending). Two floats a scheduled message,
    so a slot held open for late messages costs 8 bytes a message, not a
    dictionary entry."""

    __slots__ = ("drawn", "got", "schedule", "sent", "slot", "starts")

    def __init__(self, schedule: SlotSchedule, slot: int) -> None:
        self.schedule = schedule
        self.slot = slot
        v = schedule.validator_count
        extras = schedule.config.extra
        # the targets drawn per slot (a count as fan-out), by extra then sender; the
        # fixed ones ("grid", "all") are not kept: the schedule's own cached grid,
        # and every other validator in order
        self.drawn: list[list[list[int]] | None] = [
            None if e.fanout in ("grid", "all")
            else [schedule.extra_targets(slot, pos, i) for pos in range(v)]
            for i, e in enumerate(extras)]
        counts: list[int] = []
        for i, extra in enumerate(extras):
            drawn = self.drawn[i]
            if drawn is not None:
                counts.extend(len(t) for t in drawn)
            elif extra.fanout == "grid":
                counts.extend(len(schedule.grid_neighbours(pos)) for pos in range(v))
            else:
                counts.extend([v - 1] * v)
        self.starts = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        self.sent = np.full((len(extras), v), math.nan)
        self.got = np.full(int(self.starts[-1]), math.nan)

    def row(self, index: int, sender: int, receiver: int) -> int | None:
        """The row of ``config.extra[index]`` from ``sender`` to ``receiver``; None
        when the schedule sends no such message."""
        v = self.schedule.validator_count
        if not (0 <= sender < v and 0 <= receiver < v) or sender == receiver:
            return None
        drawn = self.drawn[index]
        base = int(self.starts[index * v + sender])
        if drawn is None and self.schedule.config.extra[index].fanout == "all":
            return base + receiver - (receiver > sender)
        targets = drawn[sender] if drawn is not None else self.schedule.grid_neighbours(sender)
        k = bisect.bisect_left(targets, receiver)
        return base + k if k < len(targets) and targets[k] == receiver else None

    def batch(self) -> MessageBatch:
        """The slot's rows: every scheduled message, sent when (NaN: sender down),
        received when (NaN: not while the slot was open)."""
        s = self.schedule
        v = s.validator_count
        kinds = np.empty(len(self.got), dtype=np.int64)
        senders = np.empty(len(self.got), dtype=np.int64)
        receivers = np.empty(len(self.got), dtype=np.int64)
        sent = np.empty(len(self.got), dtype=np.float64)
        for index, extra in enumerate(s.config.extra):
            for pos in range(v):
                lo, hi = int(self.starts[index * v + pos]), int(self.starts[index * v + pos + 1])
                kinds[lo:hi] = extra.kind
                senders[lo:hi] = pos
                receivers[lo:hi] = s.extra_targets(self.slot, pos, index)
                sent[lo:hi] = self.sent[index, pos]
        return MessageBatch(self.slot, kinds, senders, receivers, sent, self.got.copy())


class QuicSlotTraffic:
    """Sends a run's slot traffic over the quic fidelity's real streams."""

    def __init__(self, sim: Simulation, config: TrafficConfig, seed: int | str, until: float,
                 on_block: Callable[[BlockBatch], None],
                 on_assurances: Callable[[AssuranceBatch], None], *,
                 on_messages: Callable[[MessageBatch], None] | None = None,
                 fetch_timeout: float | None = None) -> None:
        from jamsim.net.traffic import chain_for
        from jamsim.traffic.simulated import current_keys

        fabric = sim.quic
        if fabric is None:
            raise TypeError("QuicSlotTraffic needs a quic-fidelity Simulation")
        self.sim = sim
        self.until = until
        self.on_block = on_block
        self.on_assurances = on_assurances
        self.on_messages = on_messages
        self.extra_kinds = config.extra_kinds()
        self._extra_index: dict[int, int] = {}  # kind -> its first index in config.extra
        for i, extra in enumerate(config.extra):
            self._extra_index.setdefault(extra.kind, i)
        self._extra_steps = sorted((e.offset, i) for i, e in enumerate(config.extra))
        # the slots not handed over yet (from ``_emitted``), created on first use
        self._open: dict[int, _SlotReceipts] = {}
        keys = current_keys(sim)
        self.keys: tuple[bytes, ...] = keys
        self.schedule = SlotSchedule(max(1, len(keys)), seed, config)
        self.chain = chain_for(self.schedule)
        self.core_count = config.core_count or default_core_count(len(keys))
        self.fetch_timeout = fetch_timeout if fetch_timeout is not None else config.fetch_timeout
        self._sim_index = [sim.index_of(k) for k in keys]
        self._position = {k: i for i, k in enumerate(keys)}
        self._by_sim = {s: i for i, s in enumerate(self._sim_index)}
        self.nodes = [_NodeState(BlockStore(self.chain.genesis)) for _ in keys]
        self._anchors: dict[bytes, int] = {}
        self._emitted = 0
        self.fetch_failures = 0
        self.messages_sent = 0
        self.slots_evaluated = 0
        fabric.traffic = self
        slots = self.schedule.slots(until)
        self._first = max(1, slots.start)
        self._last = slots.stop  # exclusive
        self._emitted = self._first
        if self._first < self._last:
            self._arm(self._first, assurance=True)
            if self._extra_steps and on_messages is not None:
                self._arm_extra(self._first, 0)

    # ------------------------------------------------------------ transport hooks

    def block_source(self, sim_index: int) -> Callable[[BlockRequest], Sequence[Block] | None]:
        pos = self._by_sim.get(sim_index)
        if pos is None:
            return _nothing
        return self.nodes[pos].store.serve

    def on_announcement(self, sim_index: int) -> Callable[[bytes, Announcement], None]:
        return lambda peer, ann: self._announced(sim_index, peer, ann)

    def on_assurance(self, sim_index: int) -> Callable[[bytes, Assurance], None]:
        return lambda peer, a: self._assurance_in(sim_index, peer, a)

    def on_extra(self, sim_index: int) -> Callable[[bytes, int, bytes], None]:
        return lambda peer, kind, payload: self._extra_in(sim_index, peer, kind, payload)

    # ------------------------------------------------------------------ clock

    def _arm(self, slot: int, *, assurance: bool) -> None:
        s = self.schedule
        if slot >= self._last:
            return
        if assurance and not s.has_assurances(slot):
            assurance = False
        at = s.assurance_time(slot) if assurance else s.slot_start(slot)
        self.sim.at(at, lambda: self._fire(slot, assurance))

    def _fire(self, slot: int, assurance: bool) -> None:
        if assurance:
            self._assure(slot)
            self._arm(slot, assurance=False)
            return
        self._emit_settled(slot)
        for state in self.nodes:
            state.store.prune(slot - KEEP_SLOTS)
        self._author(slot)
        self.slots_evaluated += 1
        self._arm(slot + 1, assurance=True)

    def _recorded_before(self, slot: int, kind: MessageKind) -> float:
        """When an arrival of ``slot``'s ``kind`` stops being recorded (the shared rule,
        :func:`jamsim.traffic.late.recorded_before`, with this run's end)."""
        return recorded_before(slot, kind, self.schedule.config.slot, self.until)

    def _receipts(self, slot: int, kind: MessageKind) -> _SlotReceipts | None:
        """``slot``'s open receipts for recording a ``kind``; None once handed over,
        once such an arrival is no longer recorded (even when no later slot tick
        closed the slot), or outside the run."""
        if not self._emitted <= slot < self._last or \
                self.sim.now >= self._recorded_before(slot, kind):
            return None
        receipts = self._open.get(slot)
        if receipts is None:
            receipts = self._open[slot] = _SlotReceipts()
        return receipts

    def _acting(self, pos: int) -> SimNode | None:
        node = self.sim.nodes[self._sim_index[pos]]
        if not node.alive or node.paused_at is not None or node.manager is None:
            return None
        return node

    def _end(self, node: SimNode, peer: bytes) -> tuple[QuicTransport, _End, JamConnection] | None:
        """``node``'s live, verified connection to ``peer``, as transport, end, connection."""
        from jamsim.sim.quic.transport import QuicTransport

        manager = node.manager
        cid = manager.live_connection(peer) if manager is not None else None
        transport = node.ends.get(cid) if cid is not None else None
        if not isinstance(transport, QuicTransport):
            return None
        end = transport.client if transport.client.cid == cid and \
            transport.a == node.index else transport.server
        conn = end.conn
        if conn is None or conn.peer_key != peer:
            return None
        return transport, end, conn

    # ------------------------------------------------------------------ blocks

    def _author(self, slot: int) -> None:
        pos = self.schedule.author(slot)
        node = self._acting(pos)
        if node is None:
            return
        block = self.chain.block(slot)
        self.nodes[pos].store.add(block)
        receipts = self._receipts(slot, MessageKind.BLOCK)
        if receipts is not None:
            receipts.blocks[pos] = (self.sim.now, NEVER)
        self._relay(pos, node, Announcement(block.header, self.chain.genesis_final), ())

    def _relay(self, pos: int, node: SimNode, ann: Announcement, exclude: Sequence[bytes]) -> None:
        for j in self.schedule.grid_neighbours(pos):
            key = self.keys[j]
            if key in exclude:
                continue
            found = self._end(node, key)
            if found is not None and found[2].announce(ann):
                self.messages_sent += 1
                found[0]._transmit(found[1])

    def _announced(self, sim_index: int, peer: bytes, ann: Announcement) -> None:
        pos = self._by_sim.get(sim_index)
        if pos is None:
            return
        state = self.nodes[pos]
        h = ann.header.hash()
        if h in state.store:
            return
        state.announcers.setdefault(h, []).append(peer)
        if h not in state.fetching:
            state.fetching[h] = 0
            self._fetch(pos, h, ann)

    def _fetch(self, pos: int, h: bytes, ann: Announcement) -> None:
        """Ask the next untried announcer of ``h``; give up when none is left."""
        state = self.nodes[pos]
        node = self._acting(pos)
        announcers = state.announcers.get(h, [])
        while node is not None and state.fetching.get(h, len(announcers)) < len(announcers):
            tried = state.fetching[h]
            state.fetching[h] = tried + 1
            peer = announcers[tried]
            found = self._end(node, peer)
            if found is None:
                continue
            transport, end, conn = found
            request = BlockRequest(h, RequestDirection.DESCENDING_INCLUSIVE, 1)
            client = CE128Client(request, max_message_size=MAX_BLOCK_SIZE)
            sid = conn.request_with(client, self._on_fetched(pos, h, ann, peer))
            self.messages_sent += 1
            transport._transmit(end)
            gen = node.generation

            def timeout(conn: JamConnection = conn, sid: int = sid,
                        transport: QuicTransport = transport, end: _End = end) -> None:
                if conn.cancel_request(sid):
                    transport._transmit(end)
                    self.fetch_failures += 1
                    self._fetch(pos, h, ann)

            self.sim.call_for(node.index, gen, self.fetch_timeout, timeout)
            return
        state.fetching.pop(h, None)

    def _on_fetched(self, pos: int, h: bytes, ann: Announcement, peer: bytes,
                    ) -> Callable[[tuple[Block, ...] | None, str], None]:
        return lambda blocks, reason: self._fetched(pos, h, ann, peer, blocks, reason)

    def _fetched(self, pos: int, h: bytes, ann: Announcement, peer: bytes,
                 blocks: tuple[Block, ...] | None, reason: str) -> None:
        state = self.nodes[pos]
        if blocks is None or len(blocks) != 1 or blocks[0].hash() != h:
            self.fetch_failures += 1
            self._fetch(pos, h, ann)
            return
        state.store.add(blocks[0])
        state.fetching.pop(h, None)
        announcers = state.announcers.pop(h, [])
        receipts = self._receipts(blocks[0].header.slot, MessageKind.BLOCK)
        if receipts is not None:  # late too, with its real time, while the slot is open
            receipts.blocks.setdefault(pos, (self.sim.now, self._position.get(peer, NEVER)))
        node = self._acting(pos)
        if node is not None:
            self._relay(pos, node, ann, announcers)

    # -------------------------------------------------------------- assurances

    def _assure(self, slot: int) -> None:
        anchor = self.chain.hash_at(slot - 1)
        self._anchors[anchor] = slot
        author = self.schedule.author(slot)
        author_key = self.keys[author]
        size = bitfield_size(self.core_count)
        now = self.sim.now
        receipts = self._receipts(slot, MessageKind.ASSURANCE) or _SlotReceipts()  # open here
        for pos, key in enumerate(self.keys):
            node = self._acting(pos)
            if node is None:
                continue
            receipts.assured[pos] = now
            if pos == author:
                receipts.delivered.setdefault(pos, now)
            digest = hashlib.blake2b(anchor + key, digest_size=64).digest()
            bitfield = (digest * (size // 64 + 1))[:size]
            assurance = Assurance(anchor, bitfield, digest)
            for other in self.keys:
                if other == key:
                    continue
                found = self._end(node, other)
                if found is not None:
                    found[2].send_assurance(assurance)
                    self.messages_sent += 1
                    found[0]._transmit(found[1])
                    if other == author_key:
                        receipts.assurances_out += 1

    def _assurance_in(self, sim_index: int, peer: bytes, assurance: Assurance) -> None:
        pos = self._by_sim.get(sim_index)
        slot = self._anchors.get(assurance.anchor)
        assurer = self._position.get(peer)
        if pos is None or slot is None or assurer is None or self.schedule.author(slot) != pos:
            return
        receipts = self._receipts(slot, MessageKind.ASSURANCE)  # None: a real author
        # would no longer recognise the anchor, or the run is over
        if receipts is not None and assurer not in receipts.delivered:
            receipts.delivered[assurer] = self.sim.now
            receipts.assurances_out -= 1

    # ------------------------------------------------------------- extra CE

    def _arm_extra(self, slot: int, step: int) -> None:
        if step == len(self._extra_steps):
            slot, step = slot + 1, 0
        if slot >= self._last:
            return
        offset, index = self._extra_steps[step]
        self.sim.at(self.schedule.slot_start(slot) + offset,
                    lambda: self._send_extra(slot, step, index))

    def _send_extra(self, slot: int, step: int, index: int) -> None:
        if self._last < 0:
            return
        extra = self.schedule.config.extra[index]
        payload = extra.payload(slot)
        now = self.sim.now
        receipts = self._receipts(slot, MessageKind.EXTRA) or _SlotReceipts()  # open here
        extras = self._extras_of(slot, receipts)
        for pos in range(len(self.keys)):
            node = self._acting(pos)
            if node is None:
                continue
            extras.sent[index, pos] = now
            for dst in self.schedule.extra_targets(slot, pos, index):
                found = self._end(node, self.keys[dst])
                if found is not None:
                    found[2].send_extra(extra.kind, payload)
                    self.messages_sent += 1
                    found[0]._transmit(found[1])
                    receipts.extras_out += 1
        self._arm_extra(slot, step + 1)

    def _extra_in(self, sim_index: int, peer: bytes, kind: int, payload: bytes) -> None:
        pos = self._by_sim.get(sim_index)
        sender = self._position.get(peer)
        if pos is None or sender is None:
            return
        slot = slot_of_payload(payload)
        counted = slot is not None  # a payload too short to carry its slot is guessed
        if slot is None:
            slot = self.schedule.slot_at(self.sim.now)
        receipts = self._receipts(slot, MessageKind.EXTRA)
        index = self._extra_index.get(kind)
        if receipts is None or index is None:
            return
        extras = self._extras_of(slot, receipts)
        row = extras.row(index, sender, pos)
        if row is not None and math.isnan(extras.got[row]):
            extras.got[row] = self.sim.now
            if counted:  # a guessed slot may be wrong: it never settles a slot early
                receipts.extras_out -= 1

    def _extras_of(self, slot: int, receipts: _SlotReceipts) -> _ExtraRows:
        extras = receipts.extras
        if extras is None:
            extras = receipts.extras = _ExtraRows(self.schedule, slot)
        return extras

    # ------------------------------------------------------------------ tables

    def _emit_settled(self, slot: int) -> None:
        """At the start of ``slot``: hand the sinks, in slot order, every earlier slot
        that can record nothing more (everything sent has arrived, or its late window
        is over)."""
        while self._emitted < min(slot, self._last):
            done = self._emitted
            # blocks and extras have the longest window (an assurance's ends sooner)
            if self.sim.now < self._recorded_before(done, MessageKind.BLOCK) \
                    and not self._settled(done):
                return
            self._emit(done)

    def _settled(self, slot: int) -> bool:
        """Nothing of ``slot`` is still on its way: every node has the block, and every
        extra message and assurance sent has arrived (or, for an assurance, the
        author would no longer recognise it)."""
        receipts = self._open.get(slot)
        if receipts is None:
            return False  # nobody even had the block
        return (len(receipts.blocks) == len(self.keys) and receipts.extras_out <= 0
                and (receipts.assurances_out <= 0
                     or self.sim.now >= self._recorded_before(slot, MessageKind.ASSURANCE)))

    def finish(self) -> None:
        """Hand over the run's slots (:meth:`SlotSchedule.slots`) not emitted yet,
        with what arrived of them so far."""
        while self._emitted < self._last:
            self._emit(self._emitted)

    def stop(self) -> None:
        """:meth:`finish`, then send nothing more and detach from the transports."""
        self.finish()
        self._last = -1
        fabric = self.sim.quic
        if fabric is not None and fabric.traffic is self:
            fabric.traffic = None

    def _emit(self, slot: int) -> None:
        """Hand the sinks ``slot``'s batches and close its receipts."""
        receipts = self._open.pop(slot, None) or _SlotReceipts()
        self._emitted = slot + 1
        for anchor in [a for a, s in self._anchors.items() if s <= slot]:
            del self._anchors[anchor]
        n = len(self.keys)
        author = self.schedule.author(slot)
        seen = [receipts.blocks.get(i) for i in range(n)]
        hops = hops_from_via(author, [None if e is None else e[1] for e in seen])
        rows = []
        for i, entry in enumerate(seen):
            if entry is None:
                rows.append(BlockDelivery(slot, author, i, math.nan, NEVER, NEVER))
            else:
                rows.append(BlockDelivery(slot, author, i, entry[0], hops[i],
                                          NEVER if i == author else entry[1]))
        self.on_block(blocks_batch(slot, author, rows))
        arows = [
            AssuranceDelivery(slot, author, j, receipts.assured.get(j, math.nan),
                              receipts.delivered.get(j, math.nan))
            for j in range(n)
        ]
        self.on_assurances(assurances_batch(slot, author, arows))
        if self.on_messages is not None and self._extra_steps:
            self.on_messages(self._extra_rows(slot, receipts))

    def _extra_rows(self, slot: int, receipts: _SlotReceipts) -> MessageBatch:
        """Every scheduled extra message of ``slot``: sent when, received when (NaN:
        not while the slot was open)."""
        return self._extras_of(slot, receipts).batch()


def _nothing(_request: BlockRequest) -> Sequence[Block] | None:
    return None


class QuicTrafficRecording(TrafficRecording):
    """A ``quic`` run's traffic written to ``blocks.parquet`` / ``assurances.parquet``
    (and ``messages.parquet`` with extras):
    :class:`jamsim.traffic.simulated.TrafficRecording` fed by :class:`QuicSlotTraffic`."""

    def __init__(self, sim: Simulation, config: TrafficConfig, seed: int, until: float,
                 out_dir: Path, *, flush_every: int = 20) -> None:
        super().__init__(sim, config, seed, until, out_dir, flush_every=flush_every,
                         source=QuicSlotTraffic)
