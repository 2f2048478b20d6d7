"""Drive the delivery overlay from a ``Simulation``: two timers per slot, not per message.

:class:`SimulatedTraffic` schedules, with ``sim.at``, one callback at each slot's
assurance time and one at its start; each evaluates the whole slot with
:class:`jamsim.traffic.overlay.SlotOverlay` over :class:`SimulationNetwork` and
hands the batch to the sinks (the runner writes them to ``blocks.parquet`` and
``assurances.parquet``). Only the next callback is ever pending. Extra CE
messages (``config.extra``, off by default) have a chain of their own: one
callback at each extra's send time, handing ``on_messages`` its batch; without
extras nothing of it is scheduled.

Indices in the batches are positions in the *current* validator set; after an
epoch rotation the overlay is rebuilt for the new set.

Late arrivals follow the rule every runtime follows (:mod:`jamsim.traffic.late`):
the overlay is given the run's end (``until``) and writes as never what would
arrive past a delivery's window or at or after that end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from jamsim.sim.simulation import Simulation
from jamsim.traffic.config import TrafficConfig
from jamsim.traffic.overlay import SlotOverlay
from jamsim.traffic.records import (
    AssuranceBatch,
    BlockBatch,
    DeliveryTables,
    MessageBatch,
)
from jamsim.traffic.schedule import SlotSchedule

__all__ = ["SimulatedTraffic", "SimulationNetwork", "TrafficRecording"]


class SimulationNetwork:
    """A :class:`jamsim.traffic.overlay.DeliveryNetwork` over a simulation's current set.

    Latency is the link's mean one-way latency (``max(minimum, mean)``): the
    overlay draws nothing, so turning traffic on leaves the connection layer's
    random draws, and its event log, as they were.
    """

    def __init__(self, sim: Simulation, keys: Sequence[bytes]) -> None:
        self.sim = sim
        self.nodes = [sim.index_of(k) for k in keys]

    def alive(self, node: int) -> bool:
        n = self.sim.nodes[self.nodes[node]]
        return n.alive and n.paused_at is None

    def link_usable(self, a: int, b: int) -> bool:
        return self.sim.link_usable(self.nodes[a], self.nodes[b])

    def latency(self, a: int, b: int) -> float:
        spec = self.sim.network.link(self.nodes[a], self.nodes[b]).latency
        return max(spec.minimum, spec.mean)

    def bandwidth_bps(self, a: int, b: int) -> float | None:
        return self.sim.network.link(self.nodes[a], self.nodes[b]).bandwidth_bps


def current_keys(sim: Simulation) -> tuple[bytes, ...]:
    """Keys of the simulation's current validator set, in set order."""
    return tuple(endpoint.key for endpoint in sim._sets[1])


