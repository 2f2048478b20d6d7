"""The simulated network on its own: latency, loss, bandwidth and faults."""

from __future__ import annotations

import functools
import random
import statistics

import pytest
import simpy

from jamsim.core.errors import UsageError
from jamsim.sim.network import (
    CalendarEnvironment,
    LatencySpec,
    LinkSpec,
    LossSpec,
    Network,
    NetworkConfig,
)


def make(config: NetworkConfig, nodes: int = 3, seed: int = 1) -> Network:
    net = Network(simpy.Environment(), config, seed)
    for i in range(nodes):
        net.add_node(i, "eu" if i < 2 else "us")
    return net


def arrivals(net: Network, src: int, dst: int, count: int) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        net.send(src, dst, lambda: times.append(net.env.now))
    net.env.run()
    return times


def test_constant_latency_and_region_pair_override_symmetric_by_default() -> None:
    config = NetworkConfig(
        default=LinkSpec(LatencySpec(0.01)),
        links={("eu", "us"): LinkSpec(LatencySpec(0.08))},
    )
    net = make(config)
    assert arrivals(net, 0, 1, 1) == [pytest.approx(0.01)]
    net2 = make(config)
    assert arrivals(net2, 2, 0, 1) == [pytest.approx(0.08)]


def test_asymmetric_link_when_both_directions_given() -> None:
    config = NetworkConfig(links={
        ("eu", "us"): LinkSpec(LatencySpec(0.03)),
        ("us", "eu"): LinkSpec(LatencySpec(0.12)),
    })
    assert arrivals(make(config), 0, 2, 1) == [pytest.approx(0.03)]
    assert arrivals(make(config), 2, 0, 1) == [pytest.approx(0.12)]


def test_lognormal_latency_has_requested_mean_and_spread() -> None:
    spec = LatencySpec(0.1, jitter=0.05, distribution="lognormal")
    rng = random.Random(3)
    draws = [spec.sample(rng) for _ in range(20000)]
    assert statistics.fmean(draws) == pytest.approx(0.1, rel=0.03)
    assert statistics.pstdev(draws) == pytest.approx(0.05, rel=0.1)
    assert min(draws) > 0


def test_normal_latency_never_below_minimum() -> None:
    spec = LatencySpec(0.01, jitter=0.02, distribution="normal", minimum=0.002)
    rng = random.Random(4)
    assert min(spec.sample(rng) for _ in range(5000)) == pytest.approx(0.002)


def test_bernoulli_loss_rate() -> None:
    net = make(NetworkConfig(default=LinkSpec(loss=LossSpec.bernoulli(0.1))))
    got = arrivals(net, 0, 1, 20000)
    assert 1 - len(got) / 20000 == pytest.approx(0.1, abs=0.01)


def loss_runs(net: Network, count: int) -> list[int]:
    outcome: list[bool] = []
    for _ in range(count):
        outcome.append(net.send(0, 1, lambda: None))
    runs, current = [], 0
    for delivered in outcome:
        if not delivered:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs


def test_gilbert_elliott_loses_in_bursts_at_the_stated_mean() -> None:
    spec = LossSpec.bursts(p_good_to_bad=0.01, p_bad_to_good=0.25)
    net = make(NetworkConfig(default=LinkSpec(loss=spec)))
    runs = loss_runs(net, 50000)
    assert sum(runs) / 50000 == pytest.approx(spec.mean_loss, rel=0.2)
    # Mean burst is 1/p_bad_to_good = 4 packets; independent loss would give ~1.
    assert statistics.fmean(runs) == pytest.approx(4.0, rel=0.2)
    bernoulli = make(NetworkConfig(default=LinkSpec(loss=LossSpec.bernoulli(spec.mean_loss))))
    assert statistics.fmean(loss_runs(bernoulli, 50000)) < 1.2


def test_bandwidth_serialises_a_burst() -> None:
    # 1200-byte packets at 96 kbit/s: 0.1 s each on the wire.
    net = make(NetworkConfig(default=LinkSpec(LatencySpec(0.05), bandwidth_bps=96_000)))
    got = arrivals(net, 0, 1, 5)
    assert got == pytest.approx([0.15, 0.25, 0.35, 0.45, 0.55])


