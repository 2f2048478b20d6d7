"""The jamnp-s preset's adaptive dial limit costs the ``model`` simulator nothing.

The model never reports a stalled dial (a dialer is established by the first
packet that comes back), so the limit never engages and cut dials stay
independent: fast-forward stays on and agrees with simulating every attempt
(tests/sim/test_fast_forward.py runs the preset), here under loss, a partition
and a crash.
"""

from __future__ import annotations

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.simulation import Simulation


def test_the_preset_keeps_fast_forward_and_never_engages_in_the_model() -> None:
    policy = ConnectionPolicy.preset("jamnp-s")
    assert policy.adaptive_dials
    lossy = NetworkConfig(default=LinkSpec(LatencySpec(0.05), LossSpec.bernoulli(0.05)))
    sim = Simulation(ValidatorSet.dev(16, seed=2), lossy, policy, seed=4, on_event=None)
    assert sim.fast_forward
    limits: set[int | None] = set()

    def look() -> None:
        limits.update(sim.manager(i).dial_limit for i in range(16) if sim.nodes[i].alive)

    sim.at(2.0, lambda: sim.partition([list(range(8)), list(range(8, 16))]))
    sim.at(3.0, lambda: sim.crash(3))
    sim.at(60.0, look)
    sim.at(90.0, sim.heal)
    sim.at(95.0, lambda: sim.restart(3))
    sim.at(99.0, look)
    sim.run(160.0)
    look()
    assert limits == {None}
    assert sim.is_full_mesh()
