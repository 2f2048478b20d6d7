"""``quic``-fidelity slot-traffic benchmark: V validators, JAM traffic, prints one JSON.

Every slot the author's block (default 100 kB) crosses the grid on real UP 0 /
CE 128 streams and every validator sends a CE 141 assurance to every other one,
all through aioquic in virtual time (jamsim/sim/quic/slot_traffic.py). Setup: 50 ms
one-way latency, no loss, jamnp-s policy, telemetry records off, the default
traffic config (6 s slots, 2 s assurance lead) with ``first_slot=1``.

``wall_s`` covers bootstrap plus traffic for ``--duration`` simulated seconds;
``cpu_s`` is the process CPU time (what to compare on a shared machine);
``yardstick_s`` (benchmarks/yardstick.py) the machine's speed before and after.
Delivery figures come from the batches the run hands its sinks: blocks that
reached a node within their slot, propagation p50/p99 from the slot start, and
assurances at the author before the slot started.

Target (issue: slot traffic on real carriers): V=32, 120 s, <= 30 s wall.

Usage: ``python benchmarks/bench_quic_traffic.py [--validators 32] [--duration 120]``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from typing import Any

import numpy as np
from yardstick import yardstick_s  # benchmarks/ is on sys.path when run as a script

from jamsim import native_status
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.quic.slot_traffic import QuicSlotTraffic
from jamsim.sim.simulation import Simulation
from jamsim.traffic.config import TrafficConfig
from jamsim.traffic.records import AssuranceBatch, BlockBatch


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(v: int, duration: float, block_size: int) -> dict[str, Any]:
    sim = Simulation(ValidatorSet.dev(v, seed=1),
                     NetworkConfig(default=LinkSpec(LatencySpec(0.05))),
                     seed=1, on_event=None, sample_interval=1.0, fidelity="quic",
                     identities=DevKeyring([1], v))
    blocks: list[BlockBatch] = []
    assurances: list[AssuranceBatch] = []
    config = TrafficConfig(block_size=block_size, first_slot=1)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    traffic = QuicSlotTraffic(sim, config, 1, duration, blocks.append, assurances.append)
    sim.run(duration)
    traffic.finish()
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    delays = np.concatenate([b.received_at - traffic.schedule.slot_start(b.slot)
                             for b in blocks]) if blocks else np.array([])
    within = delays[np.isfinite(delays) & (delays < config.slot)]
    on_time = sum(int(np.sum(a.delivered_at < traffic.schedule.slot_start(a.slot)))
                  for a in assurances)
    fabric = sim.quic
    assert fabric is not None
    return {
        "case": "quic_traffic", "engine": native_status().state, "validators": v,
        "simulated_s": duration, "slots": len(blocks), "block_size": block_size,
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "time_to_full_mesh_s": sim.time_to_full_mesh(),
        "blocks_reached_within_slot": round(len(within) / max(1, len(delays)), 4),
        "block_propagation_p50_s": round(float(np.percentile(within, 50)), 4)
        if len(within) else math.nan,
        "block_propagation_p99_s": round(float(np.percentile(within, 99)), 4)
        if len(within) else math.nan,
        "assurances_on_time": round(on_time / max(1, v * len(assurances)), 4),
        "stream_messages_sent": traffic.messages_sent,
        "fetch_failures": traffic.fetch_failures,
        "datagrams": fabric.datagrams,
        "datagram_mb": round(fabric.datagram_bytes / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=32)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--block-size", type=int, default=100_000)
    args = parser.parse_args()
    before = yardstick_s()
    result = run(args.validators, args.duration, args.block_size)
    result["yardstick_s"] = {"before": before, "after": yardstick_s()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
