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
    assert "<h2>Comparison</h2>" in page and page.count("data:image/png;base64,") == 11
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
    # A real run writes its plots: a missing or empty connectivity plot fails here.
    png = (tmp_path / "qs" / "connectivity.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert set(run.summary["plots"]) == {p.name for p in (tmp_path / "qs").glob("*.png")}


def _incomplete_folder(tmp_path: Path) -> Path:
    """The hand-built run again, as a run cut short by Ctrl-C on a docker testnet."""
    d = tmp_path / "cut"
    d.mkdir()
    events_frame().to_parquet(d / "events.parquet")
    samples().to_parquet(d / "connectivity.parquet")
    summary = {**SUMMARY, "complete": False, "error": "interrupted",
               "runtime": "testnet:docker", "fidelity": "model",
               "metrics": {"time_to_full_mesh_s": None, "reconnections": 7,
                           "reconnect_p99_s": 12.5,
                           "time_to_full_mesh_after_s": {"heal @ 20s": 4.0},
                           "event_counts": {"connected_out": 4}}}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.mark.parametrize(("summary", "kind"), [
    ({"fidelity": "model"}, "simulation (model)"),
    ({"fidelity": "quic"}, "simulation (quic)"),
    ({"fidelity": "model", "runtime": "testnet:docker"}, "testnet (docker)"),
    ({"fidelity": "model", "runtime": "testnet:swarm"}, "testnet (swarm)"),
    ({"fidelity": "model", "runtime": "testnet:local"}, "testnet (local)"),
])
def test_run_kind_names_what_produced_the_run(summary: dict[str, str], kind: str) -> None:
    from jamsim.analysis.compare import run_kind

    assert run_kind(summary) == kind


@pytest.mark.parametrize(("value", "unit", "text"), [
    (8, "count", "8"), (8.0, "count", "8"), (44850, "count", "44,850"),
    (2.0, "s", "2 s"), (5.079999999999998, "s", "5.08 s"), (127.62, "s", "127.6 s"),
    (6.2115, "s", "6.21 s"), (0.4761, "s", "0.476 s"), (21.0, "s", "21 s"), (0.0, "s", "0 s"),
    (1234.56, "s", "1,234.6 s"),
    (None, "until", "never"), (None, "s", "n/a"), (1.0, "until", "1 s"),
    (True, "", "yes"), ("jamixir", "", "jamixir"),
])
def test_format_value(value: object, unit: str, text: str) -> None:
    from jamsim.analysis.report import format_value

    assert format_value(value, unit) == text


def test_comparison_numbers_are_the_summaries(tmp_path: Path) -> None:
    """Every cell of the comparison is the run's summary.json value, formatted;
    metrics a run did not record read n/a, an interrupted run is flagged."""
    from jamsim.analysis.compare import summary_table
    from jamsim.analysis.report import format_value, render_report

    runs = [load_run(_folder(tmp_path)), load_run(_incomplete_folder(tmp_path))]
    table = summary_table(runs)
    assert list(table.columns) == ["unit", "hand", "hand#2"]
    assert table.at["reconnect p99", "hand#2"] == 12.5
    assert table.at["time to full mesh", "hand#2"] is None
    assert table.at["reconnect p99", "hand"] is pd.NA
    assert table.at["event counts: connected_out", "hand#2"] == 4
    assert table.at["kind", "hand#2"] == "testnet (docker)"
    page = render_report(runs)
    comparison = page[page.index("<h2>Comparison</h2>"):page.index("<h2>hand</h2>")]
    assert "Incomplete: hand#2" in comparison
    assert "<td>incomplete: interrupted</td>" in comparison
    row = comparison[comparison.index("reconnect p99"):]
    assert row.startswith("reconnect p99</td><td>n/a</td><td>12.5 s</td>")
    row = comparison[comparison.index(">time to full mesh<"):]
    assert row.startswith(">time to full mesh</td><td>n/a</td><td>never</td>")
    assert f"<td>{format_value(4.0, 'until')}</td>" in comparison  # heal @ 20s
    assert "hand#2 (incomplete)" in page  # in the list of runs and the plot legend


def test_report_sections_and_extra_plots(tmp_path: Path) -> None:
    from jamsim.analysis.report import render_report

    d = _folder(tmp_path)
    write_run_plots(d)
    (d / "delivery.png").write_bytes((d / "retries.png").read_bytes())
    page = render_report([load_run(d)])
    for section in ("<h3>Metrics</h3>", "<h3>Timeline</h3>", "<h3>Plots</h3>",
                    "<h3>More plots</h3>"):
        assert section in page
    assert page.count("<figcaption>delivery.png</figcaption>") == 1
    assert "<h2>Comparison</h2>" not in page
    assert '<td class="label">partition 0,2,3 | 1</td>' in page and "<td>10 s</td>" in page


def test_empty_plots_say_no_data(tmp_path: Path) -> None:
    from jamsim.analysis.plots import RUN_PLOTS
    from jamsim.analysis.run import run_from_tables

    empty = run_from_tables(events_frame()[:0], None, {**SUMMARY, "validators": 4})
    for name, plot in RUN_PLOTS.items():
        fig = plot(empty)
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        if name in {"components.png", "grid_coverage.png"}:
            # 4 validators, none connected: 4 components, coverage 0 (real data)
            assert fig.axes[0].has_data() and not any(t.startswith("no ") for t in texts)
        else:
            assert fig.axes[0].has_data() is False and any(
                t.startswith("no ") for t in texts), name


def test_timeline_labels_sit_above_the_axes_and_do_not_overlap() -> None:
    import matplotlib.pyplot as plt

    from jamsim.analysis.plots import plot_connectivity
    from jamsim.analysis.run import run_from_tables

    close = {**SUMMARY, "timeline": [
        {"at": 10.0, "action": "partition", "label": "partition 0,2,3 | 1"},
        {"at": 10.5, "action": "kill", "label": "kill v1"},
        {"at": 11.0, "action": "heal", "label": "heal all validators"}]}
    fig = plot_connectivity(run_from_tables(events_frame(), samples(), close))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() in {"partition 0,2,3 | 1", "kill v1",
                                                        "heal all validators"}]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert len(boxes) == 3
    plot_area = ax.get_window_extent(renderer)
    assert all(box.y0 >= plot_area.y1 for box in boxes)  # above the curves
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    title = ax.title.get_window_extent(renderer)
    assert all(title.y0 >= box.y1 for box in boxes)
    plt.close(fig)


