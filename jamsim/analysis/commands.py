"""``jamsim report``: typer-compatible command, wired into the CLI by its owner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jamsim.analysis.report import render_report
from jamsim.analysis.run import load_run
from jamsim.core.errors import JamsimError

__all__ = ["report_command"]


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="results folders to report on")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path(
        "report.html"),
) -> None:
    """Write a self-contained HTML report (plots inlined) for one or more runs."""
    try:
        loaded = [load_run(p) for p in runs]
    except JamsimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for path, run in zip(runs, loaded, strict=True):
        if not run.complete:  # a killed or interrupted run: its tables hold what came
            typer.echo(f"note: {path} is an incomplete run ({run.incomplete_reason})",
                       err=True)
    out.write_text(render_report(loaded), encoding="utf-8")
    typer.echo(f"wrote {out} ({out.stat().st_size // 1024} KiB, {len(loaded)} run(s))")
