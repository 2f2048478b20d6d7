"""relaxed_gc changes the collector only inside its body; the model fidelity makes
no garbage cycles (its memory does not wait for the collector)."""

from __future__ import annotations

import gc

import pytest

from jamsim.identity import ValidatorSet
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.simulation import Simulation


def test_thresholds_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with relaxed_gc((50_000, 20, 30)):
        inside = gc.get_threshold()
    assert inside == tuple(max(a, b) for a, b in zip(before, (50_000, 20, 30), strict=True))
    assert gc.get_threshold() == before


def test_restored_when_the_body_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), relaxed_gc():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before


def test_never_lowers_a_callers_higher_threshold() -> None:
    before = gc.get_threshold()
    gc.set_threshold(1_000_000, before[1], before[2])
    try:
        with relaxed_gc((10, 1, 1)):
            assert gc.get_threshold()[0] == 1_000_000
    finally:
        gc.set_threshold(*before)


def test_model_simulation_makes_no_garbage_cycles() -> None:
    """Reference counting frees everything the model fidelity drops: a run through loss,
    jitter, a partition, a crash and restart, a pause and resume leaves nothing for
    the cyclic collector (every object it made is freed by reference counting or is
    still in use)."""
    gc.collect()
    before = gc.get_debug()
    network = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.03, "lognormal"),
                                             LossSpec.bursts(0.02, 0.3)))
    sim = Simulation(ValidatorSet.dev(12, seed=5), network, seed=3,
                     on_event=lambda record: None, sample_interval=0.5)
    sim.at(5.0, lambda: sim.partition([range(6), range(6, 12)]))
    sim.at(8.0, lambda: sim.crash(2))
    sim.at(9.0, lambda: sim.pause(9))
    sim.at(20.0, sim.heal)
    sim.at(25.0, lambda: sim.resume(9))
    sim.at(30.0, lambda: sim.restart(2))
    sim.run(60.0)
    assert sim.is_full_mesh()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        garbage = [type(obj).__qualname__ for obj in gc.garbage]
    finally:
        gc.set_debug(before)
        gc.garbage.clear()
    assert found == 0, f"garbage cycles: {sorted(set(garbage))}"
