"""A simulated datagram network in SimPy virtual time.

Nodes carry a region tag; every directed region pair has a :class:`LinkSpec`
(one-way latency distribution, loss process, bandwidth). On top of links the network
applies faults that scenarios schedule: partitions (symmetric or one-way), isolating
one node, healing, node crash (state lost), pause (process frozen, state kept) and
restart, and link changes mid-run.

Why these semantics:

* **Partitions act at send time.** A packet already in flight when a partition
  starts still arrives, like a packet already past the cut router. Nodes not listed
  in any partition group are unaffected by it (they reach everyone).
* **Crash** drops everything addressed to the node from then on, including packets
  already in flight, because the process that owned the socket is gone.
* **Pause** (SIGSTOP) keeps the socket: the kernel keeps queueing datagrams in the
  receive buffer until it is full and drops the rest. The buffer holds
  ``NetworkConfig.pause_buffer_packets`` packets (Linux' default 208 KiB receive
  buffer holds ~170 full-size 1200-byte QUIC packets). Queued packets are handed
  over, in arrival order, when the node resumes. A paused node sends nothing.
* **Bandwidth** is a serialisation delay ``size * 8 / bandwidth_bps`` on each
  directed node pair, with a FIFO queue: a burst of packets on one path spreads out.

Randomness comes from one ``random.Random(seed)`` consumed in event order; because
the simulation is single-threaded and SimPy orders simultaneous events by insertion,
the same seed gives identical results.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import simpy

from jamsim.core.errors import UsageError

__all__ = [
    "DEFAULT_REGION",
    "CalendarEnvironment",
    "LatencySpec",
    "LinkSpec",
    "LossSpec",
    "Network",
    "NetworkConfig",
    "NodeState",
]

DEFAULT_REGION = "default"

Distribution = Literal["constant", "normal", "lognormal"]
LossModel = Literal["none", "bernoulli", "gilbert_elliott"]


@dataclass(frozen=True, slots=True)
class LatencySpec:
    """One-way latency of a directed link, in seconds.

    ``distribution``: ``constant`` (always ``mean``), ``normal`` (``mean`` +-
    ``jitter`` standard deviation, truncated at ``minimum``) or ``lognormal``
    (heavy right tail with the given ``mean`` and standard deviation ``jitter``, as
    measured WAN latencies look). Samples never go below ``minimum``. Each packet
    samples independently, so jitter can reorder packets, as real jitter does.
    """

    mean: float = 0.05
    jitter: float = 0.0
    distribution: Distribution = "constant"
    minimum: float = 0.0

    def __post_init__(self) -> None:
        if self.mean < 0 or self.jitter < 0 or self.minimum < 0:
            raise UsageError("latency mean, jitter and minimum must be >= 0")
        if self.distribution not in ("constant", "normal", "lognormal"):
            raise UsageError(
                f"unknown latency distribution {self.distribution!r}; "
                "choose constant, normal or lognormal"
            )

    @property
    def constant_delay(self) -> float | None:
        """The delay every packet gets, or ``None`` when each one draws its own."""
        if self.distribution == "constant" or self.jitter == 0:
            return max(self.minimum, self.mean)
        return None

    def sample(self, rng: random.Random) -> float:
        """One latency draw."""
        constant = self.constant_delay
        if constant is not None:
            return constant
        if self.distribution == "normal":
            return max(self.minimum, rng.gauss(self.mean, self.jitter))
        if self.mean == 0:
            return self.minimum
        sigma2 = math.log1p((self.jitter / self.mean) ** 2)
        mu = math.log(self.mean) - sigma2 / 2
        return max(self.minimum, rng.lognormvariate(mu, math.sqrt(sigma2)))


@dataclass(frozen=True, slots=True)
class LossSpec:
    """Packet loss on a directed link.

    ``bernoulli``: each packet is lost independently with probability ``rate``.
    ``gilbert_elliott``: a two-state Markov chain per directed node pair, stepped
    once per packet: from *good* it enters *bad* with ``p_good_to_bad``, from *bad*
    it returns with ``p_bad_to_good``; a packet is lost with ``loss_good`` /
    ``loss_bad`` in the respective state. Mean burst length is
    ``1 / p_bad_to_good`` packets. This is what makes a handshake's retransmission
    fail too, which independent loss understates.
    """

    model: LossModel = "none"
    rate: float = 0.0
    p_good_to_bad: float = 0.0
    p_bad_to_good: float = 1.0
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        if self.model not in ("none", "bernoulli", "gilbert_elliott"):
            raise UsageError(
                f"unknown loss model {self.model!r}; choose none, bernoulli or gilbert_elliott"
            )
        for name in ("rate", "p_good_to_bad", "p_bad_to_good", "loss_good", "loss_bad"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"loss {name} must be in [0, 1], got {value}")

    @classmethod
    def bernoulli(cls, rate: float) -> LossSpec:
        return cls(model="bernoulli", rate=rate)

    @classmethod
    def bursts(cls, p_good_to_bad: float, p_bad_to_good: float, loss_bad: float = 1.0,
               loss_good: float = 0.0) -> LossSpec:
        return cls(model="gilbert_elliott", p_good_to_bad=p_good_to_bad,
                   p_bad_to_good=p_bad_to_good, loss_bad=loss_bad, loss_good=loss_good)

    @property
    def mean_loss(self) -> float:
        """Long-run fraction of packets lost (for reports and sanity checks)."""
        if self.model == "bernoulli":
            return self.rate
        if self.model == "gilbert_elliott":
            total = self.p_good_to_bad + self.p_bad_to_good
            bad = self.p_good_to_bad / total if total else 0.0
            return bad * self.loss_bad + (1 - bad) * self.loss_good
        return 0.0


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Everything about one directed region-to-region link.

    ``bandwidth_bps`` is bits per second per directed node pair (``None`` =
    unlimited: no serialisation delay).
    """

    latency: LatencySpec = field(default_factory=LatencySpec)
    loss: LossSpec = field(default_factory=LossSpec)
    bandwidth_bps: float | None = None

    def __post_init__(self) -> None:
        if self.bandwidth_bps is not None and self.bandwidth_bps <= 0:
            raise UsageError("bandwidth_bps must be > 0 or None")


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """The whole network: default link, per-region-pair overrides, node regions.

    ``links`` maps ``(src_region, dst_region)`` to a link. A pair given in one
    direction only applies to both directions (symmetric); give both ``(a, b)`` and
    ``(b, a)`` for an asymmetric link. ``regions`` overrides node regions by node
    index (otherwise the validator set's ``region`` is used). ``packet_size`` is the
    size in bytes the connection model assumes for its packets.
    """

    default: LinkSpec = field(default_factory=LinkSpec)
    links: Mapping[tuple[str, str], LinkSpec] = field(default_factory=dict)
    regions: Mapping[int, str] = field(default_factory=dict)
    packet_size: int = 1200
    pause_buffer_packets: int = 170

    def __post_init__(self) -> None:
        if self.packet_size <= 0:
            raise UsageError("packet_size must be > 0")
        if self.pause_buffer_packets < 0:
            raise UsageError("pause_buffer_packets must be >= 0")

    def link(self, src_region: str, dst_region: str) -> LinkSpec:
        """The link used from ``src_region`` to ``dst_region``."""
        spec = self.links.get((src_region, dst_region))
        if spec is None:
            spec = self.links.get((dst_region, src_region))
        return spec if spec is not None else self.default


