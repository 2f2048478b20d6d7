"""``quic``-fidelity simulator benchmark: full-mesh bootstrap; prints one JSON document.

Each size runs in its own subprocess so ``ru_maxrss`` (peak RSS) is per case.
Setup: 50 ms one-way latency, no loss, jamnp-s policy, telemetry records off
(``on_event=None``); the run stops at the first 50 ms sample with a full mesh.

Memory per connection pair is reported two ways:

* ``rss_per_pair_kb``: resident-set growth from just before the first dial to the
  full mesh, divided by V(V-1)/2. Includes everything a pair keeps alive: both
  aioquic connections, their TLS contexts and OpenSSL/AEAD state (invisible to
  tracemalloc), the JamConnection wrappers, the UP 0 streams, the manager entries.
``events_per_s`` counts datagrams (each one send, one arrival, one aioquic
``receive_datagram``), the unit of work of this fidelity.

* ``traced_per_pair_kb`` (only with ``--tracemalloc``, which slows the run ~2x):
  Python-heap growth per pair, plus the top allocation sites, to see what dominates.

Certificates and aioquic configurations are built once per validator and shared by
all its connections (``QuicFabric``); their cost is in the set-up, not per pair.

Usage: ``python benchmarks/bench_sim_quic.py [--sizes 6,32,100] [--tracemalloc]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from jamsim.identity import ValidatorSet
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic_keys import DevKeyring
from jamsim.sim.simulation import Simulation


def _rss_kb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap(v: int, trace: bool) -> dict[str, Any]:
    validators = ValidatorSet.dev(v, seed=1)
    setup_start = time.perf_counter()
    sim = Simulation(validators, NetworkConfig(default=LinkSpec(LatencySpec(0.05))),
                     seed=1, on_event=None, sample_interval=0.05, fidelity="quic",
                     identities=DevKeyring([1], v))
    setup = time.perf_counter() - setup_start
    pairs = v * (v - 1) // 2
    gc.collect()
    if trace:
        tracemalloc.start(1)
        before_snapshot = tracemalloc.take_snapshot()
    rss_before = _rss_kb()
    start = time.perf_counter()
    while not sim.samples or not sim.samples[-1].full_mesh:
        if sim.now >= 60.0:
            break
        sim.run(sim.now + 0.05)
    wall = time.perf_counter() - start
    rss_after = _rss_kb()
    fabric = sim.quic
    assert fabric is not None
    result: dict[str, Any] = {
        "case": "bootstrap", "fidelity": "quic", "validators": v, "connections": pairs,
        "full_mesh": bool(sim.samples[-1].full_mesh),
        "time_to_full_mesh_s": sim.time_to_full_mesh(),
        "setup_s": round(setup, 3),
        "wall_s": round(wall, 3),
        "sim_over_wall": round(sim.now / wall, 4) if wall else None,
        "datagrams": fabric.datagrams,
        "events_per_s": round(fabric.datagrams / wall) if wall else None,
        "up0_handshakes": fabric.up0_handshakes,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_per_pair_kb": round((rss_after - rss_before) / pairs, 1),
    }
    if trace:
        gc.collect()
        diff = tracemalloc.take_snapshot().compare_to(before_snapshot, "lineno")
        tracemalloc.stop()
        result["traced_per_pair_kb"] = round(sum(d.size_diff for d in diff) / pairs / 1024, 1)
        result["top_sites_kb_per_pair"] = {
            f"{d.traceback[0].filename.split('site-packages/')[-1]}:{d.traceback[0].lineno}":
                round(d.size_diff / pairs / 1024, 2)
            for d in diff[:8]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="6,32,100")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with relaxed_gc():
            print(json.dumps(bootstrap(args.child, args.tracemalloc)))
        return
    results = []
    for v in (int(s) for s in args.sizes.split(",") if s):
        command = [sys.executable, __file__, "--child", str(v)]
        if args.tracemalloc:
            command.append("--tracemalloc")
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "sim_quic", "results": results}, indent=2))


if __name__ == "__main__":
    main()
