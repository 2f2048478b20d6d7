"""Local-process testnet: seconds to full mesh and RSS per node at 16 and 64 nodes (JSON).

``--node real`` runs ``jamsim node`` (the aioquic node); ``--node standin``
runs the UDP heartbeat stand-in from the tests (process/control overhead only).
Default: real if ``jamsim.net.commands`` (``jamsim node``) is importable, else standin -- the JSON
says which was measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from jamsim.testnet.base import TestnetError, TestnetSpec
from jamsim.testnet.local import LocalProcessBackend

ROOT = Path(__file__).resolve().parents[1]
STANDIN = (sys.executable, "-m", "tests.testnet.test_local_standin")


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run(n: int, node: str, base_port: int, timeout: float, policy: str) -> dict[str, Any]:
    command = STANDIN if node == "standin" else None
    with tempfile.TemporaryDirectory() as tmp:
        spec = TestnetSpec(
            validators=n,
            base_port=base_port,
            run_dir=Path(tmp),
            policy=policy,
            policy_overrides={"idle_timeout": 5.0},
        )
        with LocalProcessBackend(node_command=command, env={"PYTHONPATH": str(ROOT)}) as tn:
            tn.up(spec)
            try:
                seconds = tn.wait_full_mesh(timeout)
                error = None
            except TestnetError as exc:  # report, do not crash the benchmark
                seconds, error = None, str(exc)[:300]
            rss = [r for r in (rss_kib(p) for p in tn.pids().values()) if r is not None]
    return {
        "nodes": n,
        "node": node,
        "policy": policy,
        "seconds_to_full_mesh_after_start": seconds,
        "rss_kib_mean": statistics.mean(rss) if rss else None,
        "rss_kib_max": max(rss) if rss else None,
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = "real" if importlib.util.find_spec("jamsim.net.commands") else "standin"
    parser.add_argument("--node", choices=["real", "standin"], default=default)
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--base-port", type=int, default=46000)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--policy", default="jamnp-s", choices=["jamnp-s", "jamixir"])
    args = parser.parse_args()
    results = [
        run(int(n), args.node, args.base_port, args.timeout, args.policy)
        for n in args.sizes.split(",")
    ]
    print(
        json.dumps(
            {"benchmark": "testnet_local", "command": shlex.join(sys.argv), "results": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
