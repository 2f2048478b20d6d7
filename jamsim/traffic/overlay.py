"""The ``model`` fidelity's delivery overlay: one slot's traffic, computed analytically.

Simulating every UP 0 announcement, CE 128 exchange and CE 141 assurance as
packets would multiply a V=1023 run's events by ~65k per slot. The overlay instead
evaluates, once per slot, which messages the schedule's traffic delivers over the
links that are *usable* at that moment (both managers hold the same live
connection, both nodes up, path open both ways) and when, from each link's
one-way latency and bandwidth:

**Block** (evaluated at the slot start). The author has its block at
``slot_start``. When node ``u`` has the block at ``t_u`` it announces it on UP 0
to each grid neighbour ``v`` over a usable link; the announcement arrives at
``a = t_u + lat(u, v) + ser(announcement)``. ``v`` requests the block with CE 128
from the *first* announcer it hears and has it one round trip plus the block's
serialisation later: ``a + lat(v, u) + ser(request) + lat(u, v) + ser(block)``;
then it announces to its own neighbours. This is computed exactly with one
Dijkstra-like pass ordered by the time nodes get the block (any announcement
that could arrive earlier comes from a node that had the block earlier, so it has
been seen), ~V pops of ~2 sqrt(V) vectorised neighbours each.

**Assurances** (evaluated at the assurance time, ``assurance_lead`` before the
slot). Every live validator sends one to the author; it arrives after
``lat + ser(assurance)`` if the link is usable, and counts when that is before the
slot start.

**Extra CE messages** (``config.extra``, evaluated at their send time,
``offset`` into the slot). Each live sender's message to each of its targets
arrives after ``lat + ser(size)`` if the receiver is alive and the link usable
then, like an assurance; it counts as delivered within its slot when that is
before the slot ends.

**Late arrivals** follow the rule every runtime follows
(:mod:`jamsim.traffic.late`): an arrival computed at or after
:func:`~jamsim.traffic.late.recorded_before` (the end of slot ``s + 64`` for a
block or extra message, of slot ``s + 1`` for an assurance, or the run's end,
``run_end``, if earlier) is written as never (NaN; a block's ``hops`` and ``via``
:data:`~jamsim.traffic.records.NEVER`), as a real node's harness would not have
heard of it. An earlier one keeps its time, however late for its slot. A node has a
block no earlier than the node it fetched it from, so the nodes left without it
are whole subtrees of the delivery tree: the ``via`` of every node with a time
has one too.

What it does not model: links changing state inside the evaluation (usability is
read once, at the evaluation instant, for the whole slot), packet loss and
retransmission (a usable link delivers), queueing behind other traffic on the
same link, CPU time. Latency is the link's mean (deterministic, no draws), so the
overlay consumes no random numbers and cannot perturb the connection simulation.

The network is reached through :class:`DeliveryNetwork` (indices are positions in
the current validator set), so the overlay is pure and tested on hand-made
graphs; ``jamsim/traffic/simulated.py`` adapts a ``Simulation`` to it.
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

import numpy as np

from jamsim.traffic.late import recorded_before
from jamsim.traffic.records import (
    NEVER,
    AssuranceBatch,
    BlockBatch,
    FloatArray,
    IntArray,
    MessageBatch,
)
from jamsim.traffic.schedule import MessageKind, SlotSchedule

__all__ = ["DeliveryNetwork", "SlotOverlay"]


class DeliveryNetwork(Protocol):
    """What the overlay needs to know about the network, by validator index."""

    def alive(self, node: int) -> bool:
        """Is ``node`` running (not crashed, not paused)?"""
        ...

    def link_usable(self, a: int, b: int) -> bool:
        """Could ``a`` and ``b`` exchange a message now over a live connection?"""
        ...

    def latency(self, a: int, b: int) -> float:
        """One-way latency from ``a`` to ``b`` in seconds (deterministic)."""
        ...

    def bandwidth_bps(self, a: int, b: int) -> float | None:
        """Bits per second from ``a`` to ``b``; ``None`` for no serialisation delay."""
        ...


def _ser(size: int, bw: float | None) -> float:
    return 0.0 if bw is None else size * 8.0 / bw


class SlotOverlay:
    """Per-slot delivery of the schedule's block and assurances over a :class:`DeliveryNetwork`.

    ``run_end``: when the run stops (seconds after its start); no arrival at or
    after it is recorded.
    """

    def __init__(self, schedule: SlotSchedule, network: DeliveryNetwork,
                 run_end: float = math.inf) -> None:
        self.schedule = schedule
        self.network = network
        self.run_end = run_end
        v = schedule.validator_count
        indptr = [0]
        indices: list[int] = []
        for i in range(v):
            indices.extend(schedule.grid_neighbours(i))
            indptr.append(len(indices))
        self._indptr: list[int] = indptr
        self._indices: IntArray = np.array(indices, dtype=np.int64)
        self._announce_cost: FloatArray = np.zeros(len(indices))
        self._fetch_cost: FloatArray = np.zeros(len(indices))
        self.invalidate_links()

    def invalidate_links(self) -> None:
        """Re-read every grid edge's latency and bandwidth (after a link change)."""
        net = self.network
        s = self.schedule
        ann, req, blk = s.announcement_size, s.block_request_size, s.block_size
        announce = np.empty(len(self._indices))
        fetch = np.empty(len(self._indices))
        k = 0
        for u in range(s.validator_count):
            for v in self._indices[self._indptr[u]:self._indptr[u + 1]].tolist():
                fwd_bw = net.bandwidth_bps(u, v)
                lat_uv = net.latency(u, v)
                announce[k] = lat_uv + _ser(ann, fwd_bw)
                fetch[k] = (net.latency(v, u) + _ser(req, net.bandwidth_bps(v, u))
                            + lat_uv + _ser(blk, fwd_bw))
                k += 1
        self._announce_cost = announce
        self._fetch_cost = fetch

    def recorded_before(self, slot: int, kind: MessageKind) -> float:
        """When an arrival of ``slot``'s ``kind`` is no longer recorded
        (:func:`jamsim.traffic.late.recorded_before` with this run's end)."""
        return recorded_before(slot, kind, self.schedule.config.slot, self.run_end)

    def block(self, slot: int) -> BlockBatch:
        """Who has ``slot``'s block when, in how many hops, fetched from whom."""
        s = self.schedule
        n = s.validator_count
        author = s.author(slot)
        t0 = s.slot_start(slot)
        received = np.full(n, math.inf)
        announced = np.full(n, math.inf)
        hops = np.full(n, NEVER, dtype=np.int64)
        via = np.full(n, NEVER, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        net = self.network
        if net.alive(author):
            received[author] = t0
            hops[author] = 0
            heap: list[tuple[float, int]] = [(t0, author)]
            indptr, indices = self._indptr, self._indices
            announce_cost, fetch_cost = self._announce_cost, self._fetch_cost
            while heap:
                t, u = heapq.heappop(heap)
                if done[u] or t != received[u]:
                    continue  # stale entry: u later chose an earlier announcer
                done[u] = True
                lo, hi = indptr[u], indptr[u + 1]
                nb = indices[lo:hi]
                arrival = t + announce_cost[lo:hi]
                better = np.flatnonzero((arrival < announced[nb]) & ~done[nb])
                if not len(better):
                    continue
                next_hop = hops[u] + 1
                for k in better.tolist():
                    v = int(nb[k])
                    if not net.link_usable(u, v):
                        continue
                    a = float(arrival[k])
                    announced[v] = a
                    got = a + float(fetch_cost[lo + k])
                    received[v] = got
                    hops[v] = next_hop
                    via[v] = u
                    heapq.heappush(heap, (got, v))
        # never, or too late to be recorded (inf is neither): its relays are later still
        never = ~(received < self.recorded_before(slot, MessageKind.BLOCK))
        received[never] = math.nan
        hops[never] = NEVER
        via[never] = NEVER
        return BlockBatch(slot, author, np.arange(n, dtype=np.int64), received, hops, via)

    def assurances(self, slot: int) -> AssuranceBatch:
        """Each validator's assurance for ``slot`` to its author: sent when, delivered when."""
        s = self.schedule
        n = s.validator_count
        author = s.author(slot)
        at = s.assurance_time(slot)
        size = s.assurance_size
        net = self.network
        sent = np.full(n, math.nan)
        delivered = np.full(n, math.nan)
        author_alive = net.alive(author)
        for j in range(n):
            if not net.alive(j):
                continue
            sent[j] = at
            if j == author:
                delivered[j] = at
            elif author_alive and net.link_usable(j, author):
                delivered[j] = at + net.latency(j, author) + \
                    _ser(size, net.bandwidth_bps(j, author))
        delivered[~(delivered < self.recorded_before(slot, MessageKind.ASSURANCE))] = math.nan
        return AssuranceBatch(slot, author, np.arange(n, dtype=np.int64), sent, delivered)

    def messages(self, slot: int, extra_index: int) -> MessageBatch:
        """``config.extra[extra_index]`` of ``slot``: every scheduled (sender, receiver)
        row, sent when (NaN: sender down), delivered when (NaN: never)."""
        s = self.schedule
        extra = s.config.extra[extra_index]
        at = s.slot_start(slot) + extra.offset
        net = self.network
        senders: list[int] = []
        receivers: list[int] = []
        sent: list[float] = []
        delivered: list[float] = []
        for j in range(s.validator_count):
            up = net.alive(j)
            for dst in s.extra_targets(slot, j, extra_index):
                senders.append(j)
                receivers.append(dst)
                sent.append(at if up else math.nan)
                if up and net.alive(dst) and net.link_usable(j, dst):
                    delivered.append(at + net.latency(j, dst)
                                     + _ser(extra.size, net.bandwidth_bps(j, dst)))
                else:
                    delivered.append(math.nan)
        got = np.array(delivered, dtype=np.float64)
        got[~(got < self.recorded_before(slot, MessageKind.EXTRA))] = math.nan
        return MessageBatch(slot, np.full(len(senders), extra.kind, dtype=np.int64),
                            np.array(senders, dtype=np.int64),
                            np.array(receivers, dtype=np.int64),
                            np.array(sent, dtype=np.float64), got)
