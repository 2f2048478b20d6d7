"""Evaluate a scenario's ``expect:`` list against what a run recorded.

Works from the two tables every runtime writes (event rows and connectivity
samples), so simulation and testnet runs are judged by the same code. Each verdict
carries the measured number next to the bound, so a failure says by how much.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from jamsim.scenario.schema import Expectation, Scenario
from jamsim.telemetry.records import ConnectivitySample, EventRecord

if TYPE_CHECKING:
    from jamsim.analysis.delivery import Delivery

__all__ = ["Verdict", "evaluate", "longest_stale", "percentile", "reconnect_times",
           "resolve_after", "time_to_full_mesh"]


@dataclass(frozen=True, slots=True)
class Verdict:
    expectation: str
    passed: bool
    measured: float | None
    bound: float | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def resolve_after(after: str | float, scenario: Scenario) -> float:
    """``after`` as seconds: a number, or the last timeline entry of that action."""
    if isinstance(after, int | float):
        return float(after)
    times = [entry.at for entry in scenario.timeline if entry.action == after]
    if not times:
        try:
            from jamsim.scenario.units import parse_duration

            return parse_duration(after)
        except ValueError:
            raise ValueError(
                f"'after: {after}' names no timeline action in this scenario") from None
    return max(times)


def time_to_full_mesh(samples: Sequence[ConnectivitySample], after: float) -> float | None:
    """Seconds from ``after`` to the first sample showing a full mesh of *usable*
    links (a mesh held across a cut path does not count)."""
    for row in samples:
        if row.time >= after and row.full_mesh:
            return row.time - after
    return None


def longest_stale(samples: Sequence[ConnectivitySample], after: float) -> float:
    """The longest any link stayed stale, counted from ``after`` on (seconds).

    From each sample's ``longest_stale`` (age of the oldest stale pair): exact at
    the samples, so an episode ending between two samples is short by less than
    one sample interval.
    """
    return max((min(row.longest_stale, row.time - after) for row in samples
                if row.time >= after), default=0.0)


_PROCESS_ENDS = frozenset(("node_crashed", "node_restarted"))
"""Lifecycle rows after which a node holds no connection (NodeLifecycle)."""


def reconnect_times(events: Sequence[EventRecord], after: float) -> list[float]:
    """For every disconnection at or after ``after``: seconds until that node next
    reports a connection to the same peer (either direction). A node's crash (or
    restart) disconnects it from every peer it was connected to. Disconnections
    never repaired within the run are counted as infinite."""
    downs: dict[tuple[int, int], list[float]] = defaultdict(list)
    open_: dict[int, dict[int, int]] = defaultdict(dict)  # node -> peer -> sessions
    result: list[float] = []
    for row in events:
        if row.event in _PROCESS_ENDS:
            peers = open_.pop(row.node, {})
            if row.time >= after:
                for peer in sorted(peers):
                    downs[(row.node, peer)].append(row.time)
            continue
        if row.peer < 0:
            continue
        pair = (row.node, row.peer)
        if row.event == "disconnected":
            held = open_[row.node]
            if held.get(row.peer, 0) > 1:
                held[row.peer] -= 1
            else:
                held.pop(row.peer, None)
            if row.time >= after and row.reason != "duplicate connection":
                downs[pair].append(row.time)
        elif row.event in ("connected_in", "connected_out"):
            held = open_[row.node]
            held[row.peer] = held.get(row.peer, 0) + 1
            if downs.get(pair):
                result.extend(row.time - t for t in downs.pop(pair))
    for pending in downs.values():
        result.extend(math.inf for _ in pending)
    return result


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``q`` of the data
    at or below it); the summary and the verdicts both use this one rule."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def evaluate(scenario: Scenario, events: Sequence[EventRecord],
             samples: Sequence[ConnectivitySample],
             delivery: Delivery | None = None) -> list[Verdict]:
    """Verdicts in ``expect:`` order; ``delivery`` (the run's block and assurance
    tables) is needed by the delivery expectations (jamsim/analysis/delivery.py)."""
    return [_evaluate_one(e, scenario, events, samples, delivery) for e in scenario.expect]


def _evaluate_one(expectation: Expectation, scenario: Scenario,
                  events: Sequence[EventRecord],
                  samples: Sequence[ConnectivitySample],
                  delivery: Delivery | None = None) -> Verdict:
    kind = expectation.kind
    from jamsim.analysis.delivery import DELIVERY_EXPECTATIONS, evaluate_delivery

    if kind in DELIVERY_EXPECTATIONS:
        return evaluate_delivery(expectation, scenario, delivery)
    if expectation.full_mesh is not None:
        spec = expectation.full_mesh
        after = resolve_after(spec.after, scenario)
        took = time_to_full_mesh(samples, after)
        passed = took is not None and took <= spec.within
        detail = (f"full mesh {took:.1f}s after t={after:g}s" if took is not None
                  else f"never reached a full mesh after t={after:g}s")
        return Verdict(kind, passed, took, spec.within, detail)
    if expectation.no_duplicate_connections is not None:
        worst = max((row.duplicates for row in samples), default=0)
        final = samples[-1].duplicates if samples else 0
        passed = final == 0 and worst == 0
        return Verdict(kind, passed, float(worst), 0.0,
                       f"at most {worst} pairs held two live connections at a sample "
                       f"({final} at the end)")
    for name, q in (("reconnect_p99", 0.99), ("reconnect_p50", 0.50)):
        bound = getattr(expectation, name)
        if bound is not None:
            after = resolve_after(bound.after, scenario)
            times = reconnect_times(events, after)
            if not times:
                return Verdict(kind, True, None, bound.below,
                               f"no disconnections after t={after:g}s")
            value = percentile(times, q)
            return Verdict(kind, value <= bound.below, value, bound.below,
                           f"{name[-3:]} of {len(times)} reconnections after t={after:g}s "
                           f"= {value:.2f}s")
    if expectation.max_stale_links is not None:
        most = max((row.links_stale for row in samples), default=0)
        at = next((row.time for row in samples if row.links_stale == most), 0.0)
        return Verdict(kind, most <= expectation.max_stale_links, float(most),
                       float(expectation.max_stale_links),
                       f"at most {most} stale links at a sample (first at t={at:g}s)"
                       if most else "no stale link at any sample")
    if expectation.stale_for is not None:
        stale_spec = expectation.stale_for
        after = resolve_after(stale_spec.after, scenario)
        longest = longest_stale(samples, after)
        return Verdict(kind, longest < stale_spec.below, longest, stale_spec.below,
                       f"longest stale link after t={after:g}s: {longest:.1f}s")
    limit = expectation.max_retries_per_pair
    assert limit is not None
    failures: dict[tuple[int, int], int] = defaultdict(int)
    for row in events:
        if row.event == "connect_out_failed":
            failures[(row.node, row.peer)] += 1
    worst_retries = max(failures.values(), default=0)
    return Verdict(kind, worst_retries <= limit, float(worst_retries), float(limit),
                   f"worst pair needed {worst_retries} failed dials")
