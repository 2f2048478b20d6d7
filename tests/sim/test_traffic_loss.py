"""Loss detection under slot traffic: a cut path's connections end, idle timeout or not."""

from __future__ import annotations

import pytest

from jamsim.core.errors import UsageError
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation
from jamsim.telemetry.records import EventRecord

LAN = NetworkConfig(default=LinkSpec(LatencySpec(0.05)))
LEFT, RIGHT = [0, 1, 2], [3, 4, 5]


def _run(policy: str, traffic: bool, cut_at: float = 15.3,
         until: float = 60.0) -> tuple[Simulation, list[EventRecord]]:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(6, seed=5), LAN, ConnectionPolicy.preset(policy), seed=1,
                     on_event=records.append, traffic=traffic)
    sim.at(cut_at, lambda: sim.partition([LEFT, RIGHT]))
    sim.run(until)
    return sim, records


def _losses(records: list[EventRecord]) -> set[tuple[float, str]]:
    return {(round(r.time, 9), r.reason) for r in records
            if r.event == "disconnected" and (r.node in LEFT) != (r.peer in LEFT)}


def test_policies_carry_their_disconnect_timeout() -> None:
    assert ConnectionPolicy.preset("jamnp-s").disconnect_timeout == \
        ConnectionPolicy.preset("jamnp-s").idle_timeout == 15.0
    assert ConnectionPolicy.preset("jamixir").disconnect_timeout == 16.0  # msquic default
    with pytest.raises(UsageError):
        ConnectionPolicy.preset("jamnp-s", disconnect_timeout=-1.0)
    with pytest.raises(UsageError, match="slot_seconds"):
        Simulation(ValidatorSet.dev(2, seed=5), slot_seconds=0.0)


def test_without_traffic_jamixir_holds_a_cut_path_believed_and_stale() -> None:
    sim, records = _run("jamixir", traffic=False)
    assert _losses(records) == set()
    row = sim.sample()
    assert (row.links_believed, row.links_usable, row.links_stale) == (15, 6, 9)
    assert row.longest_stale == pytest.approx(60.0 - 15.3)


def test_with_traffic_jamixir_closes_a_cut_path_after_its_disconnect_timeout() -> None:
    # cut at 15.3; the next slot's data goes out at 18 s and is never acknowledged:
    # both ends of all 9 cross links close 16 s later
    sim, records = _run("jamixir", traffic=True)
    assert _losses(records) == {(34.0, "disconnect timeout")}
    assert len([r for r in records if r.event == "disconnected"]) == 18
    row = sim.sample()
    assert (row.links_believed, row.links_usable, row.links_stale) == (6, 6, 0)
    assert max(s.links_stale for s in sim.samples) == 9
    # samples every 1 s: the last stale one is at 33 s
    assert max(s.longest_stale for s in sim.samples) == pytest.approx(33.0 - 15.3)


def test_traffic_restarts_the_idle_clock_at_the_slot_tick() -> None:
    # jamnp-s: keep-alives every 5 s from boot, so the idle clock starts at the 20 s
    # PING without traffic (closing at 35 s), at the 18 s slot data with it (33 s)
    _, quiet = _run("jamnp-s", traffic=False, until=40.0)
    _, busy = _run("jamnp-s", traffic=True, until=40.0)
    assert _losses(quiet) == {(35.0, "idle timeout")}
    assert _losses(busy) == {(33.0, "idle timeout")}


def test_with_traffic_a_crashed_peer_is_noticed_at_the_next_slot() -> None:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(4, seed=5), LAN, ConnectionPolicy.preset("jamixir"),
                     seed=1, on_event=records.append, traffic=True)
    sim.at(20.0, lambda: sim.crash(3))
    sim.run(50.0)
    lost = {(r.node, round(r.time, 9), r.reason) for r in records
            if r.event == "disconnected" and r.peer == 3}
    assert lost == {(0, 40.0, "disconnect timeout"), (1, 40.0, "disconnect timeout"),
                    (2, 40.0, "disconnect timeout")}  # slot tick 24 s + 16 s
    assert sim.sample().links_stale == 0


def test_with_traffic_a_one_way_cut_closes_both_ends() -> None:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(4, seed=5), LAN, ConnectionPolicy.preset("jamixir"),
                     seed=1, on_event=records.append, traffic=True)
    sim.at(20.0, lambda: sim.partition([[0], [1, 2, 3]], one_way=True))
    sim.run(50.0)
    lost = {(r.node, r.peer, round(r.time, 9)) for r in records if r.event == "disconnected"}
    assert {(0, p, 40.0) for p in (1, 2, 3)} | {(p, 0, 40.0) for p in (1, 2, 3)} <= lost
