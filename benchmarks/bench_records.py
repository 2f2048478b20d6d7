"""Records at full scale: whole ``jamsim run`` and ``jamsim report``; prints JSON.

The scenario is the one a new user tries first: V validators in three regions,
10 simulated minutes under ``jamnp-s``, the Asia region (25% of the set) cut off
from 1 min to 8 min, and 5% of the validators crashing and restarting meanwhile.
Three cases, each a fresh process whose peak RSS is read with ``wait4``:

* ``run``: ``python -m jamsim run`` (simulate, stream the tables, summarise from
  them, plot), as a user would type it;
* ``run_no_events``: the same run with event recording off
  (``run_scenario(record_events=False)``; samples, summary and plots still run):
  the difference of the two peaks is what recording costs;
* ``report``: ``python -m jamsim report`` on the folder ``run`` wrote.

Targets at V=1023 on a 2-core machine: run <= 4 GB and <= 120 s, run minus
run_no_events <= 500 MB, report <= 1 GB and <= 30 s.

Usage: ``python benchmarks/bench_records.py [--validators 1023] [--out runs/bench-records]``
(``--validators 341`` is the quick variant, about a tenth of the work). It writes
the scenario and results under ``--out``. ``yardstick_s`` (benchmarks/yardstick.py)
is the machine's speed before and after: compare runs by wall over yardstick.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from yardstick import yardstick_s  # benchmarks/ is on sys.path when run as a script

from jamsim import native_status

SCENARIO = """\
name: records-{v}
seed: 11
duration: 10m
sample_interval: 5s
validators:
  count: {v}
  regions: {{eu: 40%, us: 35%, asia: 25%}}
network:
  latency:
    default: 40ms
    eu-us: 45ms
    eu-asia: 110ms
    us-asia: 90ms
  loss: 0.5%
policy:
  preset: jamnp-s
timeline:
  - at: 1m
    partition: [[asia], [eu, us]]
  - at: 2m
    churn: {{fraction: 5%, downtime: 10s..40s, until: 7m}}
  - at: 8m
    heal: all
expect:
  - full_mesh: {{within: 120s}}
  - full_mesh: {{within: 120s, after: heal}}
"""

NO_EVENTS = ("import sys; from jamsim.scenario.runner import run_scenario; "
             "run_scenario(sys.argv[1], out_dir=sys.argv[2], record_events=False)")


def _measure(name: str, argv: list[str]) -> dict[str, Any]:
    """Run ``argv`` as a child; its wall time and its own peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    code = os.waitstatus_to_exitcode(status)
    # cpu_s beside wall_s: on a shared machine the wall time says more about the
    # neighbours than about the run
    result = {"case": name, "exit_code": code, "wall_s": round(wall, 2),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
              "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    if code not in (0, 1):  # 1: an expectation failed, the run itself is fine
        result["output_tail"] = output[-2000:]
    return result


def _folder(path: Path) -> dict[str, Any]:
    summary = json.loads((path / "summary.json").read_text())
    # a table is one file or (the event table) a directory of parts
    sizes = {p.name: round(sum(f.stat().st_size for f in ([p] if p.is_file() else
                                                          p.glob("*.parquet"))) / 2**20, 1)
             for p in sorted(path.iterdir()) if p.suffix == ".parquet"}
    metrics = summary.get("metrics", {})
    return {"complete": summary.get("complete"), "simulated_s": summary.get("simulated_s"),
            "events": sum(metrics.get("event_counts", {}).values()),
            "reconnections": metrics.get("reconnections"),
            "time_to_full_mesh_after_s": metrics.get("time_to_full_mesh_after_s"),
            "parquet_mb": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validators", type=int, default=1023)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-records"))
    args = parser.parse_args()
    v = args.validators
    root = args.out
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    scenario = root / f"records-{v}.yaml"
    scenario.write_text(SCENARIO.format(v=v))
    before = yardstick_s()
    python = sys.executable
    results = [
        _measure("run", [python, "-m", "jamsim", "run", str(scenario), "--quiet",
                         "--out", str(root / "run")]),
        _measure("run_no_events", [python, "-c", NO_EVENTS, str(scenario),
                                   str(root / "run-no-events")]),
        _measure("report", [python, "-m", "jamsim", "report", str(root / "run"),
                            "--out", str(root / "report.html")]),
    ]
    for r in results:
        print(json.dumps(r), file=sys.stderr)
    run, no_events, report = results
    print(json.dumps({
        "benchmark": "records", "validators": v, "engine": native_status().state,
        "results": results,
        "recording_cost_mb": round(run["peak_rss_mb"] - no_events["peak_rss_mb"], 1),
        "run_folder": _folder(root / "run"),
        "targets_at_1023": {"run_peak_mb": 4096, "run_wall_s": 120,
                            "recording_cost_mb": 500, "report_peak_mb": 1024,
                            "report_wall_s": 30},
        "within_targets": v != 1023 or (
            run["peak_rss_mb"] <= 4096 and run["wall_s"] <= 120
            and run["peak_rss_mb"] - no_events["peak_rss_mb"] <= 500
            and report["peak_rss_mb"] <= 1024 and report["wall_s"] <= 30),
        "yardstick_s": {"before": before, "after": yardstick_s()},
    }, indent=2))


if __name__ == "__main__":
    main()
