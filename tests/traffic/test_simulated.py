"""Exactness on a simulated 3x3 grid: who gets each slot's block, in how many hops, when.

    0 1 2
    3 4 5      9 validators, one-way latency 10 ms, no bandwidth limit:
    6 7 8      a hop (announce, request, block) takes exactly 30 ms.

Hand rule on this grid: a node in the author's row or column gets the block in one
hop, any other reachable node in two (two cells not in line share two common
neighbours, never both the centre).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import PeerAddress, ValidatorIdentity, ValidatorInfo, ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.records import AssuranceBatch, BlockBatch, MessageBatch
from jamsim.traffic.simulated import SimulatedTraffic, SimulationNetwork

L = 0.01
HOP = 3 * L


def in_line(a: int, b: int) -> bool:
    return a // 3 == b // 3 or a % 3 == b % 3


def run(policy: str, faults: list[tuple[float, str]], until: float = 90.0
        ) -> tuple[list[BlockBatch], list[AssuranceBatch], SimulatedTraffic]:
    sim = Simulation(ValidatorSet.dev(9, seed=2), NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset(policy), seed=3, traffic=True)
    blocks: list[BlockBatch] = []
    assurances: list[AssuranceBatch] = []
    traffic = SimulatedTraffic(sim, TrafficConfig(), seed=3, until=until,
                               on_block=blocks.append, on_assurances=assurances.append)
    for at, what in faults:
        if what == "cut":
            sim.at(at, lambda: sim.partition([[0, 1, 2], [3, 4, 5, 6, 7, 8]]))
        elif what == "heal":
            sim.at(at, sim.heal)
        else:
            sim.at(at, lambda: sim.crash(4))
    sim.run(until)
    return blocks, assurances, traffic


def check_slot(batch: BlockBatch, t0: float, reachable: set[int]) -> None:
    a = batch.author
    for n in range(9):
        got, hops, via = float(batch.received_at[n]), int(batch.hops[n]), int(batch.via[n])
        if n == a and a in reachable:
            assert (got, hops, via) == (t0, 0, -1)
        elif n in reachable and a in reachable:
            want = 1 if in_line(a, n) else 2
            assert hops == want, (batch.slot, a, n)
            assert got == pytest.approx(t0 + want * HOP, abs=1e-9)
            assert via == a if want == 1 else (in_line(a, via) and in_line(via, n))
        else:
            assert math.isnan(got) and hops == -1 and via == -1, (batch.slot, a, n)


def test_partition_in_the_middle_of_the_run() -> None:
    blocks, assurances, traffic = run("jamnp-s", [(20.0, "cut"), (40.0, "heal")])
    # slot 0 is genesis (nothing authored); slot 14 ends at 90 s, the run's end
    assert [b.slot for b in blocks] == list(range(1, 15))
    assert traffic.slots_evaluated == 14
    everyone = set(range(9))
    for b in blocks[0:3]:  # 6, 12, 18 s: full mesh
        check_slot(b, 6.0 * b.slot, everyone)
    for b in blocks[3:6]:  # 24, 30, 36 s: row 0 cut off from the rest
        side = {0, 1, 2} if b.author < 3 else everyone - {0, 1, 2}
        check_slot(b, 6.0 * b.slot, side)
    for b in blocks[9:]:  # reconnected after the heal
        check_slot(b, 6.0 * b.slot, everyone)
    # assurances: slot 1 onwards (slot 0's would be sent before the run)
    assert [a.slot for a in assurances] == list(range(1, 15))
    for a in assurances:
        at = 6.0 * a.slot - 2.0
        assert (a.sent_at == at).all()
        if 40.0 <= at < 58.0:
            continue  # reconnecting after the heal
        cut = 20.0 <= at < 40.0
        for j in range(9):
            across = cut and ((j < 3) != (a.author < 3))
            if j == a.author:
                assert a.delivered_at[j] == at
            elif across:
                assert math.isnan(a.delivered_at[j])
            else:
                assert a.delivered_at[j] == pytest.approx(at + L)


def test_a_dead_node_gets_nothing_and_authors_nothing() -> None:
    blocks, assurances, _ = run("jamnp-s", [(20.0, "crash")], until=60.0)
    alive = set(range(9)) - {4}
    assert blocks[0].slot == 1
    for b in blocks[0:3]:
        check_slot(b, 6.0 * b.slot, set(range(9)))
    for b in blocks[3:]:
        check_slot(b, 6.0 * b.slot, alive)
    for a in assurances:
        if 6.0 * a.slot - 2.0 > 20.0:
            assert math.isnan(a.sent_at[4]) and math.isnan(a.delivered_at[4])
    assert any(b.author == 4 for b in blocks[3:])  # the dead-author case is exercised


def test_an_epoch_change_rebuilds_the_overlay_for_the_new_set() -> None:
    old = ValidatorSet.dev(9, seed=2)
    new = ValidatorSet([
        ValidatorInfo(i, ValidatorIdentity.generate_dev("next", i).public_key,
                      PeerAddress("127.0.0.1", 41000 + i), "default") if i < 3 else old[i]
        for i in range(9)])
    sim = Simulation(old, NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, traffic=True)
    blocks: list[BlockBatch] = []
    traffic = SimulatedTraffic(sim, TrafficConfig(), seed=3, until=48.0,
                               on_block=blocks.append, on_assurances=lambda _: None)
    sim.at(20.0, lambda: sim.change_validator_set(old, new))
    sim.run(48.0)
    overlay = traffic.overlay
    assert overlay is not None
    network = overlay.network
    assert isinstance(network, SimulationNetwork)
    # positions 0..2 are the new validators' simulator nodes (9, 10, 11)
    assert network.nodes == [9, 10, 11, 3, 4, 5, 6, 7, 8]
    for b in blocks[5:]:  # 30 s on: the new set is connected
        check_slot(b, 6.0 * b.slot, set(range(9)))


def test_a_link_change_is_seen_from_the_next_slot() -> None:
    sim = Simulation(ValidatorSet.dev(9, seed=2), NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, traffic=True)
    blocks: list[BlockBatch] = []
    SimulatedTraffic(sim, TrafficConfig(), seed=3, until=36.0, on_block=blocks.append,
                     on_assurances=lambda _: None)
    slower = LinkSpec(LatencySpec(0.05), bandwidth_bps=8e6)
    sim.at(20.0, lambda: sim.set_link("default", "default", slower))
    sim.run(36.0)
    hop_after = 3 * 0.05 + (436 + 37 + 100_000) * 8 / 8e6
    for b in blocks[1:]:
        t0 = 6.0 * b.slot
        hop = HOP if t0 < 20.0 else hop_after
        one = [n for n in range(9) if n != b.author and in_line(n, b.author)]
        assert np.allclose(b.received_at[one], t0 + hop), b.slot


def test_extra_messages_follow_the_cut_at_their_send_time() -> None:
    """Extra kind 200 to all, 3.5 s into each slot: the partition at 20 s is in force
    for slot 3's extras (sent 21.5 s) though slot 3 started before it; after the heal
    at 40 s (and reconnection) everything is delivered again after one latency."""
    sim = Simulation(ValidatorSet.dev(9, seed=2), NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, traffic=True)
    messages: list[MessageBatch] = []
    config = TrafficConfig(extra=(ExtraMessage(kind=200, size=64, fanout="all", offset=3.5),))
    SimulatedTraffic(sim, config, seed=3, until=60.0, on_block=lambda _: None,
                     on_assurances=lambda _: None, on_messages=messages.append)
    sim.at(20.0, lambda: sim.partition([[0, 1, 2], [3, 4, 5, 6, 7, 8]]))
    sim.at(40.0, sim.heal)
    sim.run(60.0)
    assert [m.slot for m in messages] == list(range(1, 10))  # slot 0 is genesis
    for m in messages:
        at = 6.0 * m.slot + 3.5
        assert len(m.sender) == 72 and np.all(m.sent_at == at)
        crossing = (m.sender < 3) != (m.receiver < 3)
        if 20.0 < at < 40.0:
            assert np.isnan(m.delivered_at[crossing]).all(), m.slot
            assert np.allclose(m.delivered_at[~crossing], at + L), m.slot
        elif not 40.0 < at < 45.0:
            assert np.allclose(m.delivered_at, at + L), m.slot


def test_no_extras_schedule_no_extra_callbacks() -> None:
    sim = Simulation(ValidatorSet.dev(9, seed=2), NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, traffic=True)
    traffic = SimulatedTraffic(sim, TrafficConfig(), seed=3, until=30.0,
                               on_block=lambda _: None, on_assurances=lambda _: None,
                               on_messages=lambda _: pytest.fail("no extras configured"))
    assert traffic._extra_steps == []
    sim.run(30.0)
