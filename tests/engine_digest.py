"""Print the event-log digest of a fault-heavy run (used by tests/test_native.py).

Run as a script in a fresh interpreter so ``JAMSIM_NATIVE`` picks the engine; the
scenario mixes every model-fidelity code path: lognormal jitter, Bernoulli and burst
loss, a partition and heal, a crash and restart, a pause and resume.
"""

from __future__ import annotations

import sys

import jamsim
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.simulation import Simulation, event_log_digest
from jamsim.telemetry.records import EventRecord


def digest(validators: int = 40, seed: int = 7) -> str:
    network = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.03, "lognormal"),
                                             LossSpec.bursts(0.02, 0.3)))
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(validators, seed=5), network,
                     ConnectionPolicy.preset("jamnp-s"), seed=seed,
                     on_event=records.append, sample_interval=0.5)
    half = validators // 2
    sim.at(5.0, lambda: sim.partition([list(range(half)), list(range(half, validators))]))
    sim.at(12.0, lambda: sim.crash(3))
    sim.at(14.0, lambda: sim.pause(half + 1))
    sim.at(25.0, sim.heal)
    sim.at(33.0, lambda: sim.resume(half + 1))
    sim.at(40.0, lambda: sim.restart(3))
    sim.run(90.0)
    return f"{len(records)} {event_log_digest(records)}"


if __name__ == "__main__":
    print(jamsim.native_status().state, digest(*map(int, sys.argv[1:])))
