"""Testnet samples from node beliefs plus the harness's own impairment rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jamsim.testnet.base import Heal, Isolate, Kill, NodeStatus, Partition
from jamsim.testnet.truth import PathRules, harness_sample

V = 4
EXPECTED = V * (V - 1) // 2


def mesh(running: set[int] | None = None, drop: set[tuple[int, int]] = frozenset()
         ) -> dict[int, NodeStatus]:
    """Every node believes in every other, except the (node, peer) pairs in ``drop``."""
    up = set(range(V)) if running is None else running
    return {i: NodeStatus(i, i in up, frozenset(j for j in range(V)
                                                if j != i and (i, j) not in drop))
            for i in range(V)}


def test_partition_makes_believed_cross_links_stale_and_heal_usable_again() -> None:
    rules = PathRules(V)
    assert harness_sample(0.0, mesh(), EXPECTED, rules).full_mesh
    rules.apply(Partition(((0, 1),)))
    sample = harness_sample(1.0, mesh(), EXPECTED, rules)
    assert (sample.links_believed, sample.links_usable, sample.links_stale) == (6, 2, 4)
    assert sample.components == 2 and not sample.full_mesh
    rules.apply(Heal())
    assert harness_sample(2.0, mesh(), EXPECTED, rules).full_mesh


def test_one_way_partition_cuts_the_pair_for_usability() -> None:
    rules = PathRules(V)
    rules.apply(Partition(((0,), (1, 2, 3)), one_way=True))
    assert not rules.passes(0, 1) and rules.passes(1, 0) and not rules.open(0, 1)
    sample = harness_sample(0.0, mesh(), EXPECTED, rules)
    assert (sample.links_usable, sample.links_stale) == (3, 3)


def test_isolation_and_a_dead_peer() -> None:
    rules = PathRules(V)
    rules.apply(Isolate(3))
    rules.apply(Kill(2))  # no path change: the status says it is not running
    statuses = mesh(running={0, 1, 3})
    sample = harness_sample(0.0, statuses, EXPECTED, rules)
    # 0-1 usable; 0-3, 1-3 believed but isolated; 0-2, 1-2, 3-2 believed by one end only
    assert sample.links_usable == 1
    assert sample.links_believed == 3
    assert sample.links_stale == 5
    assert sample.half_open == 3 and sample.nodes_up == 3


def test_half_open_pair_over_an_open_path_is_not_stale() -> None:
    sample = harness_sample(0.0, mesh(drop={(1, 0)}), EXPECTED, PathRules(V))
    assert (sample.links_usable, sample.half_open, sample.links_stale) == (5, 1, 0)


def test_longest_stale_follows_the_oldest_pair_still_stale() -> None:
    rules, since = PathRules(V), {}  # type: ignore[var-annotated]
    rules.apply(Partition(((0,),)))
    assert harness_sample(10.0, mesh(), EXPECTED, rules, since).longest_stale == 0.0
    assert harness_sample(13.0, mesh(), EXPECTED, rules, since).longest_stale == 3.0
    rules.apply(Heal())
    assert harness_sample(14.0, mesh(), EXPECTED, rules, since).longest_stale == 0.0


@given(st.lists(st.tuples(st.integers(0, V - 1), st.integers(0, V - 1)), max_size=8),
       st.sets(st.integers(0, V - 1), max_size=V))
def test_counts_are_consistent(drops: list[tuple[int, int]], cut: set[int]) -> None:
    rules = PathRules(V)
    if cut:
        rules.apply(Partition((tuple(sorted(cut)),)))
    s = harness_sample(0.0, mesh(drop=set(drops)), EXPECTED, rules)
    assert 0 <= s.links_usable <= s.links_believed <= EXPECTED
    assert s.links_believed + s.half_open <= EXPECTED
    assert s.links_stale <= s.links_believed + s.half_open - s.links_usable
