"""Evaluate a scenario's ``expect:`` list against what a run recorded.

Works from the tables every runtime writes, opened as a
:class:`~jamsim.analysis.run.Run`, and measures with
:mod:`jamsim.analysis.metrics`, the functions the summary and the report use, so a
verdict and the numbers beside it cannot disagree. Each verdict carries the
measured number next to the bound, so a failure says by how much.

A verdict has three outcomes: pass, fail, or *not measured* when the run has
nothing to measure the expectation with (``traffic: none`` and a delivery
expectation, or an ``after`` no slot starts at or after). Not measured is not a
pass, yet it does not fail the run either: the run did what it was told, the
expectation asked a question it cannot answer. It carries a warning that says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from jamsim.scenario.schema import Expectation, Scenario

if TYPE_CHECKING:
    from jamsim.analysis.run import Run

__all__ = ["Outcome", "Verdict", "evaluate", "percentile", "resolve_after", "run_passed"]


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_MEASURED = "not measured"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One expectation's verdict; ``not_measured`` verdicts are never ``passed``."""

    expectation: str
    passed: bool
    measured: float | None
    bound: float | None
    detail: str
    not_measured: bool = False

    def __post_init__(self) -> None:
        if self.not_measured and self.passed:
            raise ValueError("a verdict that was not measured cannot have passed")

    @classmethod
    def unmeasured(cls, expectation: str, bound: float | None, why: str) -> Verdict:
        """The run cannot measure ``expectation``; ``why`` says so and what to do."""
        return cls(expectation, False, None, bound, why, not_measured=True)

    @property
    def outcome(self) -> Outcome:
        if self.not_measured:
            return Outcome.NOT_MEASURED
        return Outcome.PASS if self.passed else Outcome.FAIL

    @property
    def failed(self) -> bool:
        """Measured and missed its bound: only this fails a run."""
        return self.outcome is Outcome.FAIL

    @property
    def warning(self) -> str | None:
        """What to tell the user about a verdict the run could not measure."""
        if not self.not_measured:
            return None
        return f"expectation {self.expectation} not measured: {self.detail}"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "outcome": self.outcome.value}


def run_passed(verdicts: list[Verdict]) -> bool:
    """A run passes when no verdict failed; not measured ones neither pass nor fail it."""
    return not any(v.failed for v in verdicts)


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


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (see :func:`jamsim.analysis.metrics.percentile`)."""
    from jamsim.analysis.metrics import percentile as nearest_rank

    return nearest_rank(values, q)


def evaluate(scenario: Scenario, run: Run) -> list[Verdict]:
    """Verdicts in ``expect:`` order; the delivery expectations read the run's
    block and assurance tables (jamsim/analysis/delivery.py)."""
    return [_evaluate_one(e, scenario, run) for e in scenario.expect]


def _evaluate_one(expectation: Expectation, scenario: Scenario, run: Run) -> Verdict:
    from jamsim.analysis import metrics

    kind = expectation.kind
    from jamsim.analysis.delivery import DELIVERY_EXPECTATIONS, evaluate_delivery

    if kind in DELIVERY_EXPECTATIONS:
        return evaluate_delivery(expectation, scenario, run.delivery)
    if expectation.full_mesh is not None:
        spec = expectation.full_mesh
        after = resolve_after(spec.after, scenario)
        c = run.connectivity
        if len(c) and not (c["time"] >= after).any():
            return Verdict.unmeasured(kind, spec.within,
                                      f"no connectivity sample at or after t={after:g}s, so "
                                      "nothing to measure; move `after` earlier or lengthen "
                                      "the run")
        measured = metrics.time_to_full_mesh(run, after)
        took = None if math.isnan(measured) else measured
        passed = took is not None and took <= spec.within
        detail = (f"full mesh {took:.1f}s after t={after:g}s" if took is not None
                  else f"never reached a full mesh after t={after:g}s")
        return Verdict(kind, passed, took, spec.within, detail)
    if expectation.no_duplicate_connections is not None:
        worst = metrics.max_duplicates(run)
        c = run.connectivity
        final = int(c["duplicates"].iloc[-1]) if len(c) else 0
        passed = final == 0 and worst == 0
        return Verdict(kind, passed, float(worst), 0.0,
                       f"at most {worst} pairs held two live connections at a sample "
                       f"({final} at the end)")
    for name, q in (("reconnect_p99", 0.99), ("reconnect_p50", 0.50)):
        bound = getattr(expectation, name)
        if bound is not None:
            after = resolve_after(bound.after, scenario)
            times = metrics.reconnections(run, after)
            if not len(times):
                return Verdict(kind, True, None, bound.below,
                               f"no disconnections after t={after:g}s")
            value = metrics.percentile(times, q)
            return Verdict(kind, value <= bound.below, value, bound.below,
                           f"{name[-3:]} of {len(times)} reconnections after t={after:g}s "
                           f"= {value:.2f}s")
    if expectation.max_stale_links is not None:
        most, at = metrics.max_stale_links(run)
        return Verdict(kind, most <= expectation.max_stale_links, float(most),
                       float(expectation.max_stale_links),
                       f"at most {most} stale links at a sample (first at t={at:g}s)"
                       if most else "no stale link at any sample")
    if expectation.stale_for is not None:
        stale_spec = expectation.stale_for
        after = resolve_after(stale_spec.after, scenario)
        longest = metrics.longest_stale(run, after)
        return Verdict(kind, longest < stale_spec.below, longest, stale_spec.below,
                       f"longest stale link after t={after:g}s: {longest:.1f}s")
    limit = expectation.max_retries_per_pair
    assert limit is not None
    worst_retries = metrics.max_failed_dials_per_pair(run)
    return Verdict(kind, worst_retries <= limit, float(worst_retries), float(limit),
                   f"worst pair needed {worst_retries} failed dials")
