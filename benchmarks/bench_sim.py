"""Simulator benchmarks; prints one JSON document.

Each case runs in its own subprocess so ``ru_maxrss`` (peak RSS) is per case.

* ``bootstrap``: full-mesh bootstrap from the Init task, 50 ms one-way latency,
  no loss, jamnp-s policy; stops at the first sample with a full mesh.
* ``churn``: 10 simulated minutes: bootstrap, a half/half partition from 60 s to
  180 s, and 5% of the validators crashing and restarting (one every few seconds).

Usage: ``python benchmarks/bench_sim.py [--sizes 6,78,341,1023] [--churn 120,341]``.
Telemetry records are not built (``on_event=None``): the benchmark measures the
simulator, not a record sink. The ``quic`` fidelity has its own benchmark,
``benchmarks/bench_sim_quic.py``.

``yardstick_s`` (benchmarks/yardstick.py) is the machine's speed before and after
the cases: compare runs by wall time over yardstick, since this machine drifts.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from yardstick import yardstick_s  # benchmarks/ is on sys.path when run as a script

from jamsim import native_status
from jamsim.identity import ValidatorSet
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap(v: int) -> dict[str, Any]:
    validators = ValidatorSet.dev(v, seed=1)
    sim = Simulation(validators, NetworkConfig(default=LinkSpec(LatencySpec(0.05))),
                     seed=1, on_event=None, sample_interval=0.05)
    steps_before = sim.network.sent
    start = time.perf_counter()
    while not sim.samples or not sim.samples[-1].full_mesh:
        if sim.now >= 60.0:
            break
        sim.run(sim.now + 0.05)
    wall = time.perf_counter() - start
    return {
        "case": "bootstrap", "fidelity": "model", "engine": native_status().state, "validators": v,
        "connections": v * (v - 1) // 2,
        "full_mesh": bool(sim.samples[-1].full_mesh),
        "time_to_full_mesh_s": sim.time_to_full_mesh(),
        "wall_s": round(wall, 3),
        "sim_over_wall": round(sim.now / wall, 3) if wall else None,
        "packets_per_s": round((sim.network.sent - steps_before) / wall) if wall else None,
        "manager_events_emitted": sim.events_emitted,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def churn(v: int, minutes: float = 10.0) -> dict[str, Any]:
    validators = ValidatorSet.dev(v, seed=1)
    sim = Simulation(validators, NetworkConfig(default=LinkSpec(LatencySpec(0.05))),
                     seed=1, on_event=None, sample_interval=5.0)
    half = v // 2
    sim.at(60.0, lambda: sim.partition([range(half), range(half, v)]))
    sim.at(180.0, sim.heal)
    churners = max(1, v // 20)
    for k in range(churners):
        node = (k * 7919) % v
        t = 240.0 + k * (240.0 / churners)
        sim.at(t, lambda node=node: sim.crash(node))  # type: ignore[misc]
        sim.at(t + 20.0, lambda node=node: sim.restart(node))  # type: ignore[misc]
    start = time.perf_counter()
    sim.run(minutes * 60.0)
    wall = time.perf_counter() - start
    final = sim.sample()
    return {
        "case": "churn", "fidelity": "model", "engine": native_status().state, "validators": v,
        "simulated_s": minutes * 60,
        "crash_restarts": churners,
        "final_links_usable": final.links_usable, "links_expected": final.links_expected,
        "reconnect_after_heal_s": (lambda t: None if t is None else round(t - 180.0, 3))(
            sim.time_to_full_mesh(after=180.0)),
        "wall_s": round(wall, 3),
        "sim_over_wall": round(sim.now / wall, 3),
        "packets_per_s": round(sim.network.sent / wall),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _child(case: str, v: int) -> None:
    # As `jamsim run` does: relaxed GC for the whole simulation, not per run() call.
    with relaxed_gc():
        result = bootstrap(v) if case == "bootstrap" else churn(v)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="6,78,341,1023")
    parser.add_argument("--churn", default="120",
                        help="churn sizes ('' = none); V=1023 takes 1-1.5 min")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "V"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    cases = [("bootstrap", int(s)) for s in args.sizes.split(",") if s]
    cases += [("churn", int(s)) for s in args.churn.split(",") if s]
    results = []
    before = yardstick_s()
    for case, v in cases:
        out = subprocess.run([sys.executable, __file__, "--child", case, str(v)],
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "sim", "results": results,
                      "yardstick_s": {"before": before, "after": yardstick_s()},
                      "quic_fidelity": "see benchmarks/bench_sim_quic.py"}, indent=2))


if __name__ == "__main__":
    main()
