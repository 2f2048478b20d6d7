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
    # The quickstart's stale_for bound fails under jamixir (its cut connections stay
    # believed for the whole disconnect timeout): the sweep says so with exit 1 and
    # still writes the table.
    assert result.exit_code == 1, result.output
    assert "2 of 4 points failed" in result.output
    table = pd.read_parquet(tmp_path / "sweep.parquet")
    assert len(table) == 4
    assert sorted(table["policy.preset"]) == ["jamixir", "jamixir", "jamnp-s", "jamnp-s"]
    assert dict(zip(table["policy.preset"], table["passed"], strict=True)) == \
        {"jamixir": False, "jamnp-s": True}
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


TINY = ("name: tiny\nduration: 5s\nvalidators: {count: 3}\n"
        "expect:\n  - full_mesh: {within: 1ms}\n")
"""Three validators cannot mesh within 1 ms: every point fails its expectation."""


@pytest.mark.parametrize("seeds", ["0", "-1"])
def test_seeds_below_one_is_a_usage_error(tmp_path: Path, seeds: str) -> None:
    result = CliRunner().invoke(app, ["sweep", "quickstart", "--seeds", seeds,
                                      "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "--seeds" in result.output and "greater than or equal to 1" in result.output
    assert not (tmp_path / "s").exists()
    with pytest.raises(UsageError, match="at least 1"):
        run_sweep("quickstart", {}, seeds=int(seeds), out_dir=tmp_path / "lib")


def test_failed_points_exit_1_with_the_table_written_and_progress_shown(
        tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["sweep", str(scenario), "--param",
                                      "policy.preset=jamixir,jamnp-s", "--workers", "1",
                                      "--out", str(out)], terminal_width=120)
    assert result.exit_code == 1, result.output
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 2 and not table["passed"].any()
    assert "2/2 points" in result.output and "2 failed" in result.output
    assert "point 0 failed: an expectation failed" in result.output
    assert "2 of 2 points failed" in result.output


def test_an_existing_sweep_folder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    (out / "point-0000").mkdir(parents=True)
    (out / "sweep.csv").write_text("point\n0\n")
    result = CliRunner().invoke(app, ["sweep", "quickstart", "--out", str(out)],
                                terminal_width=200)
    assert result.exit_code == 2
    assert f"--out {out} already holds a sweep" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["point-0000", "sweep.csv"]


def test_without_out_each_sweep_gets_a_fresh_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from jamsim.sweep import default_out_dir

    monkeypatch.chdir(tmp_path)
    folder = default_out_dir("scenarios/mini.yaml")
    assert folder.parent == Path("runs") and folder.name.startswith("sweep-mini-")
    assert not folder.exists()


def test_missing_dask_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import now fails
    result = CliRunner().invoke(app, ["sweep", "quickstart", "--dask", "tcp://127.0.0.1:1",
                                      "--out", str(tmp_path / "s")], terminal_width=200)
    assert result.exit_code == 2
    assert "pip install 'jamsim[dask]'" in result.output
    assert "Traceback" not in result.output
