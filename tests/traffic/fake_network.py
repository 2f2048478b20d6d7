"""A hand-made DeliveryNetwork for exact overlay tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeNetwork:
    """Uniform latency ``lat`` with overrides; cut pairs, dead nodes, optional bandwidth."""

    lat: float = 0.01
    bw: float | None = None
    dead: set[int] = field(default_factory=set)
    cut: set[frozenset[int]] = field(default_factory=set)
    latencies: dict[tuple[int, int], float] = field(default_factory=dict)
    bandwidths: dict[tuple[int, int], float] = field(default_factory=dict)
    usable_calls: int = 0

    def alive(self, node: int) -> bool:
        return node not in self.dead

    def link_usable(self, a: int, b: int) -> bool:
        self.usable_calls += 1
        return a not in self.dead and b not in self.dead and frozenset((a, b)) not in self.cut

    def latency(self, a: int, b: int) -> float:
        return self.latencies.get((a, b), self.lat)

    def bandwidth_bps(self, a: int, b: int) -> float | None:
        return self.bandwidths.get((a, b), self.bw)

    def partition(self, *groups: set[int]) -> None:
        for i, g in enumerate(groups):
            for h in groups[i + 1:]:
                self.cut |= {frozenset((a, b)) for a in g for b in h}
