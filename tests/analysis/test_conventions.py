"""Analysis and run summary answer the same question the same way.

A notebook and ``summary.json`` disagreeing about "time after the heal" or "p99"
for the same run is a trap; these pin the shared conventions.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from jamsim.analysis.compare import run_metrics
from jamsim.analysis.metrics import percentile
from jamsim.analysis.run import run_from_tables
from jamsim.telemetry.records import EventRecord
from tests.analysis.conftest import ev

TIMELINE = {"timeline": [
    {"at": 10.0, "action": "partition", "label": "partition A|B"},
    {"at": 20.0, "action": "heal", "label": "heal @ 20s"},
    {"at": 30.0, "action": "partition", "label": "partition A|C"},
    {"at": 40.0, "action": "heal", "label": "heal @ 40s"},
]}


def _frame(records: list[EventRecord]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in records])


def test_an_action_name_means_its_last_entry_like_after_in_expectations() -> None:
    run = run_from_tables(_frame([]), summary=TIMELINE, validators=2, end_time=60.0)
    assert run.timeline_time("heal") == 40.0
    assert run.timeline_time("heal @ 20") == 20.0  # a label prefix picks that entry
    assert run.timeline_time("partition A|C") == 30.0


def test_compare_quantiles_use_the_summarys_nearest_rank_rule() -> None:
    # Pair (0, 1) goes down and up four times with latencies 1, 2, 3 and 10 s.
    records = [ev(0.0, 0, 1, "connected_out", 0), ev(0.0, 1, 0, "connected_in", 1)]
    t = 0.0
    for k, latency in enumerate((1.0, 2.0, 3.0, 10.0)):
        t += 20.0
        records += [ev(t, 0, 1, "disconnected", 2 * k), ev(t, 1, 0, "disconnected", 2 * k + 1)]
        records += [ev(t + latency, 0, 1, "connected_out", 2 * k + 2),
                    ev(t + latency, 1, 0, "connected_in", 2 * k + 3)]
    run = run_from_tables(_frame(records), validators=2, end_time=200.0)
    row = run_metrics(run)
    assert row["reconnections"] == 4
    assert row["reconnect_p50_s"] == percentile([1.0, 2.0, 3.0, 10.0], 0.5) == 2.0
    assert row["reconnect_p99_s"] == 10.0  # linear interpolation would say 9.79
