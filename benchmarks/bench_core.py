"""Cost of the sans-IO manager alone: a V-validator full-mesh bootstrap with an
instantaneous, lossless transport. Prints JSON. This is the floor under any
simulation of the same mesh: the simulator can only add to it.

    python benchmarks/bench_core.py --validators 1023
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time

from jamsim import native_status
from jamsim.core.actions import Dial
from jamsim.core.events import ConnectionEstablished, InboundHandshake, ValidatorSetChanged
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import PeerEndpoint
from jamsim.identity import ValidatorSet
from jamsim.sim.gc_tuning import SIM_GC_THRESHOLDS, relaxed_gc


def run(validators: int, telemetry: bool) -> dict[str, object]:
    vset = ValidatorSet.dev(validators, seed=1)
    endpoints = tuple(PeerEndpoint(v.key, v.address) for v in vset)
    policy = ConnectionPolicy.preset("jamnp-s")
    started = time.perf_counter()
    managers = {v.key: ConnectionManager(v.key, policy, rng_seed=i, emit_telemetry=telemetry)
                for i, v in enumerate(vset)}
    change = ValidatorSetChanged(current=endpoints)
    dials: list[tuple[bytes, Dial]] = []
    for key, manager in managers.items():
        manager.handle(change, 0.0)
        for action in manager.drain_actions():
            if isinstance(action, Dial):
                dials.append((key, action))
    setup = time.perf_counter() - started
    actions = 0
    for key, dial in dials:
        remote = managers[dial.peer]
        remote.handle(InboundHandshake(remote.allocate_connection_id(), key), 0.01)
        managers[key].handle(ConnectionEstablished(dial.conn_id, dial.peer), 0.01)
        actions += len(remote.drain_actions()) + len(managers[key].drain_actions())
    wall = time.perf_counter() - started
    connected = sum(len(m.live_peers()) for m in managers.values()) // 2
    return {
        "benchmark": "core_full_mesh", "engine": native_status().state,
        "validators": validators,
        "telemetry": telemetry,
        "connections": connected,
        "expected": validators * (validators - 1) // 2,
        "wall_s": round(wall, 3),
        "setup_s": round(setup, 3),
        "us_per_connection": round(1e6 * wall / max(1, connected), 2),
        "actions": actions,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validators", type=int, default=1023)
    parser.add_argument("--no-telemetry", action="store_true")
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's default GC thresholds (the simulator relaxes them)")
    args = parser.parse_args()
    thresholds = gc.get_threshold() if args.default_gc else SIM_GC_THRESHOLDS
    with relaxed_gc(thresholds):
        result = run(args.validators, not args.no_telemetry)
    result["gc_thresholds"] = list(gc.get_threshold() if args.default_gc else thresholds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
