"""Plot of block propagation per slot over time, with the timeline's events marked.

One figure, two axes sharing the time axis: the p50 / p99 propagation time of each
slot's block (slots whose p99 is "never" are drawn at the slot length, marked x),
and the fraction of validators that had the block within the slot together with the
fraction of assurances that reached the author in time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from jamsim.analysis.delivery import Delivery, load_delivery, slot_table
from jamsim.analysis.plots import FIGSIZE, legend, mark_events, no_data

__all__ = ["DELIVERY_PLOT", "plot_delivery", "write_delivery_plots"]

DELIVERY_PLOT = "delivery.png"


def plot_delivery(delivery: Delivery, timeline: list[tuple[float, str]],
                  name: str = "run") -> Figure:
    """Propagation (p50, p99) and delivered fractions per slot, against slot start time."""
    table = slot_table(delivery)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(FIGSIZE[0], 5.4), sharex=True,
                                      layout="constrained")
    cap = delivery.slot
    if len(table):
        for column, style in (("p50_s", "-"), ("p99_s", "-")):
            values = table[column].clip(upper=cap)
            top.step(table["start"], values, where="post", linestyle=style,
                     label=column.removesuffix("_s"))
        never = table[~table["p99_s"].map(math.isfinite)]
        if len(never):
            top.plot(never["start"], [cap] * len(never), "x", color="red",
                     label="p99 never (cut or down)")
        bottom.step(table["start"], table["reached"], where="post",
                    label="validators with the block in the slot")
        bottom.step(table["start"], table["assured"], where="post",
                    label="assurances to the author in time")
        if "messages" in table:
            bottom.step(table["start"], table["messages"], where="post",
                        label="extra CE messages in the slot")
    else:
        no_data(top, "no slots")
        no_data(bottom, "no slots")
    top.set(ylabel="propagation (s)", ylim=(0, cap * 1.05),
            title=f"{name}: block propagation per slot")
    bottom.set(xlabel="slot start (s)", ylabel="fraction", ylim=(0, 1.05))
    for ax, labels in ((top, True), (bottom, False)):
        legend(ax, "lower right")
        mark_events(ax, timeline, labels)
    return fig


def write_delivery_plots(run_dir: str | Path) -> list[Path]:
    """Write ``delivery.png`` into a results folder that has delivery tables."""
    out = Path(run_dir)
    delivery = load_delivery(out)
    if delivery is None:
        return []
    timeline: list[tuple[float, str]] = []
    name = out.name
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        name = summary.get("name", name)
        timeline = [(float(e["at"]), str(e["label"])) for e in summary.get("timeline", [])]
    fig = plot_delivery(delivery, timeline, name)
    fig.savefig(out / DELIVERY_PLOT, dpi=100)
    plt.close(fig)
    return [out / DELIVERY_PLOT]
