"""A scenario's latency ``median`` is the median of the simulated latencies.

LatencySpec takes a mean. For a lognormal the mean is above the median
(``mean = exp(mu + sigma^2/2)``, ``median = exp(mu)``), so passing the median as
the mean made every lognormal link faster than the file said.
"""

from __future__ import annotations

import random
import statistics

import pytest

from jamsim.scenario import parse_scenario
from jamsim.scenario.resolve import latency_spec, lognormal_mean, network_config
from jamsim.scenario.schema import LatencyDistribution
from jamsim.sim.network import LatencySpec

DRAWS = 40_000


def draws(entry: LatencyDistribution | float, seed: int = 11) -> list[float]:
    spec = latency_spec(entry)
    rng = random.Random(seed)
    return [spec.sample(rng) for _ in range(DRAWS)]


@pytest.mark.parametrize(("median", "jitter"), [(0.1, 0.08), (0.045, 0.005), (0.02, 0.06)])
def test_lognormal_sample_median_and_spread_match_the_file(median: float, jitter: float) -> None:
    samples = draws(LatencyDistribution(median=median, jitter=jitter,
                                        distribution="lognormal"))
    # The sample median of 40k draws is within ~1.5% of the true median here.
    assert statistics.median(samples) == pytest.approx(median, rel=0.03)
    assert statistics.stdev(samples) == pytest.approx(jitter, rel=0.1)
    assert statistics.fmean(samples) > median  # the heavy tail pulls the mean up


def test_median_passed_as_the_mean_would_fail_the_test_above() -> None:
    """Median 100 ms, jitter 80 ms: the old conversion (median used as the mean)
    gives a sample median near 77 ms, far outside the tolerance above."""
    old = LatencySpec(mean=0.1, jitter=0.08, distribution="lognormal")
    rng = random.Random(11)
    assert statistics.median(old.sample(rng) for _ in range(DRAWS)) < 0.08
    assert lognormal_mean(0.1, 0.08) == pytest.approx(0.1201, abs=1e-4)


@pytest.mark.parametrize("distribution", ["normal", "constant"])
def test_normal_and_constant_median_is_the_median(distribution: str) -> None:
    samples = draws(LatencyDistribution(median=0.05, jitter=0.02,
                                        distribution=distribution))  # type: ignore[arg-type]
    assert statistics.median(samples) == pytest.approx(0.05, rel=0.02)


def test_plain_duration_is_constant() -> None:
    assert set(draws(0.04)[:100]) == {0.04}


def test_scenario_region_pair_reaches_the_network_config() -> None:
    scenario = parse_scenario(
        "name: l\nvalidators: {count: 4, regions: {eu: 50%, us: 50%}}\nnetwork:\n"
        "  latency:\n    default: 40ms\n"
        "    eu-us: {median: 100ms, jitter: 80ms, distribution: lognormal}\n")
    spec = network_config(scenario.network).links[("eu", "us")].latency
    rng = random.Random(5)
    assert statistics.median(spec.sample(rng) for _ in range(DRAWS)) == \
        pytest.approx(0.1, rel=0.03)
