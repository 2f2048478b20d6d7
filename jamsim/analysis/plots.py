"""Matplotlib plots (Agg backend, no display needed) with the scenario's timeline
events marked, so a dip can be read against its cause.

Layout rules every plot follows: a wide figure (it fills a report page), the
timeline labels in a band above the axes (never over the curves; labels too
close to share a row are stacked), a legend that names each series once, and a
"no data" note instead of an empty frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jamsim.analysis import metrics
from jamsim.analysis.compare import unique_labels
from jamsim.analysis.run import Run, load_run

__all__ = ["FIGSIZE", "legend", "mark_timeline", "no_data", "plot_compare", "plot_components",
           "plot_connectivity", "plot_grid_coverage", "plot_reconnect_cdf", "plot_retries",
           "write_run_plots"]

FIGSIZE = (11.0, 3.8)
"""Inches: at the report's 90 dpi, 990 px wide, the width of its page."""
_LABEL_FONT = 7.5
_LABEL_ROW = 11.0
"""Points between stacked rows of timeline labels."""


def _label_rows(xs: Sequence[float], widths: Sequence[float]) -> list[int]:
    """Row of each label (0 = nearest the axes) so that labels centred at ``xs``
    with ``widths`` (same unit) never overlap within a row: first fit, in x order."""
    row_ends: list[float] = []
    rows = [0] * len(xs)
    for i in sorted(range(len(xs)), key=lambda k: xs[k]):
        left, right = xs[i] - widths[i] / 2, xs[i] + widths[i] / 2
        row = next((r for r, end in enumerate(row_ends) if end <= left), len(row_ends))
        if row == len(row_ends):
            row_ends.append(right)
        else:
            row_ends[row] = right
        rows[i] = row
    return rows


def mark_timeline(ax: Axes, run: Run) -> None:
    """A dashed line at each of the run's timeline events, labelled above the axes
    (see :func:`mark_events`)."""
    mark_events(ax, [(float(e.at), str(e.label)) for e in run.timeline.itertuples()])


def mark_events(ax: Axes, events: Sequence[tuple[float, str]], labels: bool = True) -> None:
    """A dashed line at each ``(time, label)``, its label in a band above the axes.

    Labels sit outside the plotting area so they never hide a curve; labels
    closer than their own width are stacked in rows, and the title is raised
    above the band. ``labels=False`` draws the lines only (a lower panel of a
    figure whose top panel carries the labels).
    """
    left, right = ax.get_xlim()
    # events outside the plotted time (after an interrupted run's end) are left out
    entries = [(at, label) for at, label in events if left <= at <= right]
    if not entries or not ax.has_data():
        return
    if not labels:
        for at, _ in entries:
            ax.axvline(at, color="grey", linestyle="--", linewidth=0.8, zorder=0)
        ax.set_xlim(left, right)
        return
    span = (right - left) or 1.0
    figure = ax.get_figure(root=True)
    inches = figure.get_figwidth() if figure is not None else FIGSIZE[0]
    axes_points = ax.get_position().width * inches * 72
    widths = [(len(label) * 0.55 * _LABEL_FONT + 6) / axes_points * span
              for _, label in entries]
    rows = _label_rows([at for at, _ in entries], widths)
    for (at, label), row in zip(entries, rows, strict=True):
        ax.axvline(at, color="grey", linestyle="--", linewidth=0.8, zorder=0)
        ax.annotate(label, xy=(at, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 3 + _LABEL_ROW * row), textcoords="offset points",
                    ha="center", va="bottom", fontsize=_LABEL_FONT, color="dimgrey",
                    annotation_clip=False)
    ax.set_xlim(left, right)
    ax.title.set_y(1.0)
    ax.set_title(ax.get_title(), pad=6 + _LABEL_ROW * (max(rows) + 1))