def test_legend_names_each_series_once() -> None:
    from jamsim.analysis.plots import plot_compare
    from jamsim.analysis.run import run_from_tables

    run = run_from_tables(events_frame(), samples(), SUMMARY)
    fig = plot_compare([run, run])
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert names == ["hand", "hand#2"]


def chromium() -> str:
    """Debian's headless Chromium. Missing where it could be installed (root with
    apt and a candidate package) is a failure, not a skip: `scripts/install.sh
    --dev` installs it, as it installs gcc for the compiled engine."""
    import os
    import shutil
    import subprocess

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-cache"):
        policy = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True,
                                text=True, check=False).stdout
        if "Candidate:" in policy and "Candidate: (none)" not in policy:
            pytest.fail("chromium is not installed but can be: bash scripts/install.sh --dev")
    pytest.skip("no chromium here, and no way to install it")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The page a person opens: rendered by a real browser, the screenshot is not
    blank and the DOM has every section (comparison, per-run metrics, plots)."""
    import subprocess

    from PIL import Image

    from jamsim.analysis.report import render_report

    browser = chromium()
    runs = [load_run(_folder(tmp_path)), load_run(_incomplete_folder(tmp_path))]
    page = tmp_path / "report.html"
    page.write_text(render_report(runs), encoding="utf-8")
    shot = tmp_path / "shot.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1400,3000",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for section in ("<h2>Comparison</h2>", "<h2>hand</h2>", "<h2>hand#2</h2>",
                    "<h3>Metrics</h3>", "<h3>Timeline</h3>", "<h3>Plots</h3>",
                    "incomplete: interrupted", "testnet (docker)"):
        assert section in dom, section
    image = Image.open(shot).convert("L")
    assert image.size == (1400, 3000)
    histogram = image.histogram()
    inked = sum(histogram[:200]) / (image.size[0] * image.size[1])
    assert 0.01 < inked < 0.5, inked  # text, tables and plots on a white page
    # the page is laid out over its whole height: plots below the comparison
    bottom = image.crop((0, 2000, 1400, 3000)).histogram()
    assert sum(bottom[:200]) > 1000