class SimulatedTraffic:
    """The JAM slot traffic of a simulated run, evaluated per slot.

    ``on_block`` / ``on_assurances`` receive each slot's batch as it is computed.
    The run's slots (:meth:`SlotSchedule.slots`: from slot 1, up to the last that
    ends by ``until``) are evaluated; ``until`` is also the run's
    end for the late-delivery rule (:mod:`jamsim.traffic.late`): a block, assurance
    or extra message that would arrive at or after it is recorded as never.
    """

    def __init__(self, sim: Simulation, config: TrafficConfig, seed: int, until: float,
                 on_block: Callable[[BlockBatch], None],
                 on_assurances: Callable[[AssuranceBatch], None], *,
                 on_messages: Callable[[MessageBatch], None] | None = None) -> None:
        self.sim = sim
        self.on_messages = on_messages
        # extras in send order within a slot: (offset, index into config.extra)
        self._extra_steps = sorted((e.offset, i) for i, e in enumerate(config.extra))
        self.config = config
        self.seed = seed
        self.until = until
        self.run_end = until  # kept when stop() clears until
        self.on_block = on_block
        self.on_assurances = on_assurances
        self._keys: tuple[bytes, ...] = ()
        self._links: object = None
        self.overlay: SlotOverlay | None = None
        self.schedule = SlotSchedule(max(1, len(current_keys(sim))), seed, config)
        self.slots_evaluated = 0
        slots = self.schedule.slots(until)
        self._end_slot = slots.stop  # exclusive
        if len(slots):
            self._arm(slots.start, assurance=True)
            if self._extra_steps and on_messages is not None:
                self._arm_extra(slots.start, 0)

    def stop(self) -> None:
        """Evaluate no further slot (a callback already scheduled does nothing)."""
        self.until = -1.0

    def _arm(self, slot: int, *, assurance: bool) -> None:
        s = self.schedule
        if slot >= self._end_slot or self.until < 0:
            return  # a slot is evaluated whole or not at all
        if assurance and not s.has_assurances(slot):
            assurance = False
        at = s.assurance_time(slot) if assurance else s.slot_start(slot)
        self.sim.at(at, lambda: self._fire(slot, assurance))

    def _fire(self, slot: int, assurance: bool) -> None:
        if self.until < 0:
            return
        overlay = self._current_overlay()
        if assurance:
            self.on_assurances(overlay.assurances(slot))
            self._arm(slot, assurance=False)
        else:
            self.on_block(overlay.block(slot))
            self.slots_evaluated += 1
            self._arm(slot + 1, assurance=True)

    def _arm_extra(self, slot: int, step: int) -> None:
        if step == len(self._extra_steps):
            slot, step = slot + 1, 0
        s = self.schedule
        if slot >= self._end_slot or self.until < 0:
            return
        offset, index = self._extra_steps[step]
        self.sim.at(s.slot_start(slot) + offset,
                    lambda: self._fire_extra(slot, step, index))

    def _fire_extra(self, slot: int, step: int, index: int) -> None:
        if self.until < 0 or self.on_messages is None:
            return
        self.on_messages(self._current_overlay().messages(slot, index))
        self._arm_extra(slot, step + 1)

    def _current_overlay(self) -> SlotOverlay:
        """The overlay for the current set and links (rebuilt when either changed)."""
        keys = current_keys(self.sim)
        links = self.sim.network._links  # the region-link overrides
        overlay = self.overlay
        if overlay is None or keys != self._keys:
            self.schedule = SlotSchedule(len(keys), self.seed, self.config)
            overlay = SlotOverlay(self.schedule, SimulationNetwork(self.sim, keys),
                                  run_end=self.run_end)
            self._keys = keys
        elif self._links != _snapshot(links):
            overlay.invalidate_links()
        self._links = _snapshot(links)
        self.overlay = overlay
        return overlay


def _snapshot(links: object) -> object:
    """A cheap comparable view of the network's region-link overrides."""
    return tuple(sorted(links.items(), key=repr)) if isinstance(links, dict) else links


class SlotTrafficSource(Protocol):
    """What produces a run's per-slot batches: started with its two sinks, stopped once."""

    def stop(self) -> None: ...


class TrafficSourceFactory(Protocol):
    """Starts a run's traffic source with its sinks (``on_messages`` only with extras)."""

    def __call__(self, sim: Simulation, config: TrafficConfig, seed: int, until: float,
                 on_block: Callable[[BlockBatch], None],
                 on_assurances: Callable[[AssuranceBatch], None], *,
                 on_messages: Callable[[MessageBatch], None] | None = None,
                 ) -> SlotTrafficSource: ...


class TrafficRecording:
    """A simulated run's traffic written to ``blocks.parquet`` / ``assurances.parquet``
    (and ``messages.parquet`` when it sends extra CE messages).

    Batches go to crash-safe part files every ``flush_every`` slots, so memory stays
    flat however long the run; :meth:`close` merges the parts. ``source`` makes
    the batches: the ``model`` fidelity's overlay (:class:`SimulatedTraffic`) by
    default, the ``quic`` fidelity's streams
    (:class:`jamsim.sim.quic.slot_traffic.QuicTrafficRecording`).
    """

    def __init__(self, sim: Simulation, config: TrafficConfig, seed: int, until: float,
                 out_dir: Path, *, flush_every: int = 20,
                 source: TrafficSourceFactory | None = None) -> None:
        extras = bool(config.extra)
        self.tables = DeliveryTables(out_dir, flush_every=flush_every, messages=extras)
        start: TrafficSourceFactory = SimulatedTraffic if source is None else source
        self.traffic: SlotTrafficSource | None = start(
            sim, config, seed, until, self.tables.blocks.append, self.tables.assurances.append,
            on_messages=self.tables.append_messages if extras else None)

    def close(self) -> None:
        """Stop the source (it hands over its open slots), merge the tables and drop
        the simulation (idempotent)."""
        traffic = self.traffic
        if traffic is not None:
            traffic.stop()
        self.traffic = None
        self.tables.close()
