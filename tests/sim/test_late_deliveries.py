"""``model`` and ``quic`` record the same late deliveries: the shared rule
(:mod:`jamsim.traffic.late`) applied to the same small network.

Four validators on a 2x2 grid (0-1, 0-2, 1-3 and 2-3 are grid neighbours), each in
a region of its own. The grid links take ``L`` one way, so blocks, which travel
only over the grid, are on time. The two pairs off the grid carry nothing but
assurances (and the connection's own packets): 0-3 takes 1.5 s one way, 1-2 takes
2.5 s. Slots of 1 s, assurances 0.25 s before the slot, so an assurance for slot
``s`` over 0-3 arrives at ``s + 1.25`` (plus a few microseconds of serialisation
and, over QUIC, of framing): late, inside slot ``s + 1``, recorded with its time;
one over 1-2 arrives at ``s + 2.25``, in slot ``s + 2``, when a real author no
longer recognises its anchor: never. The run ends 20 ms into slot 19 (``END``),
which is therefore not measured at all (a slot counts once it has ended, in every
runtime); slot 18's assurance from 3 to 0, due at 19.25 s, is past the run's end.

Why the two fidelities can be held to the same verdicts: every bound above is at
least a quarter of a slot away from the arrival it decides (0.75 s, 0.25 s, 10 ms
and 0.23 s), and QUIC can only deliver later than the overlay's latency plus
serialisation, never earlier; by far less than a quarter of a slot for a message
of a hundred bytes on an idle connection. The connections are up well before the
first assurance (checked), which needs a connect timeout longer than the 5 s round
trip of the slowest pair.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.quic.slot_traffic import QuicSlotTraffic
from jamsim.sim.simulation import Fidelity, Simulation
from jamsim.traffic.config import TrafficConfig
from jamsim.traffic.records import AssuranceBatch, BlockBatch
from jamsim.traffic.schedule import SlotSchedule
from jamsim.traffic.simulated import SimulatedTraffic

V = 4
SET_SEED = 11
L = 0.01
SLOW = {frozenset((0, 3)): 1.5, frozenset((1, 2)): 2.5}
FIRST_SLOT = 14
END = 19.02  # slots 14..18 are measured; slot 19 ends after the run
TRAFFIC = TrafficConfig(slot=1.0, assurance_lead=0.25, block_size=1000, first_slot=FIRST_SLOT)
TRAFFIC_SEED = 5  # authors of slots 14..19: 2, 3, 1, 3, 0, 2
POLICY = ConnectionPolicy.preset("jamnp-s", connect_timeout=20.0)
REGIONS = "abcd"


def latency(a: int, b: int) -> float:
    return SLOW.get(frozenset((a, b)), L)


def network() -> NetworkConfig:
    links = {(REGIONS[a], REGIONS[b]): LinkSpec(LatencySpec(d))
             for pair, d in SLOW.items() for a, b in [sorted(pair)]}
    return NetworkConfig(default=LinkSpec(LatencySpec(L)), links=links,
                         regions=dict(enumerate(REGIONS)))


def run(fidelity: Fidelity) -> tuple[list[BlockBatch], list[AssuranceBatch]]:
    sim = Simulation(ValidatorSet.dev(V, seed=SET_SEED), network(), POLICY,
                     fidelity=fidelity, seed=1, on_event=None,
                     identities=DevKeyring([SET_SEED], V) if fidelity == "quic" else None,
                     traffic=fidelity == "model", slot_seconds=TRAFFIC.slot)
    blocks: list[BlockBatch] = []
    assurances: list[AssuranceBatch] = []
    source = QuicSlotTraffic if fidelity == "quic" else SimulatedTraffic
    traffic = source(sim, TRAFFIC, TRAFFIC_SEED, END, blocks.append, assurances.append)
    meshed: list[bool] = []
    first = SlotSchedule(V, TRAFFIC_SEED, TRAFFIC).assurance_time(FIRST_SLOT)
    sim.at(first - 0.01, lambda: meshed.append(
        all(sim.link_usable(a, b) for a in range(V) for b in range(a + 1, V))))
    sim.run(END)
    if isinstance(traffic, QuicSlotTraffic):
        traffic.stop()
    assert meshed == [True], f"{fidelity}: not every pair usable before the traffic"
    return blocks, assurances


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[list[BlockBatch], list[AssuranceBatch]]]:
    return {f: run(f) for f in ("model", "quic")}


def test_each_fidelity_records_what_the_rule_says(
        outcomes: dict[str, tuple[list[BlockBatch], list[AssuranceBatch]]]) -> None:
    """The verdicts computed by hand from the arrival times above."""
    schedule = SlotSchedule(V, TRAFFIC_SEED, TRAFFIC)
    slots = list(range(FIRST_SLOT, 19))
    for fidelity, (blocks, assurances) in outcomes.items():
        assert [b.slot for b in blocks] == [a.slot for a in assurances] == slots, fidelity
        verdicts = {"late, recorded": 0, "past the window": 0, "past the run": 0}
        for batch in assurances:
            s, author = batch.slot, batch.author
            for j, got in enumerate(batch.delivered_at.tolist()):
                arrival = s - 0.25 + latency(j, author) if j != author else s - 0.25
                recorded = arrival < min(s + 2.0, END)
                assert math.isnan(got) != recorded, (fidelity, s, j, got)
                if recorded:
                    assert arrival - 1e-9 <= got < arrival + 0.25, (fidelity, s, j, got)
                    verdicts["late, recorded"] += got > schedule.slot_start(s)
                else:
                    verdicts["past the window" if arrival >= s + 2.0 else "past the run"] += 1
        # every case of the rule is met: 0's assurances to 3 for slots 15 and 17, the
        # 1-2 pair's for slots 14 and 16, 3's to 0 for slot 18 (due at 19.25 s)
        assert verdicts == {"late, recorded": 2, "past the window": 2, "past the run": 1}, \
            (fidelity, verdicts)
        for batch in blocks:
            assert np.isfinite(batch.received_at).all(), (fidelity, batch.slot)


def test_model_and_quic_record_the_same_late_deliveries(
        outcomes: dict[str, tuple[list[BlockBatch], list[AssuranceBatch]]]) -> None:
    """Row for row, the same deliveries are recorded, and a late one lands in the
    same slot in both (QUIC only ever later, by less than the margin above)."""
    schedule = SlotSchedule(V, TRAFFIC_SEED, TRAFFIC)
    (model_blocks, model_assured), (quic_blocks, quic_assured) = \
        outcomes["model"], outcomes["quic"]
    for m, q in zip(model_assured, quic_assured, strict=True):
        assert (np.isnan(m.delivered_at) == np.isnan(q.delivered_at)).all(), m.slot
        both = ~np.isnan(m.delivered_at)
        assert (q.delivered_at[both] >= m.delivered_at[both] - 1e-9).all(), m.slot
        slot_of = [schedule.slot_at(t) for t in (*m.delivered_at[both], *q.delivered_at[both])]
        half = len(slot_of) // 2
        assert slot_of[:half] == slot_of[half:], m.slot
    for m, q in zip(model_blocks, quic_blocks, strict=True):
        assert (np.isnan(m.received_at) == np.isnan(q.received_at)).all(), m.slot