class NodeState:
    """Lifecycle state of a simulated node (plain constants: compared in hot paths)."""

    UP: Final = "up"
    PAUSED: Final = "paused"
    CRASHED: Final = "crashed"


Deliver = Callable[[], None]


class _Route:
    """A resolved region-pair link with what ``send`` needs precomputed."""

    __slots__ = ("bandwidth_bps", "delay", "link", "lossy")

    def __init__(self, link: LinkSpec) -> None:
        self.link = link
        self.delay = link.latency.constant_delay
        """The constant one-way delay, or ``None`` when each packet samples one."""
        self.lossy = link.loss.model != "none"
        self.bandwidth_bps = link.bandwidth_bps


class CalendarEnvironment(simpy.Environment):
    """A SimPy environment whose clock a :class:`Network` may move forward itself.

    The network keeps its deliveries and timers in its own calendar (a heap of
    instants, each with a list of callbacks) and has SimPy wake it for the
    earliest. When that instant is done and the calendar's next one comes before
    anything in SimPy's own queue, nothing else can happen in between, so the
    network advances the clock and goes on, instead of paying a SimPy event per
    instant. After a partition heals, retries and handshakes land on ~1 million
    distinct instants at V=1023; SimPy's per-event overhead was a third of it.
    """

    now: float = 0.0
    """The clock as a plain attribute: SimPy's ``now`` is a property, and the
    simulator reads the clock a few times per packet (millions of reads at V=1023).
    SimPy itself reads and writes ``_now``, which mirrors it below."""

    @property
    def _now(self) -> float:
        return self.now

    @_now.setter
    def _now(self, value: float) -> None:
        self.now = value

    def advance_to(self, when: float) -> None:
        """Move the clock to ``when``; only valid if ``when < self.peek()``."""
        self.now = when


