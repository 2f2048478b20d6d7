"""Docker Compose testnet: seconds to full mesh and memory per container (JSON).

For each size: ``compose up`` of N node containers on one bridge network, then
the time until every node reports all others connected (measured from the start
of ``up``, and from the moment ``up`` returned), then ``docker stats`` memory per
container (cgroup usage, the figure that decides how many fit on a host).

Each size runs under two policies: ``preset`` (jamnp-s as specified, only a
10 s idle timeout) and ``loaded-host`` (connect and idle timeouts of 30 s,
retries capped at 4 s). Why both: on a 2-core host 64 containers start ~4000
handshakes at once; each then takes longer than the preset's 5 s connect
timeout, is abandoned and retried, and the mesh forms only after minutes of
retry storm. The second policy shows what the same nodes do when a handshake
may take as long as the host needs; ``dial-limit`` keeps the preset's timeouts
and caps each node's dials in flight at 4 (``policy.max_parallel_dials``), which
spreads the handshakes out instead of the timeouts. The host's load average is recorded,
because other work on the machine moves these numbers a lot.

    python benchmarks/bench_docker.py [--sizes 16,64] [--timeout 240]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jamsim.testnet.base import TestnetError, TestnetSpec
from jamsim.testnet.docker import DockerComposeBackend

POLICIES: dict[str, dict[str, float | None]] = {
    "preset": {"idle_timeout": 10.0},
    "loaded-host": {"idle_timeout": 30.0, "connect_timeout": 30.0, "max_retry": 4.0},
    "dial-limit": {"idle_timeout": 10.0, "max_parallel_dials": 4},
}


def run(n: int, timeout: float, policy: str) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        spec = TestnetSpec(validators=n, run_dir=Path(tmp), name=f"bench{n}",
                           policy_overrides=POLICIES[policy])
        with DockerComposeBackend() as tn:
            started = time.monotonic()
            tn.up(spec)
            up_s = time.monotonic() - started
            try:
                tn.wait_full_mesh(timeout)
                mesh_s: float | None = time.monotonic() - started
                error = None
            except TestnetError as exc:  # report, do not crash the benchmark
                mesh_s, error = None, str(exc)[:300]
            memory = list(tn.memory_bytes().values())
    mib = [m / 2**20 for m in memory]
    return {
        "containers": n,
        "policy": policy,
        "policy_overrides": POLICIES[policy],
        "load_average_1m_before": round(load_before, 1),
        "compose_up_s": round(up_s, 2),
        "seconds_to_full_mesh_from_up": round(mesh_s, 2) if mesh_s is not None else None,
        "seconds_to_full_mesh_after_up_returned": round(mesh_s - up_s, 2)
        if mesh_s is not None else None,
        "memory_mib_mean": round(statistics.mean(mib), 1) if mib else None,
        "memory_mib_max": round(max(mib), 1) if mib else None,
        "memory_mib_total": round(sum(mib), 1),
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    DockerComposeBackend().build()
    results = [run(int(n), args.timeout, policy) for n in args.sizes.split(",")
               for policy in args.policies.split(",")]
    print(json.dumps({"benchmark": "testnet_docker", "command": shlex.join(sys.argv),
                      "cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
