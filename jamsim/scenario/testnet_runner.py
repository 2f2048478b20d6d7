"""Run a scenario's timeline on a real testnet (local processes, docker, swarm).

The simulator runs in virtual time; a testnet runs in wall time. This module
turns the scenario into a :class:`~jamsim.testnet.base.TestnetSpec` and a list of
timed :data:`~jamsim.testnet.base.TimelineOp`, applies each op when its time comes,
samples connectivity from the nodes' own status replies every
``sample_interval``, and hands back the same two tables the simulator produces:
telemetry event rows (from the JIP-3 collector) and connectivity samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from jamsim.core.errors import UsageError
from jamsim.scenario.resolve import assign_regions, resolve_groups
from jamsim.scenario.schema import GilbertElliott, LatencyDistribution, Scenario
from jamsim.scenario.timeline import churn_schedule, timeline_rng
from jamsim.telemetry.records import ConnectivitySample, EventRecord
from jamsim.testnet.base import (
    Heal,
    Isolate,
    Kill,
    LinkConditions,
    NodeStatus,
    Partition,
    Pause,
    Restart,
    SetLink,
    TestnetSpec,
    TimelineOp,
    Unpause,
)

__all__ = ["run_on_testnet", "testnet_plan"]


def _conditions(latency: float | LatencyDistribution, loss: float | GilbertElliott,
                bandwidth: float | None) -> LinkConditions:
    """The scenario's link as real-node impairment: the same median, deviation and
    distribution the simulator draws from, the same loss process and bandwidth."""
    median, jitter, distribution = (latency.median, latency.jitter, latency.distribution) \
        if isinstance(latency, LatencyDistribution) else (latency, 0.0, "constant")
    if distribution == "constant":
        jitter, distribution = 0.0, "normal"
    if isinstance(loss, GilbertElliott):
        return LinkConditions(median, jitter, 0.0, (loss.p, loss.r, loss.bad_loss),
                              distribution, bandwidth)
    return LinkConditions(median, jitter, loss, None, distribution, bandwidth)


def free_base_port(count: int, control_offset: int = 0, first: int = 20000) -> int:
    """A base port where ``count`` UDP node ports and their TCP control ports
    (the same number, ``+control_offset``) are all free now, so concurrent runs
    don't collide. Starts below the kernel's ephemeral range (32768+)."""
    import socket

    for base in range(first, 40000, max(64, count)):
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(udp)
                udp.bind(("127.0.0.1", port))
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(tcp)
                tcp.bind(("127.0.0.1", port + control_offset))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise UsageError(f"no free range of {count} loopback ports found")


def testnet_plan(scenario: Scenario, run_dir: Path, base_port: int = 40000,
                 ) -> tuple[TestnetSpec, list[tuple[float, TimelineOp]]]:
    """The spec to start and the ops to apply, each with its time (seconds)."""
    count = scenario.validators.count
    regions = assign_regions(count, scenario.validators.regions)
    names = sorted(set(regions))
    network = scenario.network
    default = network.latency.get("default", 0.04)
    bandwidth = network.bandwidth
    links = {(a, b): _conditions(default, network.loss, bandwidth)
             for a in names for b in names}
    for key, pair_latency in network.latency.items():
        if key != "default":
            src, dst = key.split("-")
            links[(src, dst)] = _conditions(pair_latency, network.loss, bandwidth)
            if f"{dst}-{src}" not in network.latency:
                links[(dst, src)] = _conditions(pair_latency, network.loss, bandwidth)
    overrides = scenario.policy.overrides()
    spec = TestnetSpec(validators=count, seed=scenario.seed,
                       regions=dict(enumerate(regions)), policy=scenario.policy.preset,
                       policy_overrides=overrides, links=links, run_dir=run_dir,
                       name=scenario.name, base_port=base_port)
    rng = timeline_rng(scenario)
    ops: list[tuple[float, TimelineOp]] = []
    for entry in scenario.timeline:
        at = entry.at
        if entry.partition is not None:
            groups = tuple(tuple(resolve_groups(g, regions)) for g in entry.partition)
            ops.append((at, Partition(groups, entry.one_way)))
        elif entry.heal is not None:
            ops.append((at, Heal()))
        elif entry.churn is not None:
            for crash_at, restart_at, index in churn_schedule(entry, scenario, rng):
                ops += [(crash_at, Kill(index)), (restart_at, Restart(index))]
        elif entry.epoch is not None:
            raise UsageError("epoch rotation is simulation-only for now: real nodes take "
                             "their validator set from the keys file at start")
        elif entry.link is not None:
            a, b = entry.link.between
            latency = entry.link.latency if entry.link.latency is not None else default
            loss = entry.link.loss if entry.link.loss is not None else network.loss
            from_nodes = tuple(i for i, r in enumerate(regions) if r == a)
            to_nodes = tuple(i for i, r in enumerate(regions) if r == b)
            ops.append((at, SetLink(from_nodes, to_nodes,
                                    _conditions(latency, loss, bandwidth))))
        else:
            make: dict[str, Callable[[int], TimelineOp]] = {
                "isolate": Isolate, "kill": Kill, "pause": Pause, "resume": Unpause,
                "restart": Restart}
            for index in resolve_groups(getattr(entry, entry.action), regions):
                ops.append((at, make[entry.action](index)))
    ops.sort(key=lambda item: item[0])
    return spec, ops


def _sample(now: float, statuses: dict[int, NodeStatus], expected: int) -> ConnectivitySample:
    up = {i for i, s in statuses.items() if s.running}
    both = half = 0
    parent = {i: i for i in up}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in up:
        for j in statuses[i].connected:
            if j <= i and j in up and i in statuses[j].connected:
                continue  # counted from the smaller side
            if j in up and i in statuses[j].connected:
                both += 1
                parent[find(i)] = find(j)
            else:
                half += 1
    components = len({find(i) for i in up}) if up else 0
    # No ground truth of the paths here yet: every believed link counts as usable.
    return ConnectivitySample(time=now, links_usable=both, links_believed=both,
                              links_stale=0, links_expected=expected,
                              nodes_up=len(up), half_open=half, components=components)


def run_on_testnet(
    scenario: Scenario, backend_name: str, run_dir: Path,
    on_sample: Callable[[ConnectivitySample], None],
    progress: Callable[[float], None] | None = None,
    *,
    on_record: Callable[[EventRecord], None] | None = None,
    on_nodes: Callable[[list[tuple[int, bytes, str, int]]], None] | None = None,
) -> list[EventRecord]:
    """Start the testnet, play the timeline in wall time, stream telemetry rows.

    Rows the collector received are handed to ``on_record`` at every sample
    (and once more at the end, or when interrupted), in arrival order, so an
    interrupted run keeps what the nodes reported up to then. Without
    ``on_record`` they are returned at the end instead, sorted by time.
    ``on_nodes`` gets the validators ``(index, key, region, epoch)`` once the
    testnet is up. The backend is always torn down, also on Ctrl-C or an error."""
    from jamsim.testnet.commands import make_backend

    base_port = free_base_port(scenario.validators.count) if backend_name == "local" \
        else 40000
    spec, ops = testnet_plan(scenario, run_dir, base_port)
    count = scenario.validators.count
    expected = count * (count - 1) // 2
    backend = make_backend(backend_name)
    backend.build()
    kept: list[EventRecord] = []
    sink = on_record if on_record is not None else kept.append
    handed = 0

    def drain() -> None:
        # collect() is every row so far; hand on only the ones not seen yet
        nonlocal handed
        rows = backend.collect()
        for row in rows[handed:]:
            sink(row)
        handed = len(rows)

    with backend:
        start = time.monotonic()
        backend.up(spec)
        if on_nodes is not None:
            on_nodes(_nodes_of(backend))
        try:
            next_sample = 0.0
            pending = list(ops)
            while True:
                now = time.monotonic() - start
                while pending and pending[0][0] <= now:
                    backend.apply(pending.pop(0)[1])
                if now >= next_sample:
                    on_sample(_sample(now, backend.status(), expected))
                    next_sample += scenario.sample_interval
                    drain()
                    if progress is not None:
                        progress(now)
                if now >= scenario.duration:
                    break
                wake = min(next_sample, pending[0][0] if pending else next_sample,
                           scenario.duration)
                time.sleep(max(0.0, min(wake - (time.monotonic() - start), 0.5)))
        finally:
            drain()
    return sorted(kept, key=lambda r: (r.time, r.node, r.event_id))


def _nodes_of(backend: object) -> list[tuple[int, bytes, str, int]]:
    """The testnet's validators from the keys file it started with."""
    from jamsim.testnet.keys import load_keys

    keys_file = getattr(backend, "keys_file", None)
    if keys_file is None:
        return []
    _, vset, _ = load_keys(Path(keys_file))
    return [(info.index, info.key, info.region, 0) for info in vset]
