"""A short pure-CPU workload printed next to every simulator benchmark.

Why: this machine is a virtual one and its speed drifts; on 2026-11-30 the same
code ran ``bench_core.py`` in 5.0 s at one hour and 6.3 s at another, with nothing
else running. A wall time means little without the machine's speed at that
moment, so the benchmarks measure this yardstick (the sans-IO manager
bootstrapping 300 validators, no simulator) before and after their cases; to
compare two runs, compare their figures divided by their yardsticks.

The yardstick always runs the pure-Python engine (in a child process with
``JAMSIM_NATIVE=0``), so its figure means the same whether or not the benchmark
itself ran the compiled build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from jamsim.sim.gc_tuning import relaxed_gc


def _measure(repeats: int) -> float:
    from bench_core import run as core_bootstrap

    best = float("inf")
    for _ in range(repeats):
        with relaxed_gc():
            started = time.perf_counter()
            core_bootstrap(300, telemetry=False)
            best = min(best, time.perf_counter() - started)
    return round(best, 3)


def yardstick_s(repeats: int = 3) -> float:
    """Best of ``repeats`` wall seconds of a pure-Python 300-validator manager bootstrap."""
    out = subprocess.run(
        [sys.executable, __file__, str(repeats)],
        env={**os.environ, "JAMSIM_NATIVE": "0"},
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout)


if __name__ == "__main__":
    print(_measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