def legend(ax: Axes, loc: Literal["best", "lower right", "center right"] = "best") -> None:
    """A legend naming each labelled series once (nothing if none is labelled)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(list(unique.values()), list(unique.keys()), loc=loc, fontsize=8)


def no_data(ax: Axes, what: str = "no data") -> None:
    """Say so in the middle of an axes that has nothing to show."""
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes,
            fontsize=11, color="grey")


def _fig() -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    return fig, ax


def plot_connectivity(run: Run) -> Figure:
    """Usable links over time against the expected full mesh, with stale links
    (believed at an end but cut from the peer) as their own line."""
    fig, ax = _fig()
    c = run.connectivity
    if len(c):
        ax.step(c["time"], c["links_usable"], where="post", label="usable")
        if "links_stale" in c and c["links_stale"].max() > 0:
            ax.step(c["time"], c["links_stale"], where="post", color="tab:red",
                    label="stale (believed, path cut)")
        ax.step(c["time"], c["links_expected"], where="post", color="k",
                linestyle=":", label="expected")
        if c["half_open"].max() > 0:
            ax.step(c["time"], c["half_open"], where="post", label="half open")
        legend(ax, "lower right")
    else:
        no_data(ax, "no connectivity samples")
    ax.set(xlabel="time (s)", ylabel="pairs", title=f"{run.name}: links usable")
    mark_timeline(ax, run)
    return fig


def plot_reconnect_cdf(run: Run) -> Figure:
    """Empirical CDF of reconnect latency, one curve per causing timeline event."""
    fig, ax = _fig()
    lat = metrics.reconnect_latency(run).dropna(subset=["latency"])
    for after, g in lat.groupby("after"):
        x = np.sort(g["latency"].to_numpy())
        # start at (0, 0) so a single latency still reads as a CDF step
        ax.step(np.concatenate([[0.0], x]), np.arange(len(x) + 1) / len(x), where="post",
                label=f"after {after} (n={len(x)})")
    if len(lat):
        legend(ax, "lower right")
    else:
        no_data(ax, "no reconnections")
    ax.set(xlabel="reconnect latency (s)", ylabel="fraction of drops",
           title=f"{run.name}: reconnect latency CDF", ylim=(0, 1.05))
    return fig


def plot_components(run: Run) -> Figure:
    """Number of connected components and the largest component over time."""
    fig, ax = _fig()
    cc = metrics.connected_components(run)
    c = run.connectivity
    if len(cc):
        ax.step(cc["time"], cc["components"], where="post", label="components (reported links)")
        if len(c) and "links_stale" in c and c["links_stale"].max() > 0:
            # the sampled count is over usable links: it shows what a cut really splits
            ax.step(c["time"], c["components"], where="post", linestyle="--",
                    label="components (usable links)")
        ax.step(cc["time"], cc["largest"], where="post", label="largest component size")
        legend(ax, "center right")
    else:
        no_data(ax)
    ax.set(xlabel="time (s)", ylabel="count", title=f"{run.name}: connected components")
    mark_timeline(ax, run)
    return fig


def plot_grid_coverage(run: Run) -> Figure:
    """Fraction of JAMNP-S grid-neighbour pairs linked over time: usable links
    from the samples where the runtime knows the paths (the simulator), else the
    links both ends reported."""
    fig, ax = _fig()
    c = run.connectivity
    if "grid_pairs" in c and len(c) and c["grid_pairs"].max() > 0:
        frac = c["grid_usable"] / c["grid_pairs"].where(c["grid_pairs"] > 0)
        ax.step(c["time"], frac, where="post")
    else:
        g = metrics.grid_neighbour_coverage(run)
        if len(g):
            ax.step(g["time"], g["coverage"], where="post")
        else:
            no_data(ax)
    ax.set(xlabel="time (s)", ylabel="fraction", ylim=(0, 1.05),
           title=f"{run.name}: grid neighbour coverage")
    mark_timeline(ax, run)
    return fig


def plot_retries(run: Run) -> Figure:
    """Histogram of outbound connect attempts per pair."""
    fig, ax = _fig()
    r = metrics.retries_per_pair(run)
    if len(r):
        ax.hist(r["attempts"], bins=range(1, int(r["attempts"].max()) + 2), align="left",
                rwidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        no_data(ax, "no outbound connection attempts")
    ax.set(xlabel="outbound attempts per pair", ylabel="pairs",
           title=f"{run.name}: connect attempts per pair")
    return fig


def plot_compare(runs: Sequence[Run], labels: Sequence[str] | None = None) -> Figure:
    """Usable fraction of the expected pairs over time for several runs on one axis."""
    fig, ax = _fig()
    names = unique_labels(list(labels) if labels is not None else [r.name for r in runs])
    plotted = False
    for run, name in zip(runs, names, strict=True):
        c = run.connectivity
        if len(c):
            frac = c["links_usable"] / c["links_expected"].where(c["links_expected"] > 0)
            complete = run.summary.get("complete", True) is not False
            ax.step(c["time"], frac, where="post",
                    label=name if complete else f"{name} (incomplete)")
            plotted = True
    if plotted:
        legend(ax, "lower right")
    else:
        no_data(ax, "no connectivity samples")
    ax.set(xlabel="time (s)", ylabel="fraction of pairs usable", ylim=(0, 1.05),
           title="connectivity comparison")
    if runs:
        mark_timeline(ax, runs[0])
    return fig


RUN_PLOTS = {
    "connectivity.png": plot_connectivity,
    "reconnect_cdf.png": plot_reconnect_cdf,
    "components.png": plot_components,
    "grid_coverage.png": plot_grid_coverage,
    "retries.png": plot_retries,
}


def write_run_plots(run_dir: str | Path, run: Run | None = None) -> list[Path]:
    """Write every per-run plot into ``run_dir`` (called by the scenario runner,
    which passes the run it already opened)."""
    out = Path(run_dir)
    run = load_run(out) if run is None else run
    written = []
    for name, fn in RUN_PLOTS.items():
        fig = fn(run)
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(out / name)
    return written