_Entry = Callable[[], None] | tuple[int, Deliver, Deliver | None]
"""A calendar entry: a callback, or a packet arrival ``(dst, deliver, on_drop)``."""


class Network:
    """Delivers packets between nodes in SimPy virtual time, applying faults.

    ``send(src, dst, deliver)`` either drops the packet (returns ``False``) or
    schedules ``deliver()`` at arrival time. ``on_topology_change`` listeners are
    called after every partition/heal/crash/pause/resume/restart so a transport
    model can start or cancel idle-timeout checks.
    """

    def __init__(self, env: simpy.Environment, config: NetworkConfig, seed: int) -> None:
        self.env = env
        self.config = config
        self.rng = random.Random(seed)
        self._region: dict[int, str] = {}
        # Regions as small ints, and per source region a row of resolved routes by
        # destination region: send() indexes two lists instead of building and
        # hashing a (region, region) tuple per packet.
        self._region_index: dict[str, int] = {}
        self._region_id: dict[int, int] = {}
        self._route_rows: list[list[_Route | None]] = []
        self._state: dict[int, str] = {}
        self._group: dict[int, int] = {}
        self._one_way = False
        self._links: dict[tuple[str, str], LinkSpec] = {}
        self._ge_bad: dict[tuple[int, int], bool] = {}
        self._busy_until: dict[tuple[int, int], float] = {}
        self._paused_queue: dict[int, deque[Deliver]] = {}
        # The calendar: distinct instants (heap) and what runs at each, in call order.
        # An entry is a callback, or a packet arrival as a (dst, deliver, on_drop)
        # tuple: three packets per handshake make a partial per packet add up.
        self._calendar: list[float] = []
        self._buckets: dict[float, list[_Entry]] = {}
        self._wakeups: set[float] = set()  # instants SimPy will wake the calendar at
        self._draining = False
        self._can_advance = isinstance(env, CalendarEnvironment)
        # Called with the nodes whose reachability changed, or None for "any pair".
        self.listeners: list[Callable[[frozenset[int] | None], None]] = []
        self.sent = 0
        self.lost = 0
        self.dropped_partition = 0
        self.dropped_down = 0

    # ------------------------------------------------------------------ nodes

    def add_node(self, node: int, region: str = DEFAULT_REGION) -> None:
        region = self.config.regions.get(node, region)
        self._region[node] = region
        if region not in self._region_index:
            self._region_index[region] = len(self._region_index)
            for row in self._route_rows:
                row.append(None)
            self._route_rows.append([None] * len(self._region_index))
        self._region_id[node] = self._region_index[region]
        self._state[node] = NodeState.UP

    def region(self, node: int) -> str:
        return self._region[node]

    def state(self, node: int) -> str:
        return self._state[node]

    def is_up(self, node: int) -> bool:
        return self._state.get(node) == NodeState.UP

    def nodes(self) -> list[int]:
        return list(self._state)

    # ------------------------------------------------------------------ links

    def link(self, src: int, dst: int) -> LinkSpec:
        return self._route(src, dst).link

    def _route(self, src: int, dst: int) -> _Route:
        row = self._route_rows[self._region_id[src]]
        route = row[self._region_id[dst]]
        if route is None:
            key = (self._region[src], self._region[dst])
            route = _Route(self._links.get(key) or self.config.link(*key))
            row[self._region_id[dst]] = route
        return route

    def set_link(self, src_region: str, dst_region: str, link: LinkSpec,
                 symmetric: bool = True) -> None:
        """Change a region pair's link from now on (packets in flight keep theirs)."""
        self._links[(src_region, dst_region)] = link
        if symmetric:
            self._links[(dst_region, src_region)] = link
        for row in self._route_rows:
            row[:] = [None] * len(row)

    # ------------------------------------------------------------------ faults

    def partition(self, groups: Sequence[Collection[int]], one_way: bool = False) -> None:
        """Cut traffic between ``groups`` (replacing any current partition).

        ``one_way=True`` blocks only packets from an earlier group to a later one
        (``groups[0] -> groups[1]``); the reverse direction still flows.
        """
        group: dict[int, int] = {}
        for gid, members in enumerate(groups):
            for node in members:
                if node in group:
                    raise UsageError(f"node {node} is in two partition groups")
                group[node] = gid
        self._group = group
        self._one_way = one_way
        self._notify()

    def isolate(self, node: int) -> None:
        """Cut ``node`` off from every other node, both directions."""
        others = [n for n in self._state if n != node]
        self.partition([[node], others])

    def heal(self) -> None:
        """Remove the current partition."""
        self._group = {}
        self._one_way = False
        self._notify()

    def crash(self, node: int) -> None:
        self._state[node] = NodeState.CRASHED
        self._paused_queue.pop(node, None)
        self._notify(frozenset((node,)))

    def pause(self, node: int) -> None:
        if self._state[node] == NodeState.UP:
            self._state[node] = NodeState.PAUSED
            self._paused_queue[node] = deque()
            self._notify(frozenset((node,)))

    def resume(self, node: int) -> list[Deliver]:
        """Unfreeze ``node``; returns the packets its socket buffered meanwhile."""
        if self._state[node] != NodeState.PAUSED:
            return []
        self._state[node] = NodeState.UP
        queued = list(self._paused_queue.pop(node, ()))
        self._notify(frozenset((node,)))
        return queued

    def restart(self, node: int) -> None:
        """Bring a crashed node back (fresh process; the caller rebuilds its state)."""
        self._state[node] = NodeState.UP
        self._notify(frozenset((node,)))

    @property
    def partitioned(self) -> bool:
        """Whether a partition (or isolation) is in force."""
        return bool(self._group)

    def _notify(self, nodes: frozenset[int] | None = None) -> None:
        """Tell listeners what changed: one node's state, or (None) the partition."""
        for listener in self.listeners:
            listener(nodes)

    # ------------------------------------------------------------------ reachability

    def path_open(self, src: int, dst: int) -> bool:
        """Would a packet sent now from ``src`` reach ``dst`` (ignoring random loss)?"""
        state = self._state
        if state.get(src) != NodeState.UP or state.get(dst) != NodeState.UP:
            return False
        return not self._cut(src, dst)

    def blackholed(self, src: int, dst: int) -> bool:
        """Is every packet ``src`` sends to ``dst`` now dropped, whatever the dice say?

        True while ``src`` is up and the pair is partitioned or ``dst`` is crashed:
        the state only a topology change (which notifies listeners) can end. A
        paused ``dst`` is not blackholed: its socket buffers packets.
        """
        state = self._state
        if state.get(src) != NodeState.UP:
            return False
        return state.get(dst) == NodeState.CRASHED or self._cut(src, dst)

    def _cut(self, src: int, dst: int) -> bool:
        group = self._group
        if not group:
            return False
        gs = group.get(src)
        gd = group.get(dst)
        if gs is None or gd is None or gs == gd:
            return False
        return gs < gd if self._one_way else True

    # ------------------------------------------------------------------ packets

    def send(self, src: int, dst: int, deliver: Deliver, size: int | None = None,
             on_drop: Deliver | None = None) -> bool:
        """Send one packet; ``deliver()`` runs at arrival unless it is lost.

        ``on_drop()`` runs instead when the packet is lost, at send time (loss,
        partition, sender down) or at arrival (receiver crashed, pause buffer full).
        The sender cannot observe it: transport models use it only to schedule the
        timers a real stack would have had running anyway (PTO, idle timeout).
        Returns whether the packet left the sender's link.
        """
        self.sent += 1
        if self._state.get(src) != NodeState.UP:
            self.dropped_down += 1
            if on_drop is not None:
                on_drop()
            return False
        if self._group and self._cut(src, dst):
            self.dropped_partition += 1
            if on_drop is not None:
                on_drop()
            return False
        region_id = self._region_id
        route = self._route_rows[region_id[src]][region_id[dst]] or self._route(src, dst)
        if route.lossy and self._lose(route.link.loss, src, dst):
            self.lost += 1
            if on_drop is not None:
                on_drop()
            return False
        now = self.env.now
        delay = route.delay
        if delay is None:
            delay = route.link.latency.sample(self.rng)
        if route.bandwidth_bps is not None:
            tx = (size or self.config.packet_size) * 8 / route.bandwidth_bps
            path = (src, dst)
            start = max(now, self._busy_until.get(path, now))
            self._busy_until[path] = start + tx
            delay += start + tx - now
        when = now + delay
        bucket = self._buckets.get(when)
        if bucket is not None:
            bucket.append((dst, deliver, on_drop))
        else:
            self._new_instant(when, (dst, deliver, on_drop))
        return True

    def _lose(self, loss: LossSpec, src: int, dst: int) -> bool:
        model = loss.model
        if model == "none":
            return False
        rng = self.rng
        if model == "bernoulli":
            return loss.rate > 0 and rng.random() < loss.rate
        key = (src, dst)
        bad = self._ge_bad.get(key, False)
        bad = rng.random() >= loss.p_bad_to_good if bad else rng.random() < loss.p_good_to_bad
        self._ge_bad[key] = bad
        return rng.random() < (loss.loss_bad if bad else loss.loss_good)

    def _arrive(self, dst: int, deliver: Deliver, on_drop: Deliver | None) -> None:
        state = self._state.get(dst)
        if state == NodeState.UP:
            deliver()
            return
        if state == NodeState.PAUSED:
            queue = self._paused_queue[dst]
            if len(queue) < self.config.pause_buffer_packets:
                queue.append(deliver)
                return
        self.dropped_down += 1
        if on_drop is not None:
            on_drop()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay`` seconds of virtual time (no network involved)."""
        self.call_at(self.env.now + max(0.0, delay), fn)

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual time ``when``; calls at one instant run in call order.

        Calls for the same instant share one calendar entry: with constant
        latencies a bootstrap sends hundreds of thousands of packets that arrive at
        the same few instants.
        """
        bucket = self._buckets.get(when)
        if bucket is not None:
            bucket.append(fn)
        else:
            self._new_instant(when, fn)

    def _new_instant(self, when: float, entry: _Entry) -> None:
        self._buckets[when] = [entry]
        heapq.heappush(self._calendar, when)
        if not self._draining and (not self._wakeups or when < min(self._wakeups)):
            self._wake_at(when)

    def _wake_at(self, when: float) -> None:
        if when in self._wakeups:
            return
        self._wakeups.add(when)
        event = self.env.timeout(max(0.0, when - self.env.now))
        event.callbacks.append(functools.partial(self._drain, when))

    def _drain(self, when: float, _event: object) -> None:
        """Run the calendar's due instants; see :class:`CalendarEnvironment`."""
        env = self.env
        self._wakeups.discard(when)
        # SimPy computes the wake-up as now + (when - now), which may miss ``when``
        # by a rounding error; the instant it was asked for is the one that is due.
        now = max(env.now, when)
        calendar, buckets = self._calendar, self._buckets
        state, up = self._state, NodeState.UP
        self._draining = True
        try:
            while True:
                while calendar and calendar[0] <= now:
                    for entry in buckets.pop(heapq.heappop(calendar)):
                        if entry.__class__ is tuple:  # a packet arrives
                            dst, deliver, on_drop = entry
                            if state.get(dst) is up:
                                deliver()
                            else:
                                self._arrive(dst, deliver, on_drop)
                        else:
                            entry()  # type: ignore[operator]
                if not (calendar and self._can_advance and calendar[0] < env.peek()):
                    break
                now = calendar[0]
                env.advance_to(now)  # type: ignore[attr-defined]
        finally:
            self._draining = False
        if calendar and (not self._wakeups or calendar[0] < min(self._wakeups)):
            self._wake_at(calendar[0])

    def members(self, nodes: Iterable[int]) -> list[int]:
        return [n for n in nodes if n in self._state]
