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
import math
from collections import defaultdict
from collections.abc import Callable, Iterable

__all__ = ["LinkCounters"]


class LinkCounters:
    """Per unordered node pair: how many transports are live at both / one end,
    and whether the path under the pair is open (see the module docstring)."""

    __slots__ = ("_adjacent", "_bad", "_bad_adjacent", "_bad_since", "_counts",
                 "all_open", "bad_believed", "clock", "duplicates", "grid_bad_believed",
                 "grid_believed", "grid_size", "grid_width", "half_open", "links_believed",
                 "path_ok")

    def __init__(self, path_ok: Callable[[int, int], bool] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        # Pair (low << 32 | high: an int key hashes and compares without building a
        # tuple) -> (transports live at both ends) << 16 | (live at one end): one
        # lookup per change; a bootstrap of 1023 validators makes a million changes.
        self._counts: dict[int, int] = {}
        # Node -> nodes it has a link with: components() walks these with C-level set
        # operations; a Python union-find over 522,753 pairs took ~0.4 s per sample.
        self._adjacent: defaultdict[int, set[int]] = defaultdict(set)
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
        self.grid_size = 0
        self.grid_width = 0
        """JAMNP-S grid of nodes ``0..grid_size-1``, ``grid_width`` per row (0: none):
        pairs sharing a row or a column are grid neighbours (``set_grid``)."""
        self.grid_believed = 0
        self.grid_bad_believed = 0

    def set_grid(self, size: int) -> None:
        """Count grid-neighbour links among nodes ``0..size-1`` (before any change)."""
        self.grid_size = size
        self.grid_width = max(1, math.isqrt(size)) if size > 0 else 0

    def _is_grid(self, a: int, b: int) -> bool:
        w = self.grid_width
        size = self.grid_size
        return w > 0 and a < size and b < size and (a // w == b // w or a % w == b % w)

    @property
    def grid_usable(self) -> int:
        """Usable links between grid neighbours."""
        return self.grid_believed - self.grid_bad_believed

    @property
    def grid_pairs(self) -> int:
        """How many grid-neighbour pairs the grid has."""
        w, size = self.grid_width, self.grid_size
        if w == 0:
            return 0
        rows, last = divmod(size, w)
        in_rows = rows * (w * (w - 1) // 2) + last * (last - 1) // 2
        columns = [rows + (1 if c < last else 0) for c in range(w)]
        return in_rows + sum(h * (h - 1) // 2 for h in columns)

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
                if self.grid_width and self._is_grid(a, b):
                    self.grid_believed += 1
            elif new_both == 0:
                self.links_believed -= 1
                self._adjacent[a].discard(b)
                self._adjacent[b].discard(a)
                if self.grid_width and self._is_grid(a, b):
                    self.grid_believed -= 1
            self.duplicates += (new_both >= 2) - (both >= 2)
        was_half = both == 0 and half > 0
        now_half = new_both == 0 and new_half > 0
        if was_half != now_half:
            self.half_open += now_half - was_half
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
        grid = self.grid_width > 0 and self._is_grid(a, b)
        if was_bad and was_believed:
            self.bad_believed -= 1
            self.grid_bad_believed -= grid
            self._bad_adjacent[a].discard(b)
            self._bad_adjacent[b].discard(a)
        if bad and believed:
            self.bad_believed += 1
            self.grid_bad_believed += grid
            self._bad_adjacent[a].add(b)
            self._bad_adjacent[b].add(a)
        if bad and not was_bad:
            clock = self.clock
            since = clock() if clock is not None else 0.0
            bad_set[pair] = since
            heapq.heappush(self._bad_since, (since, pair))
        elif was_bad and not bad:
            del bad_set[pair]

    def reassess(self, pairs: Iterable[tuple[int, int]] | None, all_open: bool) -> None:
        """The topology changed for ``pairs`` (``None``: any pair): re-judge them.

        The caller names every pair with a live end that the change can affect
        (for one node's crash or pause: the pairs of its unfinished transports).
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
                self.grid_bad_believed = 0
            return
        counts = self._counts
        keys: Iterable[int]
        if pairs is None:
            keys = list(counts)
        else:
            keys = sorted({a << 32 | b if a < b else b << 32 | a for a, b in pairs})
        for pair in keys:
            packed = counts.get(pair, 0)
            believed = packed >> 16 > 0
            self._judge(pair, pair >> 32, pair & 0xFFFFFFFF, believed, believed, packed != 0)

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
