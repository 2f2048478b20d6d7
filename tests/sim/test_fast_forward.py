"""Fast-forwarded cut dials give the run that simulating every attempt gives.

``Simulation(fast_forward=True)`` (the default) parks dials across a cut path
without timers and lets the manager catch up when the path opens. With an
un-jittered policy nothing is random in a partition, so the two modes must agree
on every telemetry event (times, attempts, reasons) and every connectivity sample;
only connection and event ids, which are labels, may differ. Each fault that cuts
a path is covered: symmetric and one-way partitions, a crashed peer, a pause of a
dialer mid-partition, and an epoch change while dials are cut.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.simulation import Simulation
from jamsim.telemetry.records import EventRecord

LAN = NetworkConfig(default=LinkSpec(LatencySpec(0.05)))
Timeline = Callable[[Simulation], None]
Row = tuple[int, int, str, float, int, str, str]


def _run(timeline: Timeline, fast_forward: bool, until: float, v: int = 8,
         network: NetworkConfig = LAN, telemetry: bool = True,
         **overrides: object) -> tuple[Simulation, list[Row], list[tuple[float, int, int]]]:
    records: list[EventRecord] = []
    policy = ConnectionPolicy.preset("jamnp-s", jitter="none", **overrides)
    sim = Simulation(ValidatorSet.dev(v, seed=5), network, policy, seed=3,
                     on_event=records.append if telemetry else None, sample_interval=0.5,
                     fast_forward=fast_forward)
    timeline(sim)
    sim.run(until)
    sim.catch_up()
    rows = sorted((r.node, r.peer, r.event, round(r.time, 6), r.attempt, r.reason, r.direction)
                  for r in records)
    samples = [(round(s.time, 6), s.links_usable, s.components) for s in sim.samples]
    return sim, rows, samples


def _partition(sim: Simulation) -> None:
    sim.at(3.0, lambda: sim.partition([[0, 1, 2, 3], [4, 5, 6, 7]]))
    sim.at(150.0, sim.heal)


def _one_way(sim: Simulation) -> None:
    sim.at(3.0, lambda: sim.partition([[0, 1, 2], [3, 4, 5, 6, 7]], one_way=True))
    sim.at(120.0, sim.heal)


def _crash_restart(sim: Simulation) -> None:
    sim.at(3.0, lambda: sim.crash(2))
    sim.at(95.0, lambda: sim.restart(2))


def _pause_mid_partition(sim: Simulation) -> None:
    _partition(sim)
    sim.at(60.0, lambda: sim.pause(1))
    sim.at(100.0, lambda: sim.resume(1))


def _epoch_mid_partition(sim: Simulation) -> None:
    _partition(sim)
    keys = ValidatorSet.dev(8, seed=5)
    rotated = ValidatorSet(tuple(keys)[:7])
    sim.at(80.0, lambda: sim.change_validator_set(keys, rotated))


@pytest.mark.parametrize("timeline", [_partition, _one_way, _crash_restart,
                                      _pause_mid_partition, _epoch_mid_partition],
                         ids=lambda f: f.__name__.strip("_"))
def test_fast_forward_gives_the_same_run_as_simulating_every_attempt(
        timeline: Timeline) -> None:
    slow, slow_rows, slow_samples = _run(timeline, False, 240.0)
    fast, fast_rows, fast_samples = _run(timeline, True, 240.0)
    assert fast_rows == slow_rows
    assert fast_samples == slow_samples
    assert sum(r[2] == "connect_out_failed" for r in fast_rows) > 20  # the cut was real
    # ...at a fraction of the simulated attempts' transports.
    assert fast._next_tid < slow._next_tid


@pytest.mark.parametrize("timeline", [_partition, _crash_restart, _epoch_mid_partition],
                         ids=lambda f: f.__name__.strip("_"))
def test_fast_forward_without_telemetry_takes_the_closed_form_and_agrees(
        timeline: Timeline) -> None:
    slow, _, slow_samples = _run(timeline, False, 240.0, telemetry=False)
    fast, _, fast_samples = _run(timeline, True, 240.0, telemetry=False)
    assert fast_samples == slow_samples
    for index in range(8):
        if slow.nodes[index].manager is not None:
            assert fast.manager(index).connections() == slow.manager(index).connections()


def test_fast_forward_agrees_under_random_loss_too() -> None:
    lossy = NetworkConfig(default=LinkSpec(LatencySpec(0.05), LossSpec.bernoulli(0.02)))
    _, slow_rows, slow_samples = _run(_partition, False, 200.0, network=lossy)
    _, fast_rows, fast_samples = _run(_partition, True, 200.0, network=lossy)
    assert fast_rows == slow_rows and fast_samples == slow_samples


def test_cut_attempts_are_recorded_at_their_own_times_before_the_path_opens() -> None:
    sim, rows, _ = _run(_partition, True, 100.0)  # still partitioned: catch_up() records
    fails = [r for r in rows if r[2] == "connect_out_failed"]
    assert fails and all(r[5] == "timeout" and r[3] <= 100.0 for r in fails)
    manager = sim.manager(0)  # up to date: attempts count every skipped dial
    snapshot = manager.peer(sim.nodes[4].key)
    assert snapshot is not None and snapshot.total_attempts >= 5


def test_jitter_keeps_the_backoff_bounds_with_fast_forward() -> None:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(8, seed=5), LAN, ConnectionPolicy.preset("jamnp-s"),
                     seed=3, on_event=records.append)
    _partition(sim)
    sim.run(240.0)
    assert sim.is_full_mesh()
    policy = sim.policy
    per_pair: dict[tuple[int, int], list[float]] = {}
    for r in sorted(records, key=lambda r: r.time):
        if r.event == "connecting_out" and 10.0 < r.time < 150.0:
            per_pair.setdefault((r.node, r.peer), []).append(r.time)
    assert len(per_pair) >= 16
    for times in per_pair.values():
        for a, b in itertools.pairwise(times):
            assert policy.min_retry - 1e-6 <= b - a - policy.connect_timeout \
                <= policy.max_retry + 1e-6
