"""Simulator benchmarks; prints one JSON document.

Each case runs in its own subprocess so ``ru_maxrss`` (peak RSS) is per case.

* ``bootstrap``: full-mesh bootstrap from the Init task, 50 ms one-way latency,
  no loss, jamnp-s policy; stops at the first sample with a full mesh.
* ``churn``: 10 simulated minutes: bootstrap, a half/half partition from 60 s to
  180 s, and 5% of the validators crashing and restarting (one every few seconds).

* ``--traffic``: JAM slot traffic (jamsim/traffic): ``bootstrap`` of each size with
  traffic off and on (the overlay evaluating every slot, ``Simulation(traffic=True)``),
  both run on after the full mesh through the first measured slot (slot 1, whose
  block is authored at 6 s; slot 0 is genesis), so the two differ by the overlay's
  work alone; and ``cut``: 10 simulated minutes with traffic, one region of 25% of the set cut
  off from 60 s to 480 s and 5% of the validators crashing and restarting, jamnp-s;
  reports the delivery metrics next to the wall time.
* ``--extra``: with ``--traffic``, also ``bootstrap-extra`` per size: traffic on
  plus one extra CE message per validator and slot (kind 200, 1024 bytes, to its
  grid neighbours, at the slot start: slot 1's, ~63k messages at V=1023).

Usage: ``python benchmarks/bench_sim.py [--sizes 6,78,341,1023] [--churn 120,341]``;
``python benchmarks/bench_sim.py --traffic [--sizes 1023] [--cut 1023] [--extra]``.
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
from jamsim.analysis.delivery import Delivery, summarise
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.records import AssuranceBatch, BlockBatch, MessageBatch
from jamsim.traffic.simulated import SimulatedTraffic


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Batches:
    """Keeps a benchmark's delivery batches in memory (a few hundred slots at most)."""

    def __init__(self) -> None:
        self.blocks: list[BlockBatch] = []
        self.assurances: list[AssuranceBatch] = []
        self.messages: list[MessageBatch] = []

    def delivery(self, slot: float) -> Delivery:
        import pandas as pd

        blocks = pd.concat([b.table().to_pandas() for b in self.blocks]) if self.blocks \
            else pd.DataFrame(columns=["slot", "author", "node", "received_at", "hops", "via"])
        assurances = pd.concat([a.table().to_pandas() for a in self.assurances]) \
            if self.assurances else pd.DataFrame(
                columns=["slot", "author", "assurer", "sent_at", "delivered_at"])
        return Delivery(blocks, assurances, slot)


EXTRA = ExtraMessage(kind=200, size=1024, fanout="grid", offset=0.0)


def _with_traffic(sim: Simulation, until: float, extra: bool = False) -> _Batches:
    batches = _Batches()
    SimulatedTraffic(sim, TrafficConfig(extra=(EXTRA,) if extra else ()), seed=1, until=until,
                     on_block=batches.blocks.append, on_assurances=batches.assurances.append,
                     on_messages=batches.messages.append if extra else None)
    return batches


FIRST_SLOT_EVALUATED = TrafficConfig().slot + 0.05
"""Just after slot 1's block (6 s): the first slot every runtime measures."""


