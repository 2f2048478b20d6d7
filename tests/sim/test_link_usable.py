"""Simulation.link_usable: a believed link is usable only while packets can flow."""

from __future__ import annotations

import itertools

from jamsim.analysis.metrics import grid_neighbours
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation

GRID8 = set(grid_neighbours(8))
LAN = NetworkConfig(default=LinkSpec(LatencySpec(0.05)))


def _sim(policy: str = "jamixir", v: int = 4) -> Simulation:
    return Simulation(ValidatorSet.dev(v, seed=5), LAN, ConnectionPolicy.preset(policy), seed=1)


def _usable(sim: Simulation) -> set[tuple[int, int]]:
    n = len(sim.nodes)
    return {(a, b) for a, b in itertools.combinations(range(n), 2) if sim.link_usable(a, b)}


def test_every_believed_link_is_usable_on_an_open_network() -> None:
    sim = _sim()
    assert _usable(sim) == set()
    sim.run(15.0)
    assert sim.connected_pairs() == set(itertools.combinations(range(4), 2))
    assert _usable(sim) == sim.connected_pairs()
    assert all(sim.link_usable(b, a) for a, b in sim.connected_pairs())
    assert not sim.link_usable(2, 2)


def test_a_cut_path_leaves_links_believed_but_not_usable() -> None:
    sim = _sim()  # jamixir: no idle timeout, so nothing notices the cut
    sim.run(15.0)
    sim.partition([[0, 1], [2, 3]])
    sim.run(60.0)
    assert sim.connected_pairs() == set(itertools.combinations(range(4), 2))
    assert _usable(sim) == {(0, 1), (2, 3)}
    sim.heal()
    assert _usable(sim) == sim.connected_pairs()


def test_one_way_cut_pause_and_crash_make_links_unusable() -> None:
    sim = _sim()
    sim.run(15.0)
    sim.partition([[0], [1, 2, 3]], one_way=True)  # 0 -> others dropped, back still flows
    assert _usable(sim) == {(1, 2), (1, 3), (2, 3)}
    sim.heal()
    sim.pause(1)
    assert _usable(sim) == {(0, 2), (0, 3), (2, 3)}
    sim.resume(1)
    assert _usable(sim) == sim.connected_pairs() == set(itertools.combinations(range(4), 2))
    sim.crash(3)
    assert _usable(sim) == {(0, 1), (0, 2), (1, 2)}


def _stale_by_hand(sim: Simulation) -> set[tuple[int, int]]:
    """Pairs where some end's manager holds a live connection but no path is open."""
    pairs: set[tuple[int, int]] = set()
    for node in sim.nodes:
        manager = node.manager
        if manager is None or not node.alive:
            continue
        for key in manager.live_peers():
            cid = manager.live_connection(key)
            if cid is None or cid not in node.ends:
                continue
            other = sim.index_of(key)
            a, b = min(node.index, other), max(node.index, other)
            if not (sim.network.path_open(a, b) and sim.network.path_open(b, a)):
                pairs.add((a, b))
    return pairs


def test_samples_count_a_partition_as_stale_until_a_timeout_notices() -> None:
    for policy, stale_after in (("jamixir", 9), ("jamnp-s", 0)):
        sim = _sim(policy, v=6)
        sim.run(15.0)
        assert sim.sample().full_mesh
        sim.partition([[0, 1, 2], [3, 4, 5]])
        sim.run(16.0)
        row = sim.sample()
        assert (row.links_usable, row.links_believed, row.links_stale) == (6, 15, 9)
        assert not row.full_mesh and row.components == 2
        assert row.longest_stale == 1.0
        sim.run(60.0)  # jamnp-s: its idle timeout closed them; jamixir never notices
        row = sim.sample()
        assert row.links_stale == stale_after and len(_stale_by_hand(sim)) == stale_after
        assert row.links_usable == len(sim.usable_pairs()) == 6
        sim.heal()
        assert sim.sample().links_stale == 0


def test_counters_agree_with_the_managers_through_faults() -> None:
    sim = _sim("jamnp-s", v=8)
    steps = [(5.0, lambda: sim.partition([[0, 1], [2, 3, 4]], one_way=True)),
             (7.0, lambda: sim.crash(5)), (9.0, lambda: sim.pause(6)),
             (11.0, sim.heal), (13.0, lambda: sim.restart(5)), (16.0, lambda: sim.isolate(2)),
             (30.0, lambda: sim.resume(6)), (33.0, sim.heal)]
    for t, fault in steps:
        sim.run(t)
        fault()
        for dt in (0.01, 0.3, 1.5):
            sim.run(t + dt)
            row = sim.sample()
            assert row.links_usable == len(sim.usable_pairs())
            assert row.grid_pairs == len(GRID8)
            assert row.grid_usable == len(sim.usable_pairs() & GRID8)
            assert row.links_believed == len(sim.connected_pairs())
            assert set(sim.links.stale_pairs()) == _stale_by_hand(sim)
            assert row.links_stale == len(_stale_by_hand(sim))
    sim.run(60.0)
    assert sim.sample().full_mesh and sim.sample().links_stale == 0
