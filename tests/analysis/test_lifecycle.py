"""A crashed node's sessions end at its crash in the analysis tables."""

from __future__ import annotations

import math

import pandas as pd

from jamsim.analysis.metrics import reconnect_latency, reconnections
from jamsim.analysis.run import run_from_tables
from jamsim.analysis.sessions import CRASH_REASON, derive_links, derive_sessions
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation
from jamsim.telemetry.records import EventRecord

from .conftest import ev


def _crash_run() -> tuple[list[EventRecord], pd.DataFrame]:
    """jamixir (no idle timeout): node 2 crashes at 10 s and restarts at 20 s."""
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(4, seed=5), NetworkConfig(LinkSpec(LatencySpec(0.05))),
                     ConnectionPolicy.preset("jamixir"), seed=1, on_event=records.append)
    sim.at(10.0, lambda: sim.crash(2))
    sim.at(20.0, lambda: sim.restart(2))
    sim.at(25.0, lambda: sim.pause(3))
    sim.at(26.0, lambda: sim.resume(3))
    sim.run(40.0)
    return records, pd.DataFrame([r.as_dict() for r in records])


def test_the_simulator_records_the_lifecycle_of_each_node() -> None:
    records, _ = _crash_run()
    rows = [(r.time, r.node, r.peer, r.event, r.kind) for r in records if r.kind >= 240]
    assert rows == [(10.0, 2, -1, "node_crashed", 240), (20.0, 2, -1, "node_restarted", 243),
                    (25.0, 3, -1, "node_paused", 241), (26.0, 3, -1, "node_resumed", 242)]


def test_sessions_and_links_of_a_crashed_node_end_at_the_crash() -> None:
    _, events = _crash_run()
    sessions = derive_sessions(events, 40.0)
    crashed = sessions[(sessions["node"] == 2) & (sessions["up_at"] < 10.0)]
    assert len(crashed) == 3
    assert (crashed["down_at"] == 10.0).all() and (crashed["reason"] == CRASH_REASON).all()
    # the peers never noticed (no idle timeout): their ends stay open
    held = sessions[(sessions["peer"] == 2) & (sessions["up_at"] < 10.0)]
    assert held["open"].all()
    links = derive_links(events, 40.0)
    before = links[((links["a"] == 2) | (links["b"] == 2)) & (links["up_at"] < 10.0)]
    assert len(before) == 3 and (before["down_at"] == 10.0).all()
    # the restarted process's own sessions (ids counted from 1 again) are separate
    after = sessions[(sessions["node"] == 2) & (sessions["up_at"] >= 20.0)]
    assert set(after["conn_id"]) & set(crashed["conn_id"])
    assert len(after) and (after["up_at"] > 20.0).all()
    # the crash disconnects each of the node's 3 pairs; jamixir's preferred dialer
    # (node 2 only towards node 3) reconnects one 0.1 s after the restart, and the
    # two peers that should dial never notice their connection died
    # (counted per pair, as every metric is; pair 2-3 also drops later, when
    # jamixir's duplicate contest closes both of its connections)
    run = run_from_tables(events, validators=4, end_time=40.0)
    lat = reconnect_latency(run)
    at_crash = lat[lat["down_at"] == 10.0]
    assert sorted(zip(at_crash["a"], at_crash["b"], strict=True)) == [(0, 2), (1, 2), (2, 3)]
    pairs = zip(at_crash["a"], at_crash["b"], strict=True)
    back = dict(zip(pairs, at_crash["latency"], strict=True))
    assert abs(back[(2, 3)] - 10.1) < 1e-6
    assert math.isnan(back[(0, 2)]) and math.isnan(back[(1, 2)])
    times = reconnections(run, 10.0)  # never repaired counts as inf
    assert sorted(times.tolist())[-3:] == [math.inf] * 3  # 0-2, 1-2, the last flap


def test_a_restart_row_closes_sessions_even_without_a_crash_row() -> None:
    events = pd.DataFrame([e.as_dict() for e in [
        ev(1.0, 0, 1, "connected_out", 1), ev(1.0, 1, 0, "connected_in", 1),
        ev(5.0, 0, -1, "node_restarted"),
        ev(6.0, 0, 1, "connected_out", 1), ev(6.5, 1, 0, "disconnected", 1),
        ev(7.0, 1, 0, "connected_in", 2)]])
    sessions = derive_sessions(events, 10.0)
    rows = sessions[["node", "conn_id", "up_at", "down_at", "reason"]].to_numpy().tolist()
    assert rows[0] == [0, 1, 1.0, 5.0, CRASH_REASON]
    links = derive_links(events, 10.0)
    # node 1 still holds the old session when node 0's new one comes up at 6.0
    assert links[["up_at", "down_at"]].fillna(-1).to_numpy().tolist() == \
        [[1.0, 5.0], [6.0, 6.5], [7.0, -1.0]]
