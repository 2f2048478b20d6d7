"""Delivery metrics from ``blocks.parquet``, ``assurances.parquet`` and, for runs
with extra CE messages, ``messages.parquet``.

What a run *delivered*, whatever the managers believed: per slot, how long the
block took to reach each validator of the set (p50 / p99 across validators,
"never" counting as infinite) and which fraction had it within the slot; which
fraction of assurances reached the slot's author before the slot began.

Denominators are every validator of the set, dead or cut off ones included: a
crashed validator that misses a block is a validator without the block. The
author's own assurance is left out of the assurance fraction (it needs no link).

Extra CE messages (``traffic: extra``): which fraction of the scheduled ones
(a down sender's included) reached their receiver within the slot they were
sent in, and the p50 / p99 latency from sending to receipt over the messages
sent (never = infinite, as for blocks).

The scenario expectations ``block_propagation_p99``, ``blocks_reached``,
``assurances_delivered`` and ``messages_delivered`` are evaluated here
(:func:`evaluate_delivery`) over
(slot, validator) pairs of the slots that start at or after ``after``, with the
same nearest-rank percentile as every other expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from jamsim.telemetry.writer import read_table
from jamsim.traffic.records import (
    ASSURANCE_SCHEMA,
    ASSURANCES_FILE,
    BLOCK_SCHEMA,
    BLOCKS_FILE,
    MESSAGE_SCHEMA,
    MESSAGES_FILE,
)

if TYPE_CHECKING:
    from jamsim.scenario.expectations import Verdict
    from jamsim.scenario.schema import Expectation, Scenario

__all__ = ["DELIVERY_EXPECTATIONS", "Delivery", "delivery_metrics", "evaluate_delivery",
           "load_delivery", "slot_table", "summarise"]

DELIVERY_EXPECTATIONS = ("block_propagation_p99", "blocks_reached", "assurances_delivered",
                         "messages_delivered")


@dataclass
class Delivery:
    """A run's delivery tables; ``slot`` is the slot length, ``lead`` how long before
    a slot its assurances are sent (seconds); ``messages`` the extra CE messages,
    ``None`` for a run without them."""

    blocks: pd.DataFrame
    assurances: pd.DataFrame
    slot: float
    lead: float = 2.0
    messages: pd.DataFrame | None = None

    def from_slot_at(self, after: float) -> Delivery:
        """Blocks (and extra messages) of the slots that start at or after ``after``
        seconds, and the assurances sent at or after it."""
        first_block = math.ceil(after / self.slot - 1e-9)
        first_assured = math.ceil((after + self.lead) / self.slot - 1e-9)
        m = self.messages
        return Delivery(self.blocks[self.blocks["slot"] >= first_block],
                        self.assurances[self.assurances["slot"] >= first_assured],
                        self.slot, self.lead,
                        None if m is None else m[m["slot"] >= first_block])

    @property
    def message_in_slot(self) -> pd.Series:
        """Per extra message row: received before the end of the slot it was sent in."""
        m = self.messages
        if m is None:
            return pd.Series(dtype=bool)
        return m["delivered_at"] < (m["slot"] + 1) * self.slot

    @property
    def message_latency(self) -> pd.Series:
        """Seconds from sending to receipt of each extra message sent; inf if never."""
        m = self.messages
        if m is None:
            return pd.Series(dtype=float)
        sent = m[m["sent_at"].notna()]
        return (sent["delivered_at"] - sent["sent_at"]).fillna(math.inf)

    @property
    def propagation(self) -> pd.Series:
        """Seconds from the slot start to each (slot, validator) having the block; inf if never."""
        b = self.blocks
        return (b["received_at"] - b["slot"] * self.slot).fillna(math.inf)

    @property
    def reached_in_slot(self) -> pd.Series:
        return self.propagation < self.slot

    @property
    def assured_in_time(self) -> pd.Series:
        """Per non-author assurance row: reached the author before the slot began."""
        a = self.assurances
        rows = a[a["assurer"] != a["author"]]
        return rows["delivered_at"] < rows["slot"] * self.slot


def load_delivery(run_dir: str | Path) -> Delivery | None:
    """The delivery tables of a results folder, or ``None`` when it has none.

    Slot length and assurance lead come from the resolved ``scenario.yaml``
    (``traffic.slot``, ``traffic.assurance_lead``; 6 s and 2 s if absent).
    """
    out = Path(run_dir)
    blocks_path = out / BLOCKS_FILE
    if not blocks_path.exists() and not (out / "blocks.parts").is_dir():
        return None
    slot, lead = _slot_timing(out)
    blocks = read_table(blocks_path, BLOCK_SCHEMA).to_pandas()
    assurances = read_table(out / ASSURANCES_FILE, ASSURANCE_SCHEMA).to_pandas()
    messages = None
    if (out / MESSAGES_FILE).exists() or (out / "messages.parts").is_dir():
        messages = read_table(out / MESSAGES_FILE, MESSAGE_SCHEMA).to_pandas()
    return Delivery(blocks, assurances, slot, lead, messages)


def _slot_timing(out: Path) -> tuple[float, float]:
    path = out / "scenario.yaml"
    traffic = (yaml.safe_load(path.read_text()) or {}).get("traffic") \
        if path.exists() else None
    if not isinstance(traffic, dict):
        return 6.0, 2.0
    return float(traffic.get("slot", 6.0)), float(traffic.get("assurance_lead", 2.0))


def _nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return float(ordered[index])


def slot_table(delivery: Delivery) -> pd.DataFrame:
    """One row per slot: start, author, p50_s, p99_s, reached (fraction within the
    slot), assured (fraction of non-author assurances in time; NaN if none sent),
    and with extra CE messages ``messages`` (fraction delivered within the slot)."""
    b = delivery.blocks.assign(prop=delivery.propagation.to_numpy())
    rows: list[dict[str, Any]] = []
    for slot, group in b.groupby("slot", sort=True):
        prop = group["prop"].to_numpy()
        rows.append({
            "slot": int(slot), "start": int(slot) * delivery.slot,
            "author": int(group["author"].iloc[0]),
            "p50_s": _nearest_rank(prop, 0.5), "p99_s": _nearest_rank(prop, 0.99),
            "reached": float(np.mean(prop < delivery.slot)),
        })
    table = pd.DataFrame(rows, columns=["slot", "start", "author", "p50_s", "p99_s",
                                        "reached"])
    a = delivery.assurances
    rows_a = a[a["assurer"] != a["author"]]
    in_time = (rows_a["delivered_at"] < rows_a["slot"] * delivery.slot).groupby(
        rows_a["slot"]).mean()
    table["assured"] = table["slot"].map(in_time).astype(float)
    if delivery.messages is not None:
        on_time = delivery.message_in_slot.groupby(delivery.messages["slot"]).mean()
        table["messages"] = table["slot"].map(on_time).astype(float)
    return table


def _finite(value: float) -> float | None:
    """Rounded to the microsecond (sums of latencies carry float noise); inf -> None."""
    return round(value, 6) if math.isfinite(value) else None


def summarise(delivery: Delivery) -> dict[str, Any]:
    """p50 / p99 propagation over (slot, validator) pairs, fractions reached and assured;
    with extra CE messages their count, fraction delivered in the slot, p50 / p99 latency.

    Infinite percentiles (more than that share never got the block) are ``None``.
    """
    prop = delivery.propagation.to_numpy()
    assured = delivery.assured_in_time
    out: dict[str, Any] = {
        "slots": int(delivery.blocks["slot"].nunique()),
        "block_propagation_p50_s": _finite(_nearest_rank(prop, 0.5)) if len(prop) else None,
        "block_propagation_p99_s": _finite(_nearest_rank(prop, 0.99)) if len(prop) else None,
        "blocks_reached": float(np.mean(prop < delivery.slot)) if len(prop) else None,
        "assurances_delivered": float(assured.mean()) if len(assured) else None,
    }
    if delivery.messages is not None:
        in_slot = delivery.message_in_slot
        latency = delivery.message_latency.to_numpy()
        out |= {
            "messages": len(in_slot),
            "messages_delivered": float(in_slot.mean()) if len(in_slot) else None,
            "message_latency_p50_s":
                _finite(_nearest_rank(latency, 0.5)) if len(latency) else None,
            "message_latency_p99_s":
                _finite(_nearest_rank(latency, 0.99)) if len(latency) else None,
        }
    return out


def delivery_metrics(delivery: Delivery, timeline: list[tuple[float, str]]) -> dict[str, Any]:
    """Overall figures (at the top level, so sweep tables pick them up as
    ``delivery.blocks_reached`` ...), and the same from each recovery action
    (``after["label @ t"]``) on."""
    return {
        "slot_s": delivery.slot,
        **summarise(delivery),
        "after": {f"{label} @ {at:g}s": summarise(delivery.from_slot_at(at))
                  for at, label in timeline},
    }


def _share_verdict(kind: str, bound: float, after: float, hits: pd.Series,
                   none_sent: str, reached: str) -> Verdict:
    """The verdict on the share of ``hits`` (one bool per message sent from ``after``
    on) that arrived in time; not measured when nothing was sent."""
    from jamsim.scenario.expectations import Verdict

    if not len(hits):
        return Verdict.unmeasured(kind, bound, _empty_window(none_sent, after))
    value = float(hits.mean())
    return Verdict(kind, value >= bound, value, bound,
                   f"{int(hits.sum())}/{len(hits)} {reached}, slots from t={after:g}s")


def evaluate_delivery(expectation: Expectation, scenario: Scenario,
                      delivery: Delivery | None) -> Verdict:
    """The verdict of one delivery expectation (see the module docstring)."""
    from jamsim.scenario.expectations import Verdict, resolve_after

    kind = expectation.kind
    spec = getattr(expectation, kind)
    bound = float(spec.below if kind == "block_propagation_p99" else spec.at_least)
    if kind == "messages_delivered" and scenario.traffic != "none" \
            and not scenario.traffic.extra:
        return Verdict.unmeasured(kind, bound, "no extra CE messages configured: messages "
                                               "not measured; remove the expectation or add "
                                               "traffic: extra")
    if delivery is None:
        if scenario.traffic == "none":
            return Verdict.unmeasured(kind, bound, "traffic: none: delivery not measured; "
                                                   "remove the expectation or enable traffic")
        return Verdict(kind, False, None, bound,
                       "this run recorded no deliveries although its traffic is on")
    after = resolve_after(spec.after, scenario)
    window = delivery.from_slot_at(after)
    if kind == "assurances_delivered":
        return _share_verdict(kind, bound, after, window.assured_in_time,
                              "no assurances were sent",
                              "assurances reached the author before the slot")
    if kind == "messages_delivered":
        if window.messages is None:
            return Verdict(kind, False, None, bound,
                           "this run recorded no extra messages although it has extras")
        return _share_verdict(kind, bound, after, window.message_in_slot,
                              "no extra message was sent",
                              "extra messages reached their receiver within the slot")
    prop = window.propagation.to_numpy()
    slots = int(window.blocks["slot"].nunique())
    if not len(prop):
        return Verdict.unmeasured(kind, bound, _empty_window("no slot started", after))
    if kind == "blocks_reached":
        value = float(np.mean(prop < delivery.slot))
        return Verdict(kind, value >= bound, value, bound,
                       f"{int(np.sum(prop < delivery.slot))}/{len(prop)} (slot, validator) "
                       f"pairs had the block within the slot, {slots} slots from "
                       f"t={after:g}s")
    value = _nearest_rank(prop, 0.99)
    shown = f"{value:.3f}s" if math.isfinite(value) else "never (over 1% never got it)"
    return Verdict(kind, value <= bound, value, bound,
                   f"p99 block propagation over {slots} slots from t={after:g}s = {shown}")


def _empty_window(what: str, after: float) -> str:
    return (f"{what} at or after t={after:g}s, so nothing to measure; move `after` "
            "earlier or lengthen the run")


def summary_rows(delivery_metrics: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Rows for the CLI summary table (metric, value) from ``metrics.delivery``."""
    if not delivery_metrics:
        return []

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    def rows(first: str, second: str, third: str, m: dict[str, Any]) -> list[tuple[str, str]]:
        out = [
            (first, f"{seconds(m['block_propagation_p50_s'])} / "
                    f"{seconds(m['block_propagation_p99_s'])}"),
            (second, f"{share(m['blocks_reached'])} / {share(m['assurances_delivered'])}"),
        ]
        if "messages_delivered" in m:
            out.append((third, f"{share(m['messages_delivered'])} "
                               f"({seconds(m['message_latency_p50_s'])} / "
                               f"{seconds(m['message_latency_p99_s'])})"))
        return out

    out = rows("block propagation p50 / p99 (s)", "blocks in slot / assurances on time",
               "extra messages in slot (p50 / p99 s)", delivery_metrics)
    for label, m in delivery_metrics["after"].items():
        out += rows(f"  after {label}: p50 / p99 (s)", f"  after {label}: in slot / on time",
                    f"  after {label}: extra messages in slot (p50 / p99 s)", m)
    return out
