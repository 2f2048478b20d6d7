"""Self-contained HTML report: plots embedded as base64 PNG, tables as HTML, so
a single file can be attached to an issue or a PR and opened anywhere.

The numbers in the metric tables are read from each run's ``summary.json``
(:func:`jamsim.analysis.compare.summary_table`), the same numbers ``jamsim run``
printed, formatted for reading: counts as integers, times with a unit, "never"
for a mesh that never formed. Each run says what produced it (simulation
model/quic, testnet local/docker/swarm) and whether it ran to the end; a run cut
short is flagged wherever it appears. Plots fill the page width; PNGs a run
folder holds beyond the standard ones (delivery plots, say) are included as
they are, so new plots appear without a change here.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from jamsim.analysis import metrics, plots
from jamsim.analysis.compare import (
    completeness,
    run_kind,
    summary_metrics,
    summary_table,
    unique_labels,
)
from jamsim.analysis.run import Run

__all__ = ["extra_plots", "figure_to_img", "format_value", "render_report"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:1em;
color:#222;line-height:1.4}
h1{margin-bottom:0.2em}h2{border-bottom:2px solid #ddd;padding-bottom:0.2em;margin-top:2em}
h3{margin:1.2em 0 0.4em}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td.label,th.label{text-align:left}
tr:nth-child(even) td{background:#fafafa}
.pass{color:#17702a}.fail{color:#b00}.unmeasured{color:#9a6700}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;margin-right:6px;font-size:13px;
background:#e8eef8;color:#1a3d7c}
.badge.complete{background:#e3f4e6;color:#17702a}.badge.incomplete{background:#fbe3e3;color:#b00}
.facts{color:#555}
figure{margin:1em 0}figure img{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#666}
.cols{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}"""


def figure_to_img(fig: Figure, alt: str = "plot") -> str:
    """Render and close ``fig``; return a full-width <figure> with the PNG inlined."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return _img(buf.getvalue(), alt)


def _img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    note = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}">{note}</figure>')


def format_value(value: object, unit: str = "") -> str:
    """A metric for reading: ``2.0 s``, ``18``, ``yes``/``no``; integers never get
    decimals. A missing value reads ``never`` for unit ``until`` (seconds until
    something that did not happen), ``n/a`` otherwise (no reconnection, no p99)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "never" if unit == "until" else "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    if unit == "until":
        unit = "s"
    if isinstance(value, int | float) and unit == "count":
        return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}" + (" s" if unit == "s" else "")
    if isinstance(value, float):  # three significant digits, at most one decimal above 100
        text = f"{value:.3g}" if 1e-3 <= abs(value) < 100 or value == 0 else f"{value:,.1f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return text + (" s" if unit == "s" else "")
    return str(value)


def _rows_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                css: Sequence[str] = (), numeric: Sequence[int] | None = None) -> str:
    """An HTML table of formatted cells (escaped here). Columns in ``numeric``
    (default: all but the first) are right-aligned, the others read as text;
    ``css[i]`` is a class for row ``i``."""
    right = set(range(1, len(header)) if numeric is None else numeric)

    def align(j: int) -> str:
        return "" if j in right else ' class="label"'

    head = "".join(f"<th{align(j)}>{html.escape(h)}</th>" for j, h in enumerate(header))
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td{align(j)}>{html.escape(c)}</td>" for j, c in enumerate(row))
        cls = f' class="{css[i]}"' if i < len(css) and css[i] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _badges(run: Run) -> str:
    done = completeness(run.summary)
    state = "complete" if done == "complete" else "incomplete"
    return (f'<span class="badge">{html.escape(run_kind(run.summary))}</span>'
            f'<span class="badge {state}">{html.escape(done)}</span>')


def _facts(run: Run) -> str:
    s = run.summary
    parts = [f"{run.validators} validators", f"policy {s.get('policy', '?')}"]
    if s.get("policy_overrides"):
        parts.append("overrides " + ", ".join(f"{k}={v}" for k, v in
                                                s["policy_overrides"].items()))
    parts.append(f"seed {s.get('seed', '?')}")
    if s.get("simulated_s") is not None:
        planned = s.get("duration_s")
        reached = format_value(float(s["simulated_s"]), "s")
        parts.append(f"ran {reached}" + (f" of {format_value(float(planned), 's')}"
                                         if planned and planned != s["simulated_s"] else ""))
    if s.get("wall_s") is not None:
        parts.append(f"wall time {format_value(float(s['wall_s']), 's')}")
    if s.get("engine"):
        parts.append(f"engine {s['engine']}")
    return f'<p class="facts">{html.escape(", ".join(parts))}</p>'


def _metrics_table(run: Run) -> str:
    rows = summary_metrics(run.summary)
    if not rows:
        return "<p>(this run's summary has no metrics)</p>"
    events = [(label, value, unit) for label, value, unit in rows
              if label.startswith("event counts: ")]
    main = [row for row in rows if row not in events]
    out = _rows_table(["metric", "value"], [(label, format_value(value, unit))
                                             for label, value, unit in main])
    if events:
        out += _rows_table(["telemetry event", "count"],
                           [(label.removeprefix("event counts: "), format_value(value, unit))
                            for label, value, unit in events])
    return f'<div class="cols">{out}</div>'


