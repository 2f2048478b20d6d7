"""JAM slot traffic in the ``quic`` fidelity: real UP 0 / CE 128 / CE 141 streams on
aioquic in virtual time, written as the same per-slot delivery batches as ``model``.

3x3 grid, 10 ms one-way latency: one hop (announcement, request, block) takes three
latencies plus serialisation, so a node in the author's row or column has the block
in one hop and every other node in two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.quic.slot_traffic import QuicSlotTraffic
from jamsim.sim.simulation import Simulation
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.records import AssuranceBatch, BlockBatch, MessageBatch

L = 0.01
SET_SEED = 2
CONFIG = TrafficConfig(slot=1.0, assurance_lead=0.3, block_size=20_000, first_slot=2)


def in_line(a: int, b: int) -> bool:
    return a // 3 == b // 3 or a % 3 == b % 3


def run(until: float, faults: list[tuple[float, str]] = ()  # type: ignore[assignment]
        ) -> tuple[list[BlockBatch], list[AssuranceBatch], QuicSlotTraffic, Simulation]:
    sim = Simulation(ValidatorSet.dev(9, seed=SET_SEED),
                     NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, fidelity="quic",
                     on_event=None, identities=DevKeyring([SET_SEED], 9))
    blocks: list[BlockBatch] = []
    assurances: list[AssuranceBatch] = []
    traffic = QuicSlotTraffic(sim, CONFIG, 4, until, blocks.append, assurances.append)
    for at, what in faults:
        if what == "cut":
            sim.at(at, lambda: sim.partition([[0, 1, 2, 3, 4, 5], [6, 7, 8]]))
        elif what == "heal":
            sim.at(at, sim.heal)
    sim.run(until)
    traffic.finish()
    return blocks, assurances, traffic, sim


def test_blocks_cross_the_grid_in_one_or_two_hops_and_assurances_reach_the_author() -> None:
    blocks, assurances, traffic, _ = run(8.0)
    assert [b.slot for b in blocks] == list(range(2, 8))
    assert [a.slot for a in assurances] == list(range(2, 8))
    for batch in blocks:
        start = traffic.schedule.slot_start(batch.slot)
        for node, got, hops, via in zip(batch.node, batch.received_at, batch.hops, batch.via,
                                        strict=True):
            if node == batch.author:
                assert (got, hops, via) == (start, 0, -1)
                continue
            assert hops == (1 if in_line(int(node), batch.author) else 2), (batch.slot, node)
            assert in_line(int(node), int(via))
            # three one-way latencies per hop, plus a little serialisation and ACK pacing
            assert 3 * L * hops <= got - start < 3 * L * hops + 0.1
    for batch in assurances:
        start = traffic.schedule.slot_start(batch.slot)
        assert (batch.delivered_at < start).all()
        assert (batch.sent_at == traffic.schedule.assurance_time(batch.slot)).all()
    assert traffic.fetch_failures == 0


def test_a_partition_stops_blocks_and_assurances_at_the_cut() -> None:
    blocks, assurances, _traffic, _ = run(8.0, faults=[(4.5, "cut")])
    low = {0, 1, 2, 3, 4, 5}
    for batch in blocks:
        author_low = batch.author in low
        for node, got in zip(batch.node.tolist(), batch.received_at.tolist(), strict=True):
            same = (node in low) == author_low
            if batch.slot <= 4 or same:
                assert not math.isnan(got), (batch.slot, node)
            else:
                assert math.isnan(got), (batch.slot, node)
    for batch in assurances:
        if batch.slot >= 5:
            author_low = batch.author in low
            for j, got in zip(batch.assurer.tolist(), batch.delivered_at.tolist(), strict=True):
                assert math.isnan(got) == ((j in low) != author_low)


def test_jamsim_run_in_the_quic_fidelity_writes_the_delivery_tables(tmp_path: Path) -> None:
    from jamsim.analysis.delivery import load_delivery
    from jamsim.scenario.runner import run_scenario

    scenario = tmp_path / "quic-traffic.yaml"
    scenario.write_text(
        "name: quic-traffic\nseed: 3\nduration: 12s\nfidelity: quic\n"
        "validators: {count: 4}\nnetwork: {latency: {default: 10ms}}\n"
        "traffic: {slot: 2s, assurance_lead: 500ms, block_size: 5000}\n"
        "expect:\n  - blocks_reached: {at_least: 99%}\n")
    result = run_scenario(scenario, out_dir=tmp_path / "run", plots=False)
    assert result.passed, result.summary
    delivery = load_delivery(tmp_path / "run")
    assert delivery is not None
    blocks = delivery.blocks
    # slots 1..5 (slot 0 is genesis), one row per validator, every block everywhere
    assert sorted(set(blocks.slot)) == [1, 2, 3, 4, 5] and len(blocks) == 5 * 4
    assert blocks.received_at.notna().all()


def test_extra_messages_ride_real_streams_of_their_kind() -> None:
    """Kind 200, 3000 bytes to every other validator 0.5 s into each slot: all arrive
    one latency plus a little pacing later while the set is whole; across the cut
    (from 4.5 s) none does, within each side all do."""
    sim = Simulation(ValidatorSet.dev(9, seed=SET_SEED),
                     NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, fidelity="quic",
                     on_event=None, identities=DevKeyring([SET_SEED], 9))
    config = TrafficConfig(slot=1.0, assurance_lead=0.3, block_size=20_000, first_slot=2,
                           extra=(ExtraMessage(kind=200, size=3000, fanout="all",
                                               offset=0.5),))
    messages: list[MessageBatch] = []
    traffic = QuicSlotTraffic(sim, config, 4, 8.0, lambda _: None, lambda _: None,
                              on_messages=messages.append)
    sim.at(4.7, lambda: sim.partition([[0, 1, 2, 3, 4, 5], [6, 7, 8]]))
    sim.run(8.0)
    traffic.finish()
    assert [m.slot for m in messages] == list(range(2, 8))
    low = {0, 1, 2, 3, 4, 5}
    for m in messages:
        at = m.slot + 0.5
        assert len(m.kind) == 72 and set(m.kind.tolist()) == {200}
        assert (m.sent_at == at).all()
        delay = m.delivered_at - at
        crossing = np.array([(s in low) != (r in low) for s, r in
                             zip(m.sender.tolist(), m.receiver.tolist(), strict=True)])
        if m.slot <= 4:
            assert ((delay > L - 1e-9) & (delay < L + 0.1)).all(), m.slot
        else:
            assert np.isnan(delay[crossing]).all(), m.slot
            assert ((delay[~crossing] > L - 1e-9) & (delay[~crossing] < L + 0.1)).all(), m.slot
