"""Self-contained HTML report: plots embedded as base64 PNG, tables as HTML, so
a single file can be attached to an issue or a PR and opened anywhere."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from jamsim.analysis import metrics, plots
from jamsim.analysis.compare import compare
from jamsim.analysis.run import Run

__all__ = ["figure_to_img", "render_report"]

_CSS = """body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
.pass{color:green}.fail{color:#b00}img{max-width:100%}"""


def figure_to_img(fig: Figure) -> str:
    """Render and close ``fig``; return an <img> tag with the PNG inlined."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, index: bool = True) -> str:
    return str(df.to_html(index=index, float_format=lambda x: f"{x:.3f}", border=0))


def _run_section(run: Run) -> str:
    s = run.summary
    parts = [f"<h2>{html.escape(run.name)}</h2>",
             f"<p>validators {run.validators}, policy {html.escape(str(s.get('policy', '?')))}, "
             f"seed {html.escape(str(s.get('seed', '?')))}, run length {run.end_time:.1f} s, "
             f"complete: {html.escape(str(s.get('complete', '?')))}</p>"]
    verdicts = s.get("expectations") or []
    if verdicts:
        parts.append("<h3>Expectations</h3><ul>")
        for v in verdicts:
            cls = "pass" if v.get("passed") else "fail"
            parts.append(f'<li class="{cls}">{"PASS" if v.get("passed") else "FAIL"} '
                         f'{html.escape(str(v.get("expectation")))}: '
                         f'{html.escape(str(v.get("detail", "")))}</li>')
        parts.append("</ul>")
    parts.append("<h3>Timeline</h3>" + (_table(run.timeline, index=False)
                                         if len(run.timeline) else "<p>(none)</p>"))
    lat = metrics.reconnect_latency(run)
    if len(lat):
        parts.append("<h3>Reconnect latency by cause (s)</h3>"
                     + _table(lat.groupby("after")["latency"].describe()))
    for fn in plots.RUN_PLOTS.values():
        parts.append(figure_to_img(fn(run)))
    return "\n".join(parts)


def render_report(runs: Sequence[Run], labels: Sequence[str] | None = None,
                  title: str = "jamsim report") -> str:
    """The complete HTML page for ``runs``; a comparison section if several."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    if len(runs) > 1:
        body.append("<h2>Comparison</h2>" + _table(compare(runs, labels).T))
        body.append(figure_to_img(plots.plot_compare(runs, labels)))
    body.extend(_run_section(r) for r in runs)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")