def _expectations(run: Run) -> str:
    verdicts = run.summary.get("expectations") or []
    if not verdicts:
        return ""
    items = []
    for v in verdicts:
        outcome = str(v.get("outcome") or ("pass" if v.get("passed") else "fail"))
        css = {"pass": "pass", "fail": "fail"}.get(outcome, "unmeasured")
        items.append(f'<li class="{css}">{html.escape(outcome.upper())} '
                     f'{html.escape(str(v.get("expectation")))}: '
                     f'{html.escape(str(v.get("detail", "")))}</li>')
    return "<h3>Expectations</h3><ul>" + "".join(items) + "</ul>"


def _timeline(run: Run) -> str:
    if not len(run.timeline):
        return "<h3>Timeline</h3><p>(no timeline events)</p>"
    rows = [(format_value(float(e.at), "s"), str(e.action), str(e.label))
            for e in run.timeline.itertuples()]
    return "<h3>Timeline</h3>" + _rows_table(["at", "action", "what"], rows, numeric=[0])


def _latency_by_cause(run: Run) -> str:
    lat = metrics.reconnect_latency(run).dropna(subset=["latency"])
    if not len(lat):
        return ""
    rows = []
    for after, group in lat.groupby("after", sort=False):
        values = group["latency"]
        rows.append((str(after) or "before the first event", f"{len(values):,}",
                     format_value(float(values.quantile(0.5)), "s"),
                     format_value(float(values.quantile(0.99)), "s"),
                     format_value(float(values.max()), "s")))
    return ("<h3>Reconnect latency by cause</h3>"
            + _rows_table(["after", "reconnections", "median", "p99", "max"], rows)
            + "<p class=\"facts\">Per pair (a link going down and coming back); the "
              "metrics table counts each end's view.</p>")


def extra_plots(run: Run) -> list[Path]:
    """PNGs in the run folder beyond the standard per-run plots (e.g. delivery
    plots a newer runner writes), sorted by name."""
    if run.path is None:
        return []
    known = set(plots.RUN_PLOTS)
    return sorted(p for p in Path(run.path).glob("*.png") if p.name not in known)


def _run_section(run: Run, label: str) -> str:
    parts = [f"<h2>{html.escape(label)}</h2>", _badges(run), _facts(run)]
    if run.summary.get("error") and run.summary.get("complete") is False:
        why = html.escape(str(run.summary["error"]))
        parts.append(f'<p class="fail">This run stopped early ({why}); its tables and '
                     "plots cover only what was recorded.</p>")
    parts += [_expectations(run), "<h3>Metrics</h3>", _metrics_table(run),
              _timeline(run), _latency_by_cause(run), "<h3>Plots</h3>"]
    parts += [figure_to_img(fn(run), alt=name) for name, fn in plots.RUN_PLOTS.items()]
    extras = extra_plots(run)
    if extras:
        parts.append("<h3>More plots</h3>")
        parts += [_img(p.read_bytes(), p.stem, p.name) for p in extras]
    return "\n".join(p for p in parts if p)


def _comparison(runs: Sequence[Run], labels: list[str]) -> str:
    table = summary_table(runs, labels)
    header = ["metric", *labels]
    rows, css = [], []
    for metric in table.index:
        unit = str(table.at[metric, "unit"])
        values = [table.at[metric, name] for name in labels]
        cells = ["n/a" if value is pd.NA else format_value(_plain(value), unit)
                 for value in values]
        rows.append((str(metric), *cells))
        css.append("fail" if metric == "completeness" and any(
            c != "complete" for c in cells) else "")
    flagged = [name for name, run in zip(labels, runs, strict=True)
               if completeness(run.summary) != "complete"]
    note = ""
    if flagged:
        note = (f'<p class="fail">Incomplete: {html.escape(", ".join(flagged))}; their '
                "numbers cover only the part that ran, so compare them with care.</p>")
    return ("<h2>Comparison</h2>" + note + _rows_table(header, rows, css)
            + figure_to_img(plots.plot_compare(runs, labels), alt="comparison"))


def _plain(value: object) -> object:
    """A pandas cell as the plain Python value summary.json held."""
    return value.item() if hasattr(value, "item") else value


def render_report(runs: Sequence[Run], labels: Sequence[str] | None = None,
                  title: str = "jamsim report") -> str:
    """The complete HTML page for ``runs``; a comparison section if several."""
    names = unique_labels(list(labels) if labels is not None else [r.name for r in runs])
    shown = [f"{name} (incomplete)" if completeness(r.summary) != "complete" else name
             for name, r in zip(names, runs, strict=True)]
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="facts">{len(runs)} run(s): {html.escape(", ".join(shown))}</p>']
    if len(runs) > 1:
        body.append(_comparison(runs, names))
    body.extend(_run_section(r, name) for r, name in zip(runs, names, strict=True))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")