def bootstrap(v: int, traffic: bool = False, extra: bool = False,
              through_first_slot: bool = False) -> dict[str, Any]:
    validators = ValidatorSet.dev(v, seed=1)
    sim = Simulation(validators, NetworkConfig(default=LinkSpec(LatencySpec(0.05))),
                     seed=1, on_event=None, sample_interval=0.05, traffic=traffic)
    batches = _with_traffic(sim, 60.0, extra) if traffic else None
    steps_before = sim.network.sent
    start = time.perf_counter()
    while not sim.samples or not sim.samples[-1].full_mesh:
        if sim.now >= 60.0:
            break
        sim.run(sim.now + 0.05)
    if through_first_slot and sim.now < FIRST_SLOT_EVALUATED:
        sim.run(FIRST_SLOT_EVALUATED)
    wall = time.perf_counter() - start
    return {
        "case": "bootstrap", "fidelity": "model", "engine": native_status().state, "validators": v,
        "traffic": traffic, "simulated_s": round(sim.now, 3),
        "extra_messages": sum(len(m.kind) for m in batches.messages) if batches else 0,
        "slots_evaluated": len(batches.blocks) if batches is not None else 0,
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


def cut(v: int, minutes: float = 10.0) -> dict[str, Any]:
    """Traffic on; a 7-minute cut of one region (25% of the set) plus 5% churn."""
    region_size = v // 4
    regions = ["eu"] * (v - region_size) + ["asia"] * region_size
    validators = ValidatorSet.dev(v, seed=1, regions=regions)
    network = NetworkConfig(default=LinkSpec(LatencySpec(0.05)))
    sim = Simulation(validators, network, ConnectionPolicy.preset("jamnp-s"), seed=1,
                     on_event=None, sample_interval=5.0, traffic=True)
    until = minutes * 60.0
    batches = _with_traffic(sim, until)
    cut_at, heal_at = 60.0, 480.0
    sim.at(cut_at, lambda: sim.partition([range(v - region_size), range(v - region_size, v)]))
    sim.at(heal_at, sim.heal)
    churners = max(1, v // 20)
    for k in range(churners):
        node = (k * 7919) % v
        t = 90.0 + k * (420.0 / churners)
        sim.at(t, lambda node=node: sim.crash(node))  # type: ignore[misc]
        sim.at(t + 20.0, lambda node=node: sim.restart(node))  # type: ignore[misc]
    start = time.perf_counter()
    sim.run(until)
    wall = time.perf_counter() - start
    final = sim.sample()
    delivery = batches.delivery(6.0)
    return {
        "case": "cut", "fidelity": "model", "engine": native_status().state, "validators": v,
        "traffic": True, "policy": "jamnp-s", "simulated_s": until,
        "cut_s": [cut_at, heal_at], "cut_validators": region_size,
        "crash_restarts": churners,
        "final_links_usable": final.links_usable, "final_links_stale": final.links_stale,
        "links_expected": final.links_expected,
        "delivery_overall": summarise(delivery),
        "delivery_during_cut": summarise(Delivery(
            delivery.blocks[(delivery.blocks["slot"] * 6.0 >= cut_at)
                            & (delivery.blocks["slot"] * 6.0 < heal_at)],
            delivery.assurances[(delivery.assurances["slot"] * 6.0 - 2.0 >= cut_at)
                                & (delivery.assurances["slot"] * 6.0 < heal_at)], 6.0)),
        "delivery_after_heal": summarise(delivery.from_slot_at(heal_at)),
        "wall_s": round(wall, 3),
        "sim_over_wall": round(sim.now / wall, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _child(case: str, v: int) -> None:
    # As `jamsim run` does: relaxed GC for the whole simulation, not per run() call.
    with relaxed_gc():
        if case == "bootstrap":
            result = bootstrap(v)
        elif case == "bootstrap-slot":
            result = bootstrap(v, through_first_slot=True)
        elif case == "bootstrap-traffic":
            result = bootstrap(v, traffic=True, through_first_slot=True)
        elif case == "bootstrap-extra":
            result = bootstrap(v, traffic=True, extra=True, through_first_slot=True)
        elif case == "cut":
            result = cut(v)
        else:
            result = churn(v)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="6,78,341,1023")
    parser.add_argument("--churn", default="120",
                        help="churn sizes ('' = none); V=1023 takes 1-1.5 min")
    parser.add_argument("--traffic", action="store_true",
                        help="slot traffic: bootstrap off vs on per size, then --cut")
    parser.add_argument("--cut", default="1023",
                        help="with --traffic: sizes of the 10-minute region cut + churn run")
    parser.add_argument("--extra", action="store_true",
                        help="with --traffic: also bootstrap with one extra CE message")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "V"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if args.traffic:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        cases = [c for v in sizes for c in (("bootstrap-slot", v), ("bootstrap-traffic", v))]
        if args.extra:
            cases += [("bootstrap-extra", v) for v in sizes]
        cases += [("cut", int(s)) for s in args.cut.split(",") if s]
    else:
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
