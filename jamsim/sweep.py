"""Parameter sweeps: one scenario over a grid of overrides and seeds.

Each grid point is an independent simulation, so the sweep is embarrassingly
parallel: local cores by default (a process pool), or a Dask distributed cluster
when given its scheduler address. Every point writes its own results folder and
contributes one row to ``sweep.parquet`` / ``sweep.csv``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from jamsim.core.errors import UsageError

__all__ = ["SweepPoint", "parse_param", "run_sweep"]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    index: int
    scenario: str
    overrides: tuple[tuple[str, Any], ...]
    out_dir: str


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``policy.max_retry=8s,16s,32s`` -> ("policy.max_retry", ["8s", "16s", "32s"])."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise UsageError(f"--param takes key=v1,v2,... (e.g. policy.max_retry=8s,16s), "
                         f"got {text!r}")
    return key.strip(), [yaml.safe_load(v) for v in values.split(",")]


def grid(scenario: str, params: dict[str, list[Any]], seeds: Sequence[int],
         out_root: Path) -> list[SweepPoint]:
    keys = list(params)
    points = []
    for i, (values, seed) in enumerate(
            itertools.product(itertools.product(*params.values()), seeds)):
        overrides = (*zip(keys, values, strict=True), ("seed", seed))
        points.append(SweepPoint(i, scenario, overrides, str(out_root / f"point-{i:04d}")))
    return points


def run_point(point: SweepPoint) -> dict[str, Any]:
    """Run one grid point (in a worker process) and flatten its summary to a row."""
    from jamsim.scenario.runner import run_scenario

    result = run_scenario(point.scenario, out_dir=point.out_dir,
                          overrides=dict(point.overrides), plots=False)
    metrics = result.summary["metrics"]
    row: dict[str, Any] = {"point": point.index, **dict(point.overrides)}
    for key, value in metrics.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                if not isinstance(subvalue, dict):
                    row[f"{key}.{sub}"] = subvalue
        else:
            row[key] = value
    row["passed"] = result.passed
    row["wall_s"] = result.summary["wall_s"]
    row["out_dir"] = point.out_dir
    return row


def run_sweep(scenario: str | Path, params: dict[str, list[Any]], *, seeds: int = 1,
              base_seed: int = 0, workers: int | None = None, dask_address: str | None = None,
              out_dir: str | Path = "runs/sweep",
              on_point: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Run the grid and return (and write) the combined table, sorted by point."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = grid(str(scenario), params, range(base_seed, base_seed + seeds), out)
    rows: list[dict[str, Any]] = []
    if dask_address is not None:
        from dask.distributed import Client

        with Client(dask_address) as client:  # type: ignore[no-untyped-call]
            futures = client.map(run_point, points, pure=False)
            for row in client.gather(futures):
                rows.append(row)
                if on_point:
                    on_point(row)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(run_point, p) for p in points]):
                row = future.result()
                rows.append(row)
                if on_point:
                    on_point(row)
    table = pd.DataFrame(rows).sort_values("point").reset_index(drop=True)
    table.to_parquet(out / "sweep.parquet")
    table.to_csv(out / "sweep.csv", index=False)
    return table
