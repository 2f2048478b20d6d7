"""Incremental bookkeeping of the connection graph for cheap connectivity samples.

At 1023 validators a full scan of every manager's view costs about a second, and a
run samples hundreds of times, so the transport model reports each change of an
end's liveness here and the counters stay current. ``Simulation.connected_pairs()``
recomputes the same thing from the managers themselves; tests check both agree.

What the managers *believe* is not what the network carries: a link both ends hold
across a cut path (or to a crashed or paused peer) cannot carry a message until an
idle or loss timeout notices. The counters therefore also judge each pair with a
live end against the path predicate the simulation gives them (``path_ok``): a
*usable* link is believed and its path is open both ways; a *stale* pair has a
live end but no open path. Pairs are re-judged when their own ends change and when
the topology changes (``reassess``: one node's pairs, or every pair after a
partition change); a sample only reads the totals.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable

__all__ = ["LinkCounters"]


class LinkCounters:
    """Per unordered node pair: how many transports are live at both / one end,
    and whether the path under the pair is open (see the module docstring)."""

    __slots__ = ("_adjacent", "_bad", "_bad_adjacent", "_bad_since", "_counts",
                 "_half_adjacent", "all_open", "bad_believed", "clock", "duplicates",
                 "half_open", "links_believed", "path_ok")

    def __init__(self, path_ok: Callable[[int, int], bool] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        # Pair (low << 32 | high: an int key hashes and compares without building a
        # tuple) -> (transports live at both ends) << 16 | (live at one end): one
        # lookup per change; a bootstrap of 1023 validators makes a million changes.
        self._counts: dict[int, int] = {}
        # Node -> nodes it has a link with: components() walks these with C-level set
        # operations; a Python union-find over 522,753 pairs took ~0.4 s per sample.
        self._adjacent: defaultdict[int, set[int]] = defaultdict(set)
        # Node -> nodes it is half-open with (live at one end only): with _adjacent,
        # every pair a node change can make stale.
        self._half_adjacent: defaultdict[int, set[int]] = defaultdict(set)
        # Pairs with a live end whose path is not open (-> since when), a heap of
        # (since, pair) to find the oldest (entries of ended episodes are skipped
        # lazily), and among the believed ones the adjacency components() skips.
        self._bad: dict[int, float] = {}
        self._bad_since: list[tuple[float, int]] = []
        self._bad_adjacent: defaultdict[int, set[int]] = defaultdict(set)
        self.links_believed = 0
        self.bad_believed = 0
        self.duplicates = 0
        self.half_open = 0
        self.clock = clock
        """Current time, to date stale episodes (``None``: always 0)."""
        self.path_ok = path_ok
        """``path_ok(a, b)``: can ``a`` and ``b`` exchange packets now? ``None``: always."""
        self.all_open = True
        """Every path is open (no partition, every node up): ``path_ok`` is skipped."""

    @property
    def links_usable(self) -> int:
        """Believed pairs whose path is open both ways."""
        return self.links_believed - self.bad_believed

    @property
    def links_stale(self) -> int:
        """Pairs live at one or both ends whose path is cut (or whose peer is down)."""
        return len(self._bad)

    def change(self, a: int, b: int, old_ends: int, new_ends: int) -> None:
        """A transport between ``a`` and ``b`` went from ``old_ends`` live ends to ``new_ends``."""
        if old_ends == new_ends:
            return
        pair = a << 32 | b if a < b else b << 32 | a
        counts = self._counts
        packed = counts.get(pair, 0)
        both, half = packed >> 16, packed & 0xFFFF
        new_both = both + (new_ends == 2) - (old_ends == 2)
        new_half = half + (new_ends == 1) - (old_ends == 1)
        if new_both != both:
            if both == 0:
                self.links_believed += 1
                self._adjacent[a].add(b)
                self._adjacent[b].add(a)
            elif new_both == 0:
                self.links_believed -= 1
                self._adjacent[a].discard(b)
                self._adjacent[b].discard(a)
            self.duplicates += (new_both >= 2) - (both >= 2)
        was_half = both == 0 and half > 0
        now_half = new_both == 0 and new_half > 0
        if was_half != now_half:
            self.half_open += now_half - was_half
            if now_half:
                self._half_adjacent[a].add(b)
                self._half_adjacent[b].add(a)
            else:
                self._half_adjacent[a].discard(b)
                self._half_adjacent[b].discard(a)
        if new_both or new_half:
            counts[pair] = new_both << 16 | new_half
        elif packed:
            del counts[pair]
        if ((both > 0) != (new_both > 0) or was_half != now_half) and \
                (self._bad or not self.all_open):
            self._judge(pair, a, b, both > 0, new_both > 0, new_both > 0 or new_half > 0)

    def _judge(self, pair: int, a: int, b: int, was_believed: bool, believed: bool,
               live: bool) -> None:
        """Re-decide whether ``pair`` is bad (live somewhere, path not open)."""
        bad_set = self._bad
        was_bad = pair in bad_set
        path_ok = self.path_ok
        bad = live and not self.all_open and path_ok is not None and not path_ok(a, b)
        if was_bad == bad and was_believed == believed:
            return
        if was_bad and was_believed:
            self.bad_believed -= 1
            self._bad_adjacent[a].discard(b)
            self._bad_adjacent[b].discard(a)
        if bad and believed:
            self.bad_believed += 1
            self._bad_adjacent[a].add(b)
            self._bad_adjacent[b].add(a)
        if bad and not was_bad:
            clock = self.clock
            since = clock() if clock is not None else 0.0
            bad_set[pair] = since
            heapq.heappush(self._bad_since, (since, pair))
        elif was_bad and not bad:
            del bad_set[pair]

    def reassess(self, nodes: Iterable[int] | None, all_open: bool) -> None:
        """The topology changed for ``nodes`` (``None``: any pair): re-judge their pairs.

        ``all_open`` says whether every path is now open, which makes a heal of a
        network with every node up O(stale pairs) instead of O(pairs).
        """
        self.all_open = all_open
        if all_open:
            if self._bad:
                self._bad = {}
                self._bad_since = []
                self._bad_adjacent = defaultdict(set)
                self.bad_believed = 0
            return
        counts = self._counts
        if nodes is None:
            pairs: Iterable[int] = list(counts)
        else:
            chosen: set[int] = set()
            for n in nodes:
                for m in self._adjacent.get(n, ()):
                    chosen.add(n << 32 | m if n < m else m << 32 | n)
                for m in self._half_adjacent.get(n, ()):
                    chosen.add(n << 32 | m if n < m else m << 32 | n)
            pairs = sorted(chosen)
        for pair in pairs:
            believed = counts.get(pair, 0) >> 16 > 0
            self._judge(pair, pair >> 32, pair & 0xFFFFFFFF, believed, believed, True)

    def oldest_stale(self, now: float) -> float:
        """How long the longest-stale pair now has been stale (0 if none)."""
        heap, bad = self._bad_since, self._bad
        while heap:
            since, pair = heap[0]
            if bad.get(pair) == since:
                return now - since
            heapq.heappop(heap)
        return 0.0

    def believed(self, a: int, b: int) -> bool:
        """Whether some transport between ``a`` and ``b`` is live at both ends: O(1)."""
        pair = a << 32 | b if a < b else b << 32 | a
        return self._counts.get(pair, 0) >> 16 > 0

    def up_pairs(self) -> list[tuple[int, int]]:
        """Pairs with at least one transport live at both ends."""
        return [(pair >> 32, pair & 0xFFFFFFFF)
                for pair, packed in self._counts.items() if packed >> 16]

    def stale_pairs(self) -> list[tuple[int, int]]:
        """Pairs live at some end whose path is not open (see ``links_stale``)."""
        return sorted((pair >> 32, pair & 0xFFFFFFFF) for pair in self._bad)

    def components(self, nodes: list[int]) -> int:
        """Connected components of ``nodes`` over usable links (believed, path open).

        A breadth-first walk whose frontier grows by set differences, so the work
        per visited node is one C-level pass over its neighbours.
        """
        within = set(nodes)
        adjacent = self._adjacent
        bad_adjacent = self._bad_adjacent if self.bad_believed else None
        unvisited = set(within)
        count = 0
        while unvisited:
            start = unvisited.pop()
            count += 1
            frontier = [start]
            while frontier:
                node = frontier.pop()
                fresh = adjacent.get(node)
                if not fresh:
                    continue
                fresh = fresh & unvisited
                if fresh and bad_adjacent is not None:
                    cut = bad_adjacent.get(node)
                    if cut:
                        fresh -= cut
                if fresh:
                    unvisited -= fresh
                    frontier.extend(fresh)
        return count
