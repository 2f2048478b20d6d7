"""Analysis cost on a results folder: load_run, each metric, write_run_plots. Prints JSON.

Run: ``python benchmarks/bench_analysis.py runs/full-run [--dump DIR] [--only NAME,...]``.
The folder is never written to: plots go into a temporary copy of it. ``--dump``
pickles every metric's output so two versions of the library can be compared
exactly (``--check DIR`` does that against an earlier dump). Peak RSS is this
process's ``ru_maxrss``; run under ``/usr/bin/time -v`` for the outside view. Not a test.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from jamsim.analysis import metrics
from jamsim.analysis.run import Run, load_run

METRICS: dict[str, Callable[[Run], Any]] = {
    "reconnect_latency": metrics.reconnect_latency,
    "connected_components": metrics.connected_components,
    "grid_neighbour_coverage": metrics.grid_neighbour_coverage,
    "retries_per_pair": metrics.retries_per_pair,
    "per_pair_downtime": metrics.per_pair_downtime,
    "duplicate_connections_seen": metrics.duplicate_connections_seen,
    "time_to_full_mesh": metrics.time_to_full_mesh,
}


def _same(a: Any, b: Any) -> bool:
    """Exact equality for frames (dtypes included), NaN-aware for scalars."""
    if isinstance(a, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError:
            return False
        return True
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--dump", type=Path, help="pickle each output into this folder")
    ap.add_argument("--check", type=Path, help="compare each output with this dump")
    ap.add_argument("--only", default="", help="comma-separated metric names (default all)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    only = [n for n in args.only.split(",") if n] or list(METRICS)

    out: dict[str, Any] = {"python": platform.python_version(), "run": str(args.run_dir)}
    t0 = time.perf_counter()
    run = load_run(args.run_dir)
    out["load_run_s"] = round(time.perf_counter() - t0, 3)
    out["rows"] = {"events": len(run.events), "sessions": len(run.sessions),
                   "links": len(run.links)}
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    same: dict[str, bool] = {}
    tables = {"sessions": lambda r: r.sessions, "links": lambda r: r.links}
    for name, fn in [*tables.items(), *((n, METRICS[n]) for n in only)]:
        t0 = time.perf_counter()
        result = fn(run)
        if name not in tables:
            out[f"{name}_s"] = round(time.perf_counter() - t0, 3)
        if args.dump:
            (args.dump / f"{name}.pkl").write_bytes(pickle.dumps(result))
        if args.check and (args.check / f"{name}.pkl").is_file():
            same[name] = _same(result, pickle.loads((args.check / f"{name}.pkl").read_bytes()))
    if args.check:
        out["identical"] = same
    del run
    if not args.no_plots:
        from jamsim.analysis.plots import write_run_plots

        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "run"
            copy.mkdir()
            for f in ("events.parquet", "connectivity.parquet", "summary.json"):
                if (args.run_dir / f).is_file():
                    shutil.copy(args.run_dir / f, copy / f)
            t0 = time.perf_counter()
            write_run_plots(copy)
            out["write_run_plots_s"] = round(time.perf_counter() - t0, 3)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
