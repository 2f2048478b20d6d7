"""Delivery metrics and expectation verdicts on hand-made tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from jamsim.analysis.delivery import (
    Delivery,
    delivery_metrics,
    evaluate_delivery,
    slot_table,
    summarise,
    summary_rows,
)
from jamsim.scenario.expectations import Outcome, Verdict, run_passed
from jamsim.scenario.loader import parse_scenario

NAN = math.nan


def tables() -> Delivery:
    """Slot 1 (t=6): 4 validators, one never gets the block. Slot 2 (t=12): all within
    0.5 s. Slot 3 (t=18): one gets it after the slot ends (7 s)."""
    blocks = pd.DataFrame({
        "slot": [1] * 4 + [2] * 4 + [3] * 4,
        "author": [0] * 4 + [1] * 4 + [2] * 4,
        "node": [0, 1, 2, 3] * 3,
        "received_at": [6.0, 6.1, 6.2, NAN, 12.2, 12.0, 12.3, 12.5, 18.1, 18.2, 18.0, 25.0],
        "hops": [0, 1, 1, -1, 1, 0, 1, 2, 1, 1, 0, 2],
        "via": [-1, 0, 0, -1, 1, -1, 1, 0, 2, 2, -1, 0],
    })
    assurances = pd.DataFrame({
        "slot": [1] * 4 + [2] * 4 + [3] * 4,
        "author": [0] * 4 + [1] * 4 + [2] * 4,
        "assurer": [0, 1, 2, 3] * 3,
        "sent_at": [4.0] * 4 + [10.0] * 4 + [16.0] * 3 + [NAN],
        "delivered_at": [4.0, 4.05, 4.05, NAN, 10.05, 10.0, 10.05, 12.5, 16.05, 16.05, 16.0,
                         NAN],
    })
    return Delivery(blocks, assurances, 6.0)


def test_slot_table() -> None:
    t = slot_table(tables())
    assert t["slot"].tolist() == [1, 2, 3]
    assert t["p50_s"].tolist() == pytest.approx([0.1, 0.2, 0.1])
    assert t["p99_s"].tolist()[0] == math.inf
    assert t["p99_s"].tolist()[1:] == pytest.approx([0.5, 7.0])
    assert t["reached"].tolist() == [0.75, 1.0, 0.75]
    # non-author assurances in time: slot 1: 2/3, slot 2: 2/3 (12.5 is late), slot 3: 2/3
    assert t["assured"].tolist() == pytest.approx([2 / 3] * 3)


def test_summary_and_after_windows() -> None:
    d = tables()
    overall = summarise(d)
    assert overall["slots"] == 3
    assert overall["blocks_reached"] == pytest.approx(10 / 12)
    assert overall["block_propagation_p99_s"] is None  # one of 12 never: p99 is inf
    assert overall["block_propagation_p50_s"] == pytest.approx(0.2)
    assert overall["assurances_delivered"] == pytest.approx(6 / 9)
    m = delivery_metrics(d, [(7.0, "heal")])
    assert {k: m[k] for k in overall} == overall  # top level: sweep tables flatten it
    after = m["after"]["heal @ 7s"]
    assert after["slots"] == 2 and after["blocks_reached"] == pytest.approx(7 / 8)
    assert after["block_propagation_p99_s"] == pytest.approx(7.0)
    rows = dict(summary_rows(m))
    assert rows["block propagation p50 / p99 (s)"] == "0.20 / never"
    assert rows["  after heal @ 7s: in slot / on time"] == "87.5% / 66.7%"


@pytest.mark.parametrize(("expect", "passed", "measured"), [
    ("block_propagation_p99: {below: 7s, after: heal}", True, 7.0),
    ("block_propagation_p99: {below: 6.9s, after: heal}", False, 7.0),
    ("block_propagation_p99: {below: 60s}", False, math.inf),
    ("blocks_reached: {at_least: 87%, after: heal}", True, 7 / 8),
    ("blocks_reached: {at_least: 90%, after: 12s}", False, 0.875),
    ("blocks_reached: {at_least: 100%, after: 12s}", False, 0.875),
    ("assurances_delivered: {at_least: 66%}", True, 2 / 3),
    ("assurances_delivered: {at_least: 70%, after: heal}", False, 2 / 3),
])
def test_delivery_expectations(expect: str, passed: bool, measured: float) -> None:
    scenario = parse_scenario(f"name: x\ntimeline:\n  - {{at: 7s, heal: all}}\n"
                              f"expect:\n  - {expect}\n", "t.yaml", [])
    verdict = evaluate_delivery(scenario.expect[0], scenario, tables())
    assert verdict.passed is passed, verdict.detail
    assert verdict.measured == pytest.approx(measured)


def test_traffic_none_leaves_delivery_not_measured_and_says_why() -> None:
    scenario = parse_scenario("name: x\ntraffic: none\nexpect:\n"
                              "  - blocks_reached: {at_least: 1%}\n", "t.yaml", [])
    verdict = evaluate_delivery(scenario.expect[0], scenario, None)
    assert verdict.outcome is Outcome.NOT_MEASURED
    assert not verdict.passed and not verdict.failed
    assert verdict.warning == ("expectation blocks_reached not measured: traffic: none: "
                               "delivery not measured; remove the expectation or enable "
                               "traffic")


def test_missing_tables_with_traffic_on_fail() -> None:
    scenario = parse_scenario("name: x\nexpect:\n  - blocks_reached: {at_least: 1%}\n",
                              "t.yaml", [])
    verdict = evaluate_delivery(scenario.expect[0], scenario, None)
    assert verdict.failed and "traffic is on" in verdict.detail


@pytest.mark.parametrize("expect", ["blocks_reached: {at_least: 1%, after: 30s}",
                                    "block_propagation_p99: {below: 1s, after: 30s}",
                                    "assurances_delivered: {at_least: 1%, after: 30s}"])
def test_a_window_without_slots_is_not_measured(expect: str) -> None:
    scenario = parse_scenario(f"name: x\nexpect:\n  - {expect}\n", "t.yaml", [])
    verdict = evaluate_delivery(scenario.expect[0], scenario, tables())
    assert verdict.outcome is Outcome.NOT_MEASURED, verdict.detail
    assert "at or after t=30s" in verdict.detail


def test_a_verdict_not_measured_cannot_pass() -> None:
    with pytest.raises(ValueError, match="cannot have passed"):
        Verdict("blocks_reached", True, None, 0.5, "x", not_measured=True)
    assert run_passed([Verdict.unmeasured("blocks_reached", 0.5, "why")])
    assert not run_passed([Verdict.unmeasured("blocks_reached", 0.5, "why"),
                           Verdict("full_mesh", False, None, 1.0, "never")])


def with_messages() -> Delivery:
    """Extra kind 200 in slots 1 and 2 (6 s slots), 4 rows each: slot 1: 0.1 s, 0.3 s,
    never, and a down sender; slot 2: 0.2 s, 0.2 s, 0.4 s and one arriving 13 s later
    (after its slot ended)."""
    d = tables()
    d.messages = pd.DataFrame({
        "slot": [1] * 4 + [2] * 4,
        "kind": [200] * 8,
        "sender": [0, 1, 2, 3] * 2,
        "receiver": [1, 2, 3, 0] * 2,
        "sent_at": [7.0, 7.0, 7.0, NAN, 13.0, 13.0, 13.0, 13.0],
        "delivered_at": [7.1, 7.3, NAN, NAN, 13.2, 13.2, 13.4, 26.0],
    })
    return d


def test_extra_message_figures() -> None:
    d = with_messages()
    overall = summarise(d)
    assert overall["messages"] == 8
    assert overall["messages_delivered"] == pytest.approx(5 / 8)
    # latencies of the 7 sent: 0.1 0.2 0.2 0.3 0.4 13 inf
    assert overall["message_latency_p50_s"] == pytest.approx(0.3)
    assert overall["message_latency_p99_s"] is None
    after = delivery_metrics(d, [(12.0, "heal")])["after"]["heal @ 12s"]
    assert after["messages"] == 4 and after["messages_delivered"] == pytest.approx(3 / 4)
    assert after["message_latency_p99_s"] == pytest.approx(13.0)
    assert slot_table(d)["messages"].tolist()[:2] == [0.5, 0.75]
    rows = dict(summary_rows(delivery_metrics(d, [])))
    assert rows["extra messages in slot (p50 / p99 s)"] == "62.5% (0.30 / never)"
    assert "messages" not in summarise(tables())  # runs without extras: no such keys


@pytest.mark.parametrize(("expect", "passed", "measured"), [
    ("messages_delivered: {at_least: 62%}", True, 5 / 8),
    ("messages_delivered: {at_least: 80%, after: 12s}", False, 3 / 4),
])
def test_messages_delivered_expectation(expect: str, passed: bool, measured: float) -> None:
    scenario = parse_scenario(
        "name: x\ntraffic: {extra: [{kind: 200}]}\n"
        f"expect:\n  - {expect}\n", "t.yaml", [])
    verdict = evaluate_delivery(scenario.expect[0], scenario, with_messages())
    assert verdict.passed is passed and verdict.measured == pytest.approx(measured)


def test_messages_delivered_without_extras_is_not_measured() -> None:
    scenario = parse_scenario("name: x\nexpect:\n  - messages_delivered: {at_least: 1%}\n",
                              "t.yaml", [])
    verdict = evaluate_delivery(scenario.expect[0], scenario, tables())
    assert verdict.outcome is Outcome.NOT_MEASURED and "traffic: extra" in verdict.detail
