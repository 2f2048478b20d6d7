"""Run a scenario's timeline on a real testnet (local processes, docker, swarm).

The simulator runs in virtual time; a testnet runs in wall time. This module
turns the scenario into a :class:`~jamsim.testnet.base.TestnetSpec` and a list of
timed :data:`~jamsim.testnet.base.TimelineOp`, applies each op when its time comes,
samples connectivity from the nodes' own status replies every
``sample_interval``, and hands back the same two tables the simulator produces:
telemetry event rows (from the JIP-3 collector) and connectivity samples.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from jamsim.core.errors import UsageError
from jamsim.core.types import NodeLifecycle
from jamsim.links import LinkSpec
from jamsim.scenario.resolve import assign_regions, latency_spec, loss_spec, resolve_groups
from jamsim.scenario.schema import GilbertElliott, LatencyDistribution, Scenario
from jamsim.scenario.timeline import churn_schedule, timeline_rng
from jamsim.telemetry.records import ConnectivitySample, EventRecord
from jamsim.testnet.base import (
    Heal,
    Isolate,
    Kill,
    Partition,
    Pause,
    ProcessFault,
    Restart,
    SetLink,
    TestnetSpec,
    TimelineOp,
    Unpause,
)
from jamsim.testnet.traffic import TrafficReceipts, write_delivery_tables
from jamsim.testnet.truth import PathRules, harness_sample
from jamsim.traffic.config import TrafficConfig
from jamsim.traffic.schedule import SlotSchedule

__all__ = ["run_on_testnet", "testnet_plan"]


def _conditions(latency: float | LatencyDistribution, loss: float | GilbertElliott,
                bandwidth: float | None) -> LinkSpec:
    """The scenario's link as real-node impairment: the very LinkSpec the simulator
    draws from (same median, deviation, distribution, loss process, bandwidth)."""
    return LinkSpec(latency=latency_spec(latency), loss=loss_spec(loss), bandwidth_bps=bandwidth)


EPHEMERAL_PORTS_START = 32768
"""Linux's default first ephemeral port: a testnet's ports stay below it, where no
outgoing connection of the harness (or of anything else) takes its source port."""
_PORT_LOCK_FILE = "jamsim-ports.lock"
_reserved: list[tuple[int, int]] = []  # port ranges [start, end) this process reserved
_lock_fd: list[int] = []  # the open lock file (its byte-range locks die with the process)


def free_base_port(count: int, control_offset: int = 0, first: int = 20000) -> int:
    """A base port where ``count`` UDP node ports and their TCP control ports
    (the same number, ``+control_offset``) and the telemetry collector's TCP port
    (``base + count``) are all free now and reserved for this process.

    Free now is not enough: two harnesses started together (parallel test
    runs, scenario runs side by side) used to probe the same range, both found
    it free, and the nodes started second could not bind. So the range is also
    locked in a host-wide lock file (a byte-range lock per port, released when
    this process exits): other processes skip it, and this process hands it
    out again only once every other range is taken. Everything stays below the
    ephemeral range (:data:`EPHEMERAL_PORTS_START`).
    """
    import socket

    length = count + 1 + control_offset  # every port the range touches
    step = max(64, count + 1)
    bases = range(first, EPHEMERAL_PORTS_START - length + 1, step)
    for allow_own in (False, True):
        for base in bases:
            if allow_own != _overlaps_own(base, length):
                continue
            sockets: list[socket.socket] = []
            try:
                for port in range(base, base + count):
                    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sockets.append(udp)
                    udp.bind(("127.0.0.1", port))
                for port in range(base + control_offset, base + control_offset + count + 1):
                    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sockets.append(tcp)
                    tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                for sock in sockets:
                    sock.close()
            if _reserve(base, length):
                return base
    raise UsageError(f"no free range of {count} loopback ports found")


def _overlaps_own(base: int, length: int) -> bool:
    return any(base < end and start < base + length for start, end in _reserved)


def _reserve(base: int, length: int) -> bool:
    """Lock ports ``[base, base + length)`` for this process; False if another holds one.

    Without a usable lock file (another user's, a read-only temp dir) every
    range counts as reservable: the bind probe alone decides, as before.
    """
    import fcntl
    import os
    import tempfile

    if not _lock_fd:
        try:
            path = os.path.join(tempfile.gettempdir(), _PORT_LOCK_FILE)
            _lock_fd.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
        except OSError:
            return True
    try:
        fcntl.lockf(_lock_fd[0], fcntl.LOCK_EX | fcntl.LOCK_NB, length, base)
    except OSError:
        return False
    if (base, base + length) not in _reserved:
        _reserved.append((base, base + length))
    return True


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


def run_on_testnet(
    scenario: Scenario, backend_name: str, run_dir: Path,
    on_sample: Callable[[ConnectivitySample], None],
    progress: Callable[[float], None] | None = None,
    traffic: TrafficConfig | None = None,
    tables_dir: Path | None = None,
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
    testnet is up.

    With ``traffic`` the nodes send JAM slot traffic (slot 0 starts when the
    testnet comes up) and their receipts, gathered from the same status replies
    as the samples, are written to ``blocks.parquet`` / ``assurances.parquet`` in
    ``tables_dir`` (default ``run_dir``), also when the run is interrupted.
    Samples count usable and stale links from the impairment rules the harness
    installed (:mod:`jamsim.testnet.truth`). The backend is always torn down,
    also on Ctrl-C or an error."""
    from jamsim.testnet.commands import make_backend

    base_port = free_base_port(scenario.validators.count) if backend_name == "local" \
        else 40000
    spec, ops = testnet_plan(scenario, run_dir, base_port)
    count = scenario.validators.count
    receipts: TrafficReceipts | None = None
    rules = PathRules(count)
    stale_since: dict[tuple[int, int], float] = {}
    expected = count * (count - 1) // 2
    backend = make_backend(backend_name)
    backend.build()
    kept: list[EventRecord] = []
    sink = on_record if on_record is not None else kept.append

    def drain() -> None:
        # rows since the last drain, forgotten by the collector: bounded memory
        for row in backend.take_records():
            sink(row)

    with backend:
        start = time.monotonic()
        if traffic is not None:
            spec = dataclasses.replace(spec, traffic=traffic, traffic_start=time.time())
            receipts = TrafficReceipts(SlotSchedule(count, scenario.seed, traffic),
                                       spec.traffic_start or 0.0)
        backend.up(spec)
        if on_nodes is not None:
            on_nodes(_nodes_of(backend))
        reached = 0.0
        try:
            next_sample = 0.0
            pending = list(ops)
            while True:
                now = reached = time.monotonic() - start
                while pending and pending[0][0] <= now:
                    op = pending.pop(0)[1]
                    backend.apply(op)
                    rules.apply(op)
                    for row in lifecycle_rows(op, backend, now):
                        sink(row)
                if now >= next_sample:
                    statuses = backend.status()
                    on_sample(harness_sample(now, statuses, expected, rules, stale_since))
                    if receipts is not None:
                        for index, status in statuses.items():
                            receipts.update(index, status.traffic)
                    next_sample += scenario.sample_interval
                    drain()
                    if progress is not None:
                        progress(now)
                if now >= scenario.duration:
                    if receipts is not None:
                        for index, status in backend.status().items():
                            receipts.update(index, status.traffic)
                    reached = scenario.duration
                    break
                wake = min(next_sample, pending[0][0] if pending else next_sample,
                           scenario.duration)
                time.sleep(max(0.0, min(wake - (time.monotonic() - start), 0.5)))
        finally:
            drain()
            if receipts is not None:
                write_delivery_tables(receipts, tables_dir or run_dir, reached)
    return sorted(kept, key=lambda r: (r.time, r.node, r.event_id))


def _nodes_of(backend: object) -> list[tuple[int, bytes, str, int]]:
    """The testnet's validators ``(index, key, region, epoch)`` from the keys file
    the harness wrote for it.

    Uses the backend's own validator set where it holds one; otherwise reads the
    keys file directly rather than through :func:`jamsim.testnet.keys.load_keys`:
    a swarm keys file names its peers by service DNS names (``tasks.v3``) that only
    resolve inside the overlay network, and the table needs no addresses."""
    vset = getattr(backend, "validator_set", None)
    if vset is not None:
        return [(info.index, info.key, info.region, 0) for info in vset]
    keys_file = getattr(backend, "keys_file", None)
    if keys_file is None:
        return []
    document = json.loads(Path(keys_file).read_text())
    return [(int(entry["index"]), bytes.fromhex(entry["public_key"]),
             str(entry.get("region", "default")), 0)
            for entry in document["validators"]]


_LIFECYCLE: dict[type, NodeLifecycle] = {
    Kill: NodeLifecycle.NODE_CRASHED, Pause: NodeLifecycle.NODE_PAUSED,
    Unpause: NodeLifecycle.NODE_RESUMED, Restart: NodeLifecycle.NODE_RESTARTED,
}


def lifecycle_rows(op: TimelineOp, backend: object, harness_now: float) -> list[EventRecord]:
    """The event row the harness writes for a process op it just applied.

    A killed process cannot report its own death, so the harness writes what it
    did (:class:`jamsim.core.types.NodeLifecycle`), as the simulator does, on the
    clock of the nodes' telemetry rows (the backend's ``telemetry_time``; the
    harness clock where a backend has none), so the analysis closes the node's
    sessions at the kill."""
    if not isinstance(op, ProcessFault):
        return []
    kind = _LIFECYCLE[type(op)]
    clock = getattr(backend, "telemetry_time", None)
    at = clock() if clock is not None else None
    return [EventRecord(time=harness_now if at is None else at, node=op.node, peer=-1,
                        event=kind.label, kind=int(kind))]