def test_partition_symmetric_one_way_isolate_and_heal() -> None:
    net = make(NetworkConfig())
    net.partition([[0], [1, 2]])
    assert not net.path_open(0, 1) and not net.path_open(1, 0)
    assert net.path_open(1, 2)
    net.partition([[0], [1]], one_way=True)
    assert not net.path_open(0, 1) and net.path_open(1, 0)
    assert net.path_open(0, 2)  # unlisted nodes are unaffected
    net.isolate(2)
    assert not net.path_open(2, 0) and not net.path_open(1, 2) and net.path_open(0, 1)
    net.heal()
    assert all(net.path_open(a, b) for a in range(3) for b in range(3) if a != b)
    with pytest.raises(UsageError):
        net.partition([[0, 1], [1]])


def test_crash_drops_in_flight_packets_and_reports_the_drop() -> None:
    net = make(NetworkConfig(default=LinkSpec(LatencySpec(1.0))))
    got: list[str] = []
    net.send(0, 1, lambda: got.append("delivered"), on_drop=lambda: got.append("dropped"))
    net.call_later(0.5, lambda: net.crash(1))
    net.env.run()
    assert got == ["dropped"]


def test_pause_buffers_up_to_the_socket_buffer_then_drops() -> None:
    net = make(NetworkConfig(default=LinkSpec(LatencySpec(0.01)), pause_buffer_packets=3))
    got: list[int] = []
    net.pause(1)
    for i in range(5):
        net.send(0, 1, functools.partial(got.append, i))
    net.env.run()
    assert got == []
    for deliver in net.resume(1):
        deliver()
    assert got == [0, 1, 2]


def test_same_seed_same_draws() -> None:
    config = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.02, "lognormal"),
                                            LossSpec.bernoulli(0.2)))
    assert arrivals(make(config, seed=9), 0, 1, 200) == arrivals(make(config, seed=9), 0, 1, 200)
    assert arrivals(make(config, seed=9), 0, 1, 200) != arrivals(make(config, seed=8), 0, 1, 200)


def test_invalid_specs_fail_loudly() -> None:
    with pytest.raises(UsageError):
        LatencySpec(0.1, distribution="pareto")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        LossSpec.bernoulli(1.5)
    with pytest.raises(UsageError):
        LinkSpec(bandwidth_bps=0)


@pytest.mark.parametrize("env_type", [simpy.Environment, CalendarEnvironment])
def test_calendar_runs_instants_in_order_interleaved_with_simpy_events(
        env_type: type[simpy.Environment]) -> None:
    """Whether the network may advance the clock itself or not, what runs when is
    the same: each call at its instant, same-instant calls in call order, SimPy's
    own events in between, and ``run(until)`` stops before ``until``."""
    env = env_type()
    net = Network(env, NetworkConfig(), 1)
    seen: list[tuple[str, float]] = []

    def note(label: str) -> None:
        seen.append((label, env.now))

    for when, label in ((3.0, "c"), (1.0, "a1"), (2.0, "b"), (1.0, "a2"), (0.5, "first")):
        net.call_at(when, functools.partial(note, label))

    def chained() -> None:
        note("a3")
        net.call_at(1.0, functools.partial(note, "same-instant"))
        net.call_at(1.25, functools.partial(note, "later"))

    net.call_at(1.0, chained)

    def process() -> simpy.events.ProcessGenerator:
        yield env.timeout(1.5)
        note("simpy")
        net.call_at(env.now + 0.25, functools.partial(note, "from-simpy"))

    env.process(process())
    env.run(until=2.0)
    assert seen == [("first", 0.5), ("a1", 1.0), ("a2", 1.0), ("a3", 1.0),
                    ("same-instant", 1.0), ("later", 1.25), ("simpy", 1.5),
                    ("from-simpy", 1.75)]
    assert env.now == 2.0
    env.run(until=10.0)
    assert seen[-2:] == [("b", 2.0), ("c", 3.0)]
