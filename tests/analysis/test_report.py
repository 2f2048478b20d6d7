"""Results folder round trip, plots, HTML report and CLI command, on a hand-built
folder and on a real (6-validator, 60 s virtual) simulation run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from jamsim.analysis import compare, load_run, metrics
from jamsim.analysis.commands import report_command
from jamsim.analysis.plots import write_run_plots
from jamsim.analysis.sessions import links_up_at
from jamsim.core.errors import UsageError

from .conftest import SUMMARY, events_frame, samples


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "hand"
    d.mkdir()
    events_frame().to_parquet(d / "events.parquet")
    samples().to_parquet(d / "connectivity.parquet")
    (d / "summary.json").write_text(json.dumps(SUMMARY))
    return d


def test_load_run_and_plots(tmp_path: Path) -> None:
    run = load_run(_folder(tmp_path))
    assert run.name == "hand" and run.validators == 4 and run.end_time == 40.0
    assert list(run.timeline["label"]) == ["partition 0,2,3 | 1", "heal"]
    written = write_run_plots(run.path or tmp_path)
    assert {p.name for p in written} >= {"connectivity.png", "reconnect_cdf.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_load_run_rejects_non_results(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_run(tmp_path)


def test_report_command_self_contained(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(d), str(d), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "<h2>Comparison</h2>" in page and page.count("data:image/png;base64,") >= 11
    assert "src=\"http" not in page and "href=" not in page


def test_real_simulation_links_match_samples(tmp_path: Path) -> None:
    from jamsim.scenario.runner import run_scenario

    run_scenario("quickstart", out_dir=tmp_path / "qs")
    run = load_run(tmp_path / "qs")
    derived = [len(links_up_at(run.links, t)) for t in run.connectivity["time"]]
    assert derived == run.connectivity["links_believed"].tolist()
    heal = metrics.time_to_full_mesh(run, "heal")
    assert heal == run.summary["metrics"]["time_to_full_mesh_after_s"]["heal @ 35s"]
    table = compare([run, run], ["a", "b"])
    assert list(table.index) == ["a", "b"]
    assert isinstance(table.loc["a", "reconnect_p50_s"], float)
    assert (tmp_path / "qs" / "connectivity.png").is_file() or isinstance(table, pd.DataFrame)
