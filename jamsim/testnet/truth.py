"""What the testnet harness knows about the paths: the impairment rules it installed.

Nodes report what they *believe* (their live connections). The harness knows
more: which partitions and isolations it told the nodes' impairment layers to
apply, and which processes it killed or paused. :class:`PathRules` replays the
timeline ops the harness applied, with the same meaning the backends give them
(:meth:`jamsim.testnet.local.LocalProcessBackend.apply`), and answers whether a
datagram from ``a`` to ``b`` would pass now. :func:`harness_sample` then counts
links the way the simulator does (``links_usable`` / ``links_believed`` /
``links_stale``): a link is usable when both nodes believe in it *and* the rules
let packets through both ways between two running processes.

Link conditions (latency, jitter, loss below 100%) never cut a path: they delay
or drop some datagrams, as the simulator's lossy links do.
"""

from __future__ import annotations

from collections.abc import Mapping

from jamsim.telemetry.records import ConnectivitySample
from jamsim.testnet.base import (
    Heal,
    Isolate,
    NodeStatus,
    Partition,
    ProcessFault,
    SetLink,
    TimelineOp,
)

__all__ = ["PathRules", "harness_sample"]


class PathRules:
    """Directed blocks between nodes, as installed by the harness's timeline ops."""

    def __init__(self, validators: int) -> None:
        self.validators = validators
        self._blocked: set[tuple[int, int]] = set()  # (src, dst): datagrams dropped
        self._isolated: set[int] = set()

    def apply(self, op: TimelineOp) -> None:
        """Record ``op`` (ops that change no path are ignored)."""
        everyone = range(self.validators)
        if isinstance(op, Partition):
            if op.one_way:  # traffic from the first group to everyone else is dropped
                first = set(op.groups[0])
                self._blocked |= {(a, b) for a in first for b in everyone if b not in first}
                return
            for group in op.groups:
                members = set(group)
                for a in members:
                    for b in everyone:
                        if b not in members:
                            self._blocked |= {(a, b), (b, a)}
        elif isinstance(op, Isolate):
            self._isolated.add(op.node)
        elif isinstance(op, Heal):  # blocks go, link conditions stay (as in the nodes)
            self._blocked.clear()
            self._isolated.clear()
        elif isinstance(op, SetLink | ProcessFault):
            return  # no path change; process state comes from the node statuses

    def passes(self, src: int, dst: int) -> bool:
        """Would a datagram from ``src`` to ``dst`` get through the rules now?"""
        if src in self._isolated or dst in self._isolated:
            return False
        return (src, dst) not in self._blocked

    def open(self, a: int, b: int) -> bool:
        """Both directions pass."""
        return self.passes(a, b) and self.passes(b, a)


def harness_sample(now: float, statuses: Mapping[int, NodeStatus], expected: int,
                   rules: PathRules,
                   stale_since: dict[tuple[int, int], float] | None = None,
                   ) -> ConnectivitySample:
    """A connectivity sample from node statuses and the harness's rules.

    ``links_believed``: both ends report the other as connected. ``links_usable``:
    believed, both processes running and the path open both ways. ``links_stale``:
    pairs where at least one end believes in a connection but the path is cut or
    the peer is not running. ``half_open``: pairs only one end reports (stale ones
    included, as in the simulator). Components are over usable links.
    ``stale_since`` (kept by the caller across samples) remembers when each stale
    pair was first seen stale, for ``longest_stale``.
    """
    up = {i for i, s in statuses.items() if s.running}
    believes: set[tuple[int, int]] = set()
    for i, status in statuses.items():
        if not status.running:
            continue  # a stopped process believes nothing we can ask about
        for j in status.connected:
            if j != i:
                believes.add((i, j))
    pairs = {(min(a, b), max(a, b)) for a, b in believes}
    usable = believed = stale = half = 0
    parent = {i: i for i in up}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    stale_now: set[tuple[int, int]] = set()
    for a, b in pairs:
        both = (a, b) in believes and (b, a) in believes
        path = a in up and b in up and rules.open(a, b)
        if both:
            believed += 1
        else:
            half += 1
        if both and path:
            usable += 1
            parent[find(a)] = find(b)
        elif not path:
            stale += 1
            stale_now.add((a, b))
    longest = 0.0
    if stale_since is not None:
        for pair in list(stale_since):
            if pair not in stale_now:
                del stale_since[pair]
        for pair in stale_now:
            stale_since.setdefault(pair, now)
        longest = max((now - t for t in stale_since.values()), default=0.0)
    components = len({find(i) for i in up}) if up else 0
    return ConnectivitySample(time=now, links_usable=usable, links_believed=believed,
                              links_stale=stale, links_expected=expected, nodes_up=len(up),
                              half_open=half, components=components, longest_stale=longest)
