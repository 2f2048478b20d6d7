"""Sweeps: local process pool and a local Dask cluster give the same table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from jamsim.cli import app
from jamsim.core.errors import UsageError
from jamsim.sweep import parse_param, run_sweep


def test_parse_param() -> None:
    assert parse_param("policy.max_retry=8s,16s") == ("policy.max_retry", ["8s", "16s"])
    assert parse_param("seed=1,2") == ("seed", [1, 2])
    with pytest.raises(UsageError):
        parse_param("nothing")


def test_local_sweep_via_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "sweep", "quickstart", "--param", "policy.preset=jamixir,jamnp-s", "--seeds", "2",
        "--workers", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "sweep.parquet")
    assert len(table) == 4
    assert sorted(table["policy.preset"]) == ["jamixir", "jamixir", "jamnp-s", "jamnp-s"]
    assert sorted(table["seed"]) == [0, 0, 1, 1]
    assert (tmp_path / "sweep.csv").exists()
    assert all((tmp_path / f"point-{i:04d}" / "summary.json").exists() for i in range(4))


def test_dask_sweep_matches_local(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    params = {"policy.max_retry": ["8s", "32s"]}
    local = run_sweep("quickstart", params, seeds=1, workers=1, out_dir=tmp_path / "local")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = run_sweep("quickstart", params, seeds=1, dask_address=cluster.scheduler_address,
                           out_dir=tmp_path / "dask")
    columns = ["point", "policy.max_retry", "seed", "time_to_full_mesh_s", "reconnections"]
    pd.testing.assert_frame_equal(local[columns], remote[columns])
