"""Turn a validated scenario into concrete things: regions per validator, node
index groups, a ValidatorSet, a NetworkConfig and a ConnectionPolicy.

Group references in timeline entries may be a region name (``eu``), a validator
name (``v3``), an index (``3``), an inclusive range (``0..38``) or ``all``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from jamsim.identity import ValidatorSet
from jamsim.scenario.schema import GilbertElliott, LatencyDistribution, Network, Scenario
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.traffic.config import ExtraMessage, TrafficConfig

if TYPE_CHECKING:
    from jamsim.scenario.loader import LineMap

__all__ = ["assign_regions", "check_references", "latency_spec", "lognormal_mean",
           "network_config", "resolve_group", "resolve_groups", "traffic_config",
           "validator_set"]

DEFAULT_REGION = "default"
GROUP_FIELDS = ("isolate", "kill", "pause", "resume", "restart")


def assign_regions(count: int, shares: dict[str, float]) -> list[str]:
    """Contiguous index blocks per region, sizes by largest remainder (deterministic)."""
    if not shares:
        return [DEFAULT_REGION] * count
    exact = {name: share * count for name, share in shares.items()}
    sizes = {name: int(value) for name, value in exact.items()}
    leftover = count - sum(sizes.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - sizes[n]), n))[:leftover]:
        sizes[name] += 1
    regions: list[str] = []
    for name in shares:
        regions.extend([name] * sizes[name])
    return regions


def resolve_group(ref: str, regions: list[str]) -> list[int]:
    """Indices named by one reference; ``ValueError`` says what is allowed."""
    count = len(regions)
    text = ref.strip()
    if text == "all":
        return list(range(count))
    if text in regions:
        return [i for i, region in enumerate(regions) if region == text]
    index_text = text[1:] if text.startswith("v") else text
    low, sep, high = index_text.partition("..")
    try:
        first = int(low)
        last = int(high) if sep else first
    except ValueError:
        known = sorted(set(regions) - {DEFAULT_REGION})
        raise ValueError(
            f"{ref!r} is not a validator (v0..v{count - 1}), an index range like "
            f"'0..{count - 1}', 'all'" + (f" or a region ({', '.join(known)})" if known else "")
        ) from None
    if not 0 <= first <= last < count:
        raise ValueError(f"{ref!r} names validators outside 0..{count - 1} "
                         f"(the scenario has {count})")
    return list(range(first, last + 1))


def resolve_groups(refs: Iterable[str], regions: list[str]) -> list[int]:
    seen: dict[int, None] = {}
    for ref in refs:
        for index in resolve_group(ref, regions):
            seen[index] = None
    return list(seen)


def check_references(scenario: Scenario, lines: LineMap) -> None:
    """Fail early, with a line number, on groups or regions that do not exist."""
    regions = assign_regions(scenario.validators.count, scenario.validators.regions)
    region_names = set(regions)

    def fail(message: str, path: tuple[str | int, ...]) -> None:
        raise lines.error(message, path)

    for i, entry in enumerate(scenario.timeline):
        refs: list[tuple[tuple[str | int, ...], str]] = []
        if entry.partition is not None:
            refs += [(("timeline", i, "partition", g, j), ref)
                     for g, group in enumerate(entry.partition) for j, ref in enumerate(group)]
            if len(entry.partition) < 2 and not entry.one_way:
                fail("a partition needs at least two groups", ("timeline", i, "partition"))
        for name in GROUP_FIELDS:
            values = getattr(entry, name)
            if values is not None:
                refs += [(("timeline", i, name, j), ref) for j, ref in enumerate(values)]
        for path, ref in refs:
            try:
                resolve_group(ref, regions)
            except ValueError as exc:
                fail(str(exc), path)
        if entry.link is not None:
            for j, region in enumerate(entry.link.between):
                if region not in region_names and region != DEFAULT_REGION:
                    fail(f"unknown region {region!r}; regions: {sorted(region_names)}",
                         ("timeline", i, "link", "between", j))
    from jamsim.scenario.expectations import resolve_after

    for i, expectation in enumerate(scenario.expect):
        for kind in ("full_mesh", "reconnect_p99", "reconnect_p50"):
            spec = getattr(expectation, kind, None)
            after = getattr(spec, "after", None)
            if after is None:
                continue
            try:
                resolve_after(after, scenario)
            except ValueError:
                actions = sorted({entry.action for entry in scenario.timeline})
                fail(f"'after: {after}' names no timeline action of this scenario; use a "
                     f"time (e.g. 30s) or one of: {actions}", ("expect", i, kind, "after"))
    for key in scenario.network.latency:
        if key == "default":
            continue
        for region in key.split("-"):
            if region not in region_names:
                fail(f"unknown region {region!r} in latency pair {key!r}; "
                     f"regions: {sorted(region_names)}", ("network", "latency", key))


def validator_set(scenario: Scenario, *, base_port: int = 40000) -> ValidatorSet:
    regions = assign_regions(scenario.validators.count, scenario.validators.regions)
    return ValidatorSet.dev(scenario.validators.count, seed=scenario.seed,
                            base_port=base_port, regions=regions)


def lognormal_mean(median: float, std: float) -> float:
    """Mean of the lognormal distribution with this median and standard deviation.

    With median ``m = exp(mu)`` and ``x = exp(sigma^2)``, the variance is
    ``m^2 x (x - 1)``; solving ``m^2 x (x - 1) = std^2`` for ``x`` gives
    ``x = (1 + sqrt(1 + 4 (std/m)^2)) / 2``, and the mean is ``exp(mu + sigma^2/2)
    = m sqrt(x)``. LatencySpec, given this mean and ``std``, recovers the same
    ``mu`` and ``sigma``, so its draws have the scenario's median.
    """
    if median <= 0:
        return 0.0
    x = (1 + math.sqrt(1 + 4 * (std / median) ** 2)) / 2
    return median * math.sqrt(x)


def latency_spec(entry: float | LatencyDistribution) -> LatencySpec:
    """The simulator's LatencySpec for a scenario latency.

    Scenarios give the *median* (what a ping summary reports, and what stays put
    when jitter grows a heavy tail); LatencySpec takes the *mean*. They are the
    same for ``normal`` (clamping at 0 keeps the median) and ``constant``; for
    ``lognormal`` the mean is larger, by :func:`lognormal_mean`.
    """
    if not isinstance(entry, LatencyDistribution):
        return LatencySpec(mean=entry)
    if not entry.jitter or entry.distribution == "constant":
        return LatencySpec(mean=entry.median)
    if entry.distribution == "lognormal":
        return LatencySpec(mean=lognormal_mean(entry.median, entry.jitter),
                           jitter=entry.jitter, distribution="lognormal")
    return LatencySpec(mean=entry.median, jitter=entry.jitter, distribution="normal")


def loss_spec(loss: float | GilbertElliott) -> LossSpec:
    if isinstance(loss, GilbertElliott):
        return LossSpec.bursts(loss.p, loss.r, loss.bad_loss)
    return LossSpec.bernoulli(loss) if loss > 0 else LossSpec()


def network_config(network: Network) -> NetworkConfig:
    loss = loss_spec(network.loss)

    def link(entry: float | LatencyDistribution) -> LinkSpec:
        return LinkSpec(latency=latency_spec(entry), loss=loss, bandwidth_bps=network.bandwidth)

    default = link(network.latency.get("default", 0.04))
    links = {}
    for key, entry in network.latency.items():
        if key != "default":
            src, dst = key.split("-")
            links[(src, dst)] = link(entry)
    return NetworkConfig(default=default, links=links)


def traffic_config(scenario: Scenario) -> TrafficConfig | None:
    """The scenario's JAM slot traffic, or ``None`` for ``traffic: none``."""
    section = scenario.traffic
    if section == "none":
        return None
    return TrafficConfig(
        slot=section.slot,
        assurance_lead=section.assurance_lead,
        block_size=section.block_size,
        header_size=section.header_size,
        core_count=section.cores,
        assurance_size=section.assurance_size,
        extra=tuple(ExtraMessage(kind=e.kind, size=e.size, fanout=e.fanout, offset=e.offset)
                    for e in section.extra),
    )
