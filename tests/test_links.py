"""The shared link-conditions type: samplers, median conversion, wire form."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.core.errors import UsageError
from jamsim.links import LatencySpec, LinkSpec, LossSpec, check_direction, lognormal_mean

probability = st.floats(0.0, 1.0)
seconds = st.just(0.0) | st.floats(1e-6, 2.0)  # a microsecond is the finest a scenario says


@given(seconds, seconds, st.sampled_from(["constant", "normal", "lognormal"]))
def test_median_round_trips(median: float, jitter: float, distribution: str) -> None:
    """What a node is told (the median) is what the harness meant, whatever the
    distribution: ``from_median`` and ``median`` are inverses."""
    spec = LatencySpec.from_median(median, jitter, distribution)
    assert spec.median == pytest.approx(median, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
def test_draws_have_the_median_and_deviation_asked_for(distribution: str) -> None:
    spec = LatencySpec.from_median(0.1, 0.04, distribution)
    rng = random.Random(7)
    draws = [spec.sample(rng) for _ in range(20_000)]
    assert statistics.median(draws) == pytest.approx(0.1, rel=0.03)
    assert statistics.stdev(draws) == pytest.approx(0.04, rel=0.1)
    assert min(draws) >= 0.0


def test_no_jitter_is_a_constant_delay_that_draws_nothing() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert LatencySpec.from_median(0.03, 0.0, "lognormal").sample(rng) == 0.03
    assert rng.getstate() == state
    assert lognormal_mean(0.0, 0.5) == 0.0


def test_bernoulli_draws_once_and_gilbert_elliott_keeps_its_state() -> None:
    rng, reference = random.Random(3), random.Random(3)
    lost, bad = LossSpec.bernoulli(0.5).lost(rng)
    assert lost == (reference.random() < 0.5) and bad is False
    always_bad = LossSpec.bursts(1.0, 0.0)  # enters bad at once and stays
    assert always_bad.lost(rng) == (True, True)
    assert always_bad.lost(rng, True) == (True, True)
    never_lost = LossSpec.bursts(0.0, 1.0, loss_bad=1.0, loss_good=0.0)
    assert never_lost.lost(rng) == (False, False)


def test_gilbert_elliott_is_bursty_at_its_mean_loss() -> None:
    spec = LossSpec.bursts(0.02, 0.18)  # stationary P(bad) = 0.1
    rng, bad, outcomes = random.Random(5), False, []
    for _ in range(50_000):
        lost, bad = spec.lost(rng, bad)
        outcomes.append(lost)
    assert sum(outcomes) / len(outcomes) == pytest.approx(spec.mean_loss, abs=0.02)
    bursts = "".join("x" if x else "." for x in outcomes).split(".")
    lengths = [len(b) for b in bursts if b]
    assert statistics.mean(lengths) > 4.0  # ~1/0.18, where Bernoulli gives ~1.1


@given(seconds, seconds, st.sampled_from(["constant", "normal", "lognormal"]),
       probability, st.none() | st.tuples(probability, probability, probability, probability),
       st.none() | st.floats(1.0, 1e10))
def test_wire_form_round_trips(median: float, jitter: float, distribution: str, rate: float,
                               burst: tuple[float, float, float, float] | None,
                               bandwidth: float | None) -> None:
    loss = LossSpec.bursts(*burst) if burst else (LossSpec.bernoulli(rate) if rate else LossSpec())
    spec = LinkSpec(LatencySpec.from_median(median, jitter, distribution), loss, bandwidth)
    back = LinkSpec.from_json(spec.to_json())
    assert back.loss == spec.loss and back.bandwidth_bps == spec.bandwidth_bps
    assert back.latency.distribution == spec.latency.distribution
    assert back.latency.jitter == spec.latency.jitter
    assert back.latency.mean == pytest.approx(spec.latency.mean, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("body", [{"latency": "fast"}, {"bandwidth": -1},
                                  {"bandwidth": True}, {"distribution": "pareto"},
                                  {"burst_loss": [0.1, 0.2]}, {"loss": 1.5},
                                  {"latency": -0.1}])
def test_malformed_wire_form_says_what_is_wrong(body: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        LinkSpec.from_json(body)


def test_unimpaired_and_directions() -> None:
    assert LinkSpec.from_json({}).is_unimpaired
    assert not LinkSpec().is_unimpaired  # the simulator's default link has 50 ms
    assert check_direction("in") == "in"
    with pytest.raises(UsageError, match="'in' or 'out'"):
        check_direction("sideways")
