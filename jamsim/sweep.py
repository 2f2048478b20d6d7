"""Parameter sweeps: one scenario over a grid of overrides and seeds.

Each grid point is an independent simulation, so the sweep is embarrassingly
parallel: local cores by default (a process pool), or a Dask distributed cluster
when given its scheduler address. Every point writes its own results folder and
contributes one row to ``sweep.parquet`` / ``sweep.csv``.

A point that raises is a row too (``error`` says what happened, ``passed`` is
False), so one bad point does not throw away the others' results. A sweep never
writes into a folder that already holds one: mixing the point folders of two
sweeps under one ``sweep.csv`` would make the table lie about where rows came from.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from jamsim.core.errors import JamsimError, UsageError

__all__ = ["DASK_MISSING", "SweepPoint", "check_out_dir", "default_out_dir", "parse_param",
           "require_dask", "run_sweep"]

DASK_MISSING = ("--dask needs the optional Dask packages, which are not installed: "
                "pip install 'jamsim[dask]'")


@dataclass(frozen=True, slots=True)
class SweepPoint:
    index: int
    scenario: str
    overrides: tuple[tuple[str, Any], ...]
    out_dir: str


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``policy.max_retry=8s,16s,32s`` -> ("policy.max_retry", ["8s", "16s", "32s"])."""
    from jamsim.scenario.errors import ScenarioError
    from jamsim.scenario.loader import load_yaml

    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise UsageError(f"--param takes key=v1,v2,... (e.g. policy.max_retry=8s,16s), "
                         f"got {text!r}")
    try:
        return key.strip(), [load_yaml(v, f"--param {text}") for v in values.split(",")]
    except ScenarioError as exc:
        raise UsageError(f"--param {text}: a value is not valid YAML "
                         f"({exc.message.removeprefix('not valid YAML: ')})"
                         ) from None


def default_out_dir(scenario: str | Path) -> Path:
    """A fresh ``runs/sweep-<scenario>-<timestamp>`` folder name."""
    stem = Path(str(scenario)).stem or "scenario"
    return Path("runs") / f"sweep-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out_dir(out: Path) -> None:
    """Refuse a folder that already holds a sweep (or anything else)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the sweep")
    if out.is_dir() and any(out.iterdir()):
        previous = "a sweep" if (out / "sweep.csv").exists() or any(out.glob("point-*")) \
            else "other files"
        raise UsageError(f"--out {out} already holds {previous}; a sweep writes only into "
                         "a new or empty folder. Give another --out, or leave --out out "
                         "for a fresh runs/sweep-<name>-<time>/")


def require_dask() -> None:
    """Raise a UsageError naming the extra to install when Dask is missing."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise UsageError(DASK_MISSING) from None


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

    row: dict[str, Any] = {"point": point.index, **dict(point.overrides)}
    started = time.perf_counter()
    try:
        result = run_scenario(point.scenario, out_dir=point.out_dir,
                              overrides=dict(point.overrides), plots=False)
    except (JamsimError, OSError, ValueError, RuntimeError) as exc:
        row.update(passed=False, error=f"{type(exc).__name__}: {exc}",
                   wall_s=time.perf_counter() - started, out_dir=point.out_dir)
        return row
    metrics = result.summary["metrics"]
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
    row["error"] = ""
    return row


def run_sweep(scenario: str | Path, params: dict[str, list[Any]], *, seeds: int = 1,
              base_seed: int = 0, workers: int | None = None, dask_address: str | None = None,
              out_dir: str | Path = "runs/sweep",
              on_point: Callable[[dict[str, Any]], None] | None = None,
              on_start: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Run the grid and return (and write) the combined table, sorted by point.

    ``on_start(total)`` is called once the grid is known, ``on_point(row)`` as each
    point finishes (in completion order). ``out_dir`` must be new or empty.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (seeds 0..N-1 per grid point), "
                         f"got {seeds!r}")
    if dask_address is not None:
        require_dask()
    out = Path(out_dir)
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    points = grid(str(scenario), params, range(base_seed, base_seed + seeds), out)
    if on_start:
        on_start(len(points))
    rows: list[dict[str, Any]] = []
    if dask_address is not None:
        from dask.distributed import Client

        try:
            client = Client(dask_address, timeout=15)  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise UsageError(f"--dask {dask_address}: cannot reach the Dask scheduler "
                             f"({exc})") from None
        with client:
            futures = client.map(run_point, points, pure=False)
            for future in _dask_completed(futures):
                row = future.result()
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


def _dask_completed(futures: list[Any]) -> Any:
    """Dask futures in completion order, so progress moves as points finish."""
    from dask.distributed import as_completed as dask_as_completed

    return dask_as_completed(futures)  # type: ignore[no-untyped-call]
