"""LinkCounters: the incremental connectivity bookkeeping behind every sample."""

from __future__ import annotations

import networkx as nx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jamsim.analysis.metrics import grid_neighbours
from jamsim.sim.connectivity import LinkCounters

# A change: the pair, and the transport's live ends before and after.
changes = st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.integers(0, 2),
                             st.integers(0, 2)), max_size=80)


def _replay(steps: list[tuple[int, int, int, int]]) -> tuple[LinkCounters, nx.MultiGraph]:
    """Apply changes that are consistent with transports: each has its own state."""
    counters = LinkCounters()
    graph: nx.MultiGraph = nx.MultiGraph()
    graph.add_nodes_from(range(12))
    ends: dict[int, tuple[int, int, int]] = {}  # transport -> (a, b, live ends)
    for tid, (a, b, _, new) in enumerate(steps):
        if a == b:
            continue
        # Alternate: open a new transport, or move an existing one's ends.
        if tid % 2 and ends:
            key = sorted(ends)[tid % len(ends)]
            a, b, old = ends[key]
        else:
            key, old = tid, 0
        counters.change(a, b, old, new)
        if old == 2:
            graph.remove_edge(a, b, key=key)
        if new == 2:
            graph.add_edge(a, b, key=key)
        ends[key] = (a, b, new)
    return counters, graph


@settings(max_examples=200, deadline=None)
@given(changes, st.sets(st.integers(0, 11)))
def test_counters_and_components_agree_with_a_graph_library(
        steps: list[tuple[int, int, int, int]], nodes: set[int]) -> None:
    counters, graph = _replay(steps)
    simple = nx.Graph(graph)
    assert counters.links_believed == simple.number_of_edges()
    assert sorted(counters.up_pairs()) == sorted(tuple(sorted(e)) for e in simple.edges)
    assert counters.duplicates == sum(1 for a, b in simple.edges
                                      if graph.number_of_edges(a, b) >= 2)
    assert counters.components(sorted(nodes)) == \
        nx.number_connected_components(simple.subgraph(nodes))


def test_two_halves_of_a_large_mesh_are_two_components() -> None:
    counters = LinkCounters()
    for a in range(200):
        for b in range(a + 1, 200):
            if (a < 100) == (b < 100):
                counters.change(a, b, 0, 2)
    assert counters.components(list(range(200))) == 2
    counters.change(0, 150, 0, 2)
    assert counters.components(list(range(200))) == 1
    # Only links between the given nodes count: 0-1, 0-150 and 150-199 join these.
    assert counters.components([0, 1, 150, 199]) == 1
    assert counters.components([1, 199]) == 2


# A fault schedule: after which change step a set of nodes is cut off (or None: heal).
faults = st.lists(st.tuples(st.integers(0, 80), st.one_of(st.none(),
                                                          st.sets(st.integers(0, 11), max_size=4))),
                  max_size=6)


@settings(max_examples=200, deadline=None)
@given(changes, faults, st.sets(st.integers(0, 11)))
@example(steps=[(0, 0, 0, 0)] * 6 + [(0, 1, 0, 0), (0, 0, 0, 0)], cuts=[(7, {0})],
         nodes=set())  # a pair with a transport but no live end is never stale
def test_usable_and_stale_links_follow_the_path_predicate(
        steps: list[tuple[int, int, int, int]], cuts: list[tuple[int, set[int] | None]],
        nodes: set[int]) -> None:
    """Counts judged incrementally equal a brute-force judgement of every pair."""
    cut: set[int] = set()
    clock = [0.0]

    def path_ok(a: int, b: int) -> bool:
        return a not in cut and b not in cut

    counters = LinkCounters(path_ok, lambda: clock[0])
    counters.set_grid(10)  # nodes 10 and 11 are outside the grid
    graph: nx.MultiGraph = nx.MultiGraph()
    graph.add_nodes_from(range(12))
    ends: dict[int, tuple[int, int, int]] = {}
    live_ends: dict[tuple[int, int], int] = {}  # pair -> transports live at >= 1 end
    schedule = dict(cuts)
    since: dict[tuple[int, int], float] = {}
    for tid, (a, b, _, new) in enumerate(steps):
        clock[0] = float(tid)
        if tid in schedule:
            change = schedule[tid]
            changed = set(cut) | (change or set())
            cut = set(change or ())
            pairs = [p for p in live_ends if p[0] in changed or p[1] in changed]
            counters.reassess(pairs if tid % 2 else None, not cut)
        if a == b:
            continue
        if tid % 2 and ends:
            key = sorted(ends)[tid % len(ends)]
            a, b, old = ends[key]
        else:
            key, old = tid, 0
        counters.change(a, b, old, new)
        pair = (min(a, b), max(a, b))
        live_ends[pair] = live_ends.get(pair, 0) + (new > 0) - (old > 0)
        if old == 2:
            graph.remove_edge(a, b, key=key)
        if new == 2:
            graph.add_edge(a, b, key=key)
        ends[key] = (a, b, new)
        # reference stale episodes: a pair stale at this step continues or starts
        for p in [p for p in since if not (live_ends.get(p, 0) and not path_ok(*p))]:
            del since[p]
        for p, n in live_ends.items():
            if n and not path_ok(*p) and p not in since:
                since[p] = clock[0]
    simple = nx.Graph(graph)
    usable = [(a, b) for a, b in simple.edges if path_ok(a, b)]
    stale = sorted(p for p, n in live_ends.items() if n and not path_ok(*p))
    assert counters.links_believed == simple.number_of_edges()
    assert counters.links_usable == len(usable)
    grid = set(grid_neighbours(10))
    assert counters.grid_usable == len([p for p in usable if tuple(sorted(p)) in grid])
    assert counters.stale_pairs() == stale
    assert counters.links_stale == len(stale)
    usable_graph = nx.Graph(usable)
    usable_graph.add_nodes_from(range(12))
    assert counters.components(sorted(nodes)) == \
        nx.number_connected_components(usable_graph.subgraph(nodes))
    oldest = min(since.values(), default=None)
    assert counters.oldest_stale(clock[0]) == (0.0 if oldest is None else clock[0] - oldest)
