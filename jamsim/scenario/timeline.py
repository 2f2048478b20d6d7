"""Schedule a scenario's timeline onto a :class:`~jamsim.sim.simulation.Simulation`.

Random choices (which validators churn, who is rotated out at an epoch) come from
one ``random.Random`` seeded by the scenario seed, so a scenario is reproducible.
"""

from __future__ import annotations

import functools
import random
from dataclasses import replace

from jamsim.identity import PeerAddress, ValidatorIdentity, ValidatorInfo, ValidatorSet
from jamsim.scenario.resolve import (
    assign_regions,
    latency_spec,
    loss_spec,
    network_config,
    resolve_groups,
)
from jamsim.scenario.schema import Scenario, TimelineEntry
from jamsim.sim.network import LinkSpec
from jamsim.sim.simulation import Simulation

__all__ = ["churn_schedule", "describe", "schedule_timeline", "timeline_rng"]


def timeline_rng(scenario: Scenario) -> random.Random:
    """The one source of the timeline's random choices, for simulation and testnet
    alike, so both runtimes crash the same validators at the same times."""
    return random.Random(f"jamsim-timeline/{scenario.seed}")


def churn_schedule(entry: TimelineEntry, scenario: Scenario,
                   rng: random.Random) -> list[tuple[float, float, int]]:
    """``(crash_at, restart_at, validator)`` for each validator a churn entry hits."""
    churn = entry.churn
    assert churn is not None
    until = churn.until if churn.until is not None else scenario.duration
    low, high = churn.downtime_range()
    count = scenario.validators.count
    schedule = []
    for index in rng.sample(range(count), round(churn.fraction * count)):
        downtime = rng.uniform(low, high)
        crash_at = rng.uniform(entry.at, max(entry.at, until - downtime))
        schedule.append((crash_at, crash_at + downtime, index))
    return schedule


def describe(entry: TimelineEntry) -> str:
    """A short label for plots and summaries (``partition eu | us,asia``)."""
    action = entry.action
    if entry.partition is not None:
        arrow = " -> " if entry.one_way else " | "
        return "partition " + arrow.join(",".join(g) for g in entry.partition)
    if entry.churn is not None:
        return f"churn {entry.churn.fraction:.0%}"
    if entry.epoch is not None:
        return f"epoch rotate {entry.epoch.rotate:.0%}"
    if entry.link is not None:
        return f"link {'-'.join(entry.link.between)}"
    value = getattr(entry, action)
    return f"{action} {','.join(value)}" if isinstance(value, list) else action


def schedule_timeline(sim: Simulation, scenario: Scenario, validators: ValidatorSet) -> None:
    rng = timeline_rng(scenario)
    regions = assign_regions(scenario.validators.count, scenario.validators.regions)
    epoch_state = {"current": validators, "epoch": 0}
    for entry in scenario.timeline:
        at = entry.at
        if entry.partition is not None:
            groups = [resolve_groups(g, regions) for g in entry.partition]
            sim.at(at, functools.partial(sim.partition, groups, entry.one_way))
        elif entry.heal is not None:
            sim.at(at, sim.heal)
        elif entry.churn is not None:
            for crash_at, restart_at, index in churn_schedule(entry, scenario, rng):
                sim.at(crash_at, functools.partial(sim.crash, index))
                sim.at(restart_at, functools.partial(sim.restart, index))
        elif entry.epoch is not None:
            sim.at(at, functools.partial(_rotate, sim, scenario, rng, epoch_state,
                                         entry.epoch.rotate))
        elif entry.link is not None:
            link = entry.link
            base = network_config(scenario.network).link(*link.between)
            spec = LinkSpec(
                latency=latency_spec(link.latency) if link.latency is not None
                else base.latency,
                loss=loss_spec(link.loss) if link.loss is not None else base.loss,
                bandwidth_bps=base.bandwidth_bps)
            sim.at(at, functools.partial(sim.set_link, link.between[0], link.between[1], spec))
        elif entry.action == "isolate":
            # One partition with a group per isolated node: isolating them one by
            # one would make each isolation replace the previous one.
            nodes = sorted(resolve_groups(entry.isolate or [], regions))
            sim.at(at, functools.partial(_isolate_all, sim, nodes))
        else:
            method = {"kill": sim.crash, "pause": sim.pause,
                      "resume": sim.resume, "restart": sim.restart}[entry.action]
            for index in resolve_groups(getattr(entry, entry.action), regions):
                sim.at(at, functools.partial(method, index))


def _isolate_all(sim: Simulation, nodes: list[int]) -> None:
    """Cut every node of ``nodes`` off from every other node (and from each other)."""
    isolated = set(nodes)
    rest = [i for i in range(len(sim.nodes)) if i not in isolated]
    sim.partition([[n] for n in nodes] + ([rest] if rest else []))


def _rotate(sim: Simulation, scenario: Scenario, rng: random.Random,
            state: dict[str, object], fraction: float) -> None:
    """Epoch change: replace ``fraction`` of the current set with fresh keys; the
    old set stays connected as the previous epoch (JAMNP-S keeps prev/cur/next)."""
    current = state["current"]
    assert isinstance(current, ValidatorSet)
    epoch = int(state["epoch"]) + 1  # type: ignore[call-overload]
    replaced = set(rng.sample(range(len(current)), round(fraction * len(current))))
    infos: list[ValidatorInfo] = []
    next_port = max(node.address.port for node in sim.nodes) + 1
    for info in current:
        if info.index in replaced:
            key = ValidatorIdentity.generate_dev(f"{scenario.seed}/epoch{epoch}",
                                                 info.index).public_key
            info = ValidatorInfo(info.index, key, PeerAddress(info.address.host, next_port),
                                 info.region)
            next_port += 1
        infos.append(replace(info))
    new_set = ValidatorSet(infos)
    sim.change_validator_set(previous=current, current=new_set, next=None)
    state["current"], state["epoch"] = new_set, epoch
