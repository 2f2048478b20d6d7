"""Matplotlib plots (Agg backend, no display needed) with the scenario's timeline
events drawn as labelled vertical lines, so a dip can be read against its cause."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jamsim.analysis import metrics
from jamsim.analysis.run import Run, load_run

__all__ = ["mark_timeline", "plot_compare", "plot_components", "plot_connectivity",
           "plot_grid_coverage", "plot_reconnect_cdf", "plot_retries", "write_run_plots"]


def mark_timeline(ax: Axes, run: Run) -> None:
    """Vertical dashed line + rotated label at each timeline event."""
    for entry in run.timeline.itertuples():
        ax.axvline(float(entry.at), color="grey", linestyle="--", linewidth=0.8)
        ax.text(float(entry.at), 0.98, f" {entry.label}", rotation=90, va="top",
                ha="left", fontsize=7, color="dimgrey", transform=ax.get_xaxis_transform())


def _fig() -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
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
    ax.set(xlabel="time (s)", ylabel="pairs", title=f"{run.name}: links usable")
    ax.legend(loc="lower right", fontsize=8)
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
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no reconnections", ha="center", transform=ax.transAxes)
    ax.set(xlabel="reconnect latency (s)", ylabel="fraction of drops",
           title=f"{run.name}: reconnect latency CDF", ylim=(0, 1.05))
    return fig


def plot_components(run: Run) -> Figure:
    """Number of connected components and the largest component over time."""
    fig, ax = _fig()
    cc = metrics.connected_components(run)
    ax.step(cc["time"], cc["components"], where="post", label="components (reported links)")
    c = run.connectivity
    if len(c) and "links_stale" in c and c["links_stale"].max() > 0:
        # the sampled count is over usable links: it shows what a cut really splits
        ax.step(c["time"], c["components"], where="post", linestyle="--",
                label="components (usable links)")
    ax.step(cc["time"], cc["largest"], where="post", label="largest component size")
    ax.set(xlabel="time (s)", ylabel="count", title=f"{run.name}: connected components")
    ax.legend(loc="center right", fontsize=8)
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
        ax.step(g["time"], g["coverage"], where="post")
    ax.set(xlabel="time (s)", ylabel="fraction", ylim=(0, 1.05),
           title=f"{run.name}: grid neighbour coverage")
    mark_timeline(ax, run)
    return fig


def plot_retries(run: Run) -> Figure:
    """Histogram of outbound connect attempts per pair."""
    fig, ax = _fig()
    r = metrics.retries_per_pair(run)
    if len(r):
        ax.hist(r["attempts"], bins=range(1, int(r["attempts"].max()) + 2), align="left")
    ax.set(xlabel="outbound attempts per pair", ylabel="pairs",
           title=f"{run.name}: connect attempts per pair")
    return fig


def plot_compare(runs: Sequence[Run], labels: Sequence[str] | None = None) -> Figure:
    """Usable fraction of the expected pairs over time for several runs on one axis."""
    fig, ax = _fig()
    names = list(labels) if labels is not None else [r.name for r in runs]
    for run, name in zip(runs, names, strict=True):
        c = run.connectivity
        if len(c):
            frac = c["links_usable"] / c["links_expected"].where(c["links_expected"] > 0)
            ax.step(c["time"], frac, where="post", label=name)
    if runs:
        mark_timeline(ax, runs[0])
    ax.set(xlabel="time (s)", ylabel="fraction of pairs usable", ylim=(0, 1.05),
           title="connectivity comparison")
    ax.legend(loc="lower right", fontsize=8)
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
