"""A hand-built 4-validator run whose metrics are worked out by hand in the tests."""

from __future__ import annotations

import pandas as pd
import pytest

from jamsim.analysis.run import Run, run_from_tables
from jamsim.telemetry.records import ConnectivitySample, EventRecord

KIND = {"connecting_out": 24, "connect_out_failed": 25, "connected_out": 26,
        "connected_in": 23, "disconnected": 27, "node_crashed": 240, "node_restarted": 243}


def ev(t: float, node: int, peer: int, event: str, conn: int = -1, attempt: int = 0,
       direction: str = "") -> EventRecord:
    return EventRecord(time=t, node=node, peer=peer, event=event, kind=KIND[event],
                       conn_id=conn, attempt=attempt, direction=direction)


EVENTS = [
    ev(0.5, 0, 1, "connecting_out", 10, 1, "out"),
    ev(1.0, 0, 1, "connected_out", 10, 1, "out"),
    ev(1.5, 1, 0, "connected_in", 20, direction="in"),
    ev(2.0, 2, 3, "connected_out", 11, 1, "out"),
    ev(2.0, 3, 2, "connected_in", 21, direction="in"),
    ev(3.0, 0, 2, "connecting_out", 30, 1, "out"),
    ev(4.0, 0, 2, "connect_out_failed", 30, 1, "out"),
    ev(5.0, 0, 2, "connecting_out", 12, 2, "out"),
    ev(6.0, 0, 2, "connected_out", 12, 2, "out"),
    ev(6.0, 2, 0, "connected_in", 22, direction="in"),
    ev(12.0, 0, 1, "disconnected", 10),
    ev(12.5, 1, 0, "disconnected", 20),
    ev(22.0, 0, 1, "connected_out", 13, 1, "out"),
    ev(23.0, 1, 0, "connected_in", 23, direction="in"),
]

SUMMARY = {"name": "hand", "validators": 4, "simulated_s": 40.0, "policy": "jamnp-s",
           "seed": 1, "complete": True,
           "timeline": [{"at": 10.0, "action": "partition", "label": "partition 0,2,3 | 1"},
                        {"at": 20.0, "action": "heal", "label": "heal"}]}


def samples() -> pd.DataFrame:
    """Samples at 0, 8, 15, 24: full mesh (as declared) at 8 and 24 only."""
    rows = [ConnectivitySample(0.0, 0, 0, 0, 6, 4), ConnectivitySample(8.0, 6, 6, 0, 6, 4),
            ConnectivitySample(15.0, 2, 2, 0, 6, 4, components=2),
            ConnectivitySample(24.0, 6, 6, 0, 6, 4)]
    return pd.DataFrame([r.as_dict() for r in rows])


def events_frame(extra: list[EventRecord] | None = None) -> pd.DataFrame:
    return pd.DataFrame([e.as_dict() for e in [*EVENTS, *(extra or [])]])


@pytest.fixture
def run() -> Run:
    return run_from_tables(events_frame(), samples(), SUMMARY)
