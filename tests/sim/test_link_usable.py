"""Simulation.link_usable: a believed link is usable only while packets can flow."""

from __future__ import annotations

import itertools

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation

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
