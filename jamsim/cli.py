"""The ``jamsim`` command line.

Thin on purpose: it parses arguments, draws progress and tables with rich, and
calls :func:`jamsim.scenario.runner.run_scenario`. Exit codes: 0 no expectation
failed (an expectation the run cannot measure is printed NOT MEASURED with a
warning, and does not fail it), 1 an expectation failed, 2 the scenario or the
command line is wrong, 130 interrupted (the results folder is kept, marked incomplete).

Fast to start: importing this module loads typer and rich only. The commands
defined in other packages (``testnet``, ``keys``, ``node``, ``report``) are
mounted lazily by :class:`_LazyGroup`: their module is imported when the command
runs, never wrapped in ``try/except ImportError``, so a bug in one surfaces as
a traceback instead of silently removing the command. ``--help`` lists them
from the one-line help kept here, without importing them.
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer import _click as click  # typer >= 0.24 drives its own vendored click
from typer.core import TyperCommand, TyperGroup

from jamsim.core.errors import JamsimError

if TYPE_CHECKING:
    from rich.table import Table

    from jamsim.scenario.loader import Override
    from jamsim.scenario.schema import Scenario


@dataclass(frozen=True, slots=True)
class _LazyCommand:
    """A subcommand defined in another module, loaded when it is run.

    ``help`` is what ``jamsim --help`` lists (kept here so listing imports
    nothing); ``load`` imports the module and returns the click command.
    """

    help: str
    load: Callable[[], click.Command]


class _LazyGroup(TyperGroup):
    """The top-level group: typer's, plus the :data:`LAZY_COMMANDS`."""

    listing = False
    """True while the group's own help is formatted: lazy commands then answer
    with a stand-in carrying their one-line help, so listing imports nothing."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *LAZY_COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = LAZY_COMMANDS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self.listing:
            return TyperCommand(cmd_name, help=lazy.help)
        return lazy.load()

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    cls=_LazyGroup,
    name="jamsim",
    help="Simulate and testnet the JAMNP-S connection layer: how JAM validator networks "
         "connect, break and heal.",
    epilog="Start with `jamsim run` (the built-in quickstart), then `jamsim run "
           "scenarios/mini.yaml`. Every subcommand has --help with examples.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
# soft_wrap: an error names a file path and line; wrapping it mid-path breaks
# copy-paste and the editors' "file:line" links.
err_console = Console(stderr=True, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        from jamsim import __version__, native_status

        engine = native_status()
        console.print(f"jamsim {__version__}, engine: {engine.state} ({escape(engine.detail)})")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and which engine runs (compiled mypyc build or pure "
             "Python, and why), then exit.")] = False,
) -> None:
    """Simulate and testnet the JAMNP-S connection layer: how JAM validator networks
    connect, break and heal."""


# The arguments the scenario commands (run, validate, sweep) share, declared once so
# they read and behave the same in each command's --help.
ScenarioArgument = Annotated[str, typer.Argument(help="Scenario YAML file or built-in name.")]
SeedOption = Annotated[int | None, typer.Option(help="Override the scenario's seed.")]
QuietOption = Annotated[bool, typer.Option(help="No progress bar.")]


def _overrides(set_: list[str], seed: int | None) -> list[Override]:
    """``--set`` and ``--seed`` as overrides that remember how the user typed them, so
    an error in one names ``--set policy.max_retry=5x``, not an internal file."""
    from jamsim.scenario.loader import Override

    overrides = [Override.parse(item, "--set") for item in set_]
    if seed is not None:
        overrides.append(Override("seed", seed, f"--seed {seed}"))
    return overrides


def _exit_on_error(exc: JamsimError) -> NoReturn:
    """Print ``exc`` (it says whose fault and where) and exit 2, the usage-error code."""
    err_console.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2) from None


def _load(scenario: str, set_: list[str], seed: int | None) -> Scenario:
    """The scenario with ``--set``/``--seed`` applied, or exit 2 naming file, line and field."""
    from jamsim.scenario.loader import load_scenario

    try:
        return load_scenario(scenario, _overrides(set_, seed))
    except JamsimError as exc:
        _exit_on_error(exc)


def _check_sweep_points(scenario: str, params: list[str]) -> None:
    """Validate every grid point before any worker starts: a bad ``--param`` value
    is then reported as typed (``--param policy.max_retry=8x``), with exit code 2,
    instead of failing inside a worker process."""
    from jamsim.scenario.loader import Override, load_scenario
    from jamsim.sweep import parse_param

    axes = []
    for text in params:
        key, values = parse_param(text)
        typed = text.partition("=")[2].split(",")
        axes.append([Override(key, value, f"--param {key}={raw}")
                     for value, raw in zip(values, typed, strict=True)])
    for point in itertools.product(*axes):
        load_scenario(scenario, point)


@app.command(
    epilog="Examples:\n\n"
           "  jamsim run                                   # built-in quickstart\n\n"
           "  jamsim run scenarios/mini.yaml --out runs/mini\n\n"
           "  jamsim run scenarios/mini.yaml --set policy.preset=jamixir --set seed=3\n\n"
           "The results folder holds scenario.yaml, events.parquet, connectivity.parquet, "
           "summary.json and PNG plots; open it with jamsim.analysis.load_run().")
def run(
    scenario: ScenarioArgument = "quickstart",
    out: Annotated[Path | None, typer.Option(
        help="Results folder (default: runs/<name>-<timestamp>/).")] = None,
    testnet: Annotated[str | None, typer.Option(
        help="Run on real nodes instead of simulating: local | docker | swarm.")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help="Override a scenario field, e.g. --set policy.max_retry=8s.")] = [],  # noqa: B006
    seed: SeedOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run a scenario (simulated by default), print a summary, write a results folder."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from jamsim.scenario.runner import run_scenario

    loaded = _load(scenario, set_, seed)
    progress_bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(),
        TextColumn("{task.fields[sim]}"), TextColumn("{task.fields[links]}"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
        console=err_console, disable=quiet, transient=False)
    task = progress_bar.add_task("simulating" if testnet is None else f"testnet {testnet}",
                                 total=100, sim="", links="", rate="")
    import time

    started = time.perf_counter()

    def on_progress(now: float, until: float, sample: Any, events: int) -> None:
        elapsed = max(1e-9, time.perf_counter() - started)
        links = (f"links {sample.links_usable}/{sample.links_expected}"
                 + (f" ({sample.links_stale} stale)" if sample.links_stale else "")
                 if sample else "")
        progress_bar.update(task, completed=100 * now / until,
                            sim=f"t={now:,.0f}/{until:,.0f}s", links=links,
                            rate=f"{events / elapsed:,.0f} ev/s")

    try:
        with progress_bar:
            result = run_scenario(loaded, out_dir=out, testnet=testnet,
                                  progress=on_progress)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: the results folder keeps what was "
                          "recorded and is marked incomplete")
        raise typer.Exit(130) from None
    except JamsimError as exc:
        _exit_on_error(exc)
    _print_summary(result.summary, result.out_dir)
    raise typer.Exit(0 if result.passed else 1)


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    from rich.table import Table

    metrics = summary["metrics"]
    table = Table(title=f"{summary['name']}: {summary['validators']} validators, "
                        f"policy {summary['policy']}, {summary['simulated_s']:.0f}s "
                        f"{'on ' + summary['runtime'] if 'runtime' in summary else 'simulated'}"
                        f" in {summary['wall_s']:.1f}s"
                        f"{' (' + summary['engine'] + ' engine)' if 'engine' in summary else ''}")
    table.add_column("metric")
    table.add_column("value", justify="right")

    def fmt(value: Any) -> str:
        return "never" if value is None else (f"{value:.2f}" if isinstance(value, float)
                                              else str(value))

    table.add_row("time to full mesh (s)", fmt(metrics["time_to_full_mesh_s"]))
    for label, took in metrics["time_to_full_mesh_after_s"].items():
        table.add_row(f"  full mesh after {label} (s)", fmt(took))
    table.add_row("final links usable", f"{metrics['final_links_usable']}/"
                                        f"{metrics['final_links_expected']}")
    table.add_row("stale links (final / max)", f"{metrics['final_links_stale']} / "
                                               f"{metrics['max_links_stale']}")
    table.add_row("reconnections (p50 / p99 s)", f"{metrics['reconnections']} "
                  f"({fmt(metrics['reconnect_p50_s'])} / {fmt(metrics['reconnect_p99_s'])})")
    table.add_row("never repaired", str(metrics["unrepaired_disconnections"]))
    table.add_row("max duplicate pairs", str(metrics["max_duplicates"]))
    _add_delivery_rows(table, metrics.get("delivery"))
    console.print(table)
    marks = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]",
             "not measured": "[yellow]NOT MEASURED[/]"}
    for verdict in summary["expectations"]:
        outcome = verdict.get("outcome") or ("pass" if verdict["passed"] else "fail")
        console.print(f"{marks[outcome]} {verdict['expectation']}: {verdict['detail']}")
    for warning in summary.get("warnings", []):
        err_console.print(f"[yellow]warning[/]: {escape(warning)}")
    console.print(f"results: [bold]{out_dir}[/]")


def _add_delivery_rows(table: Table, delivery: dict[str, Any] | None) -> None:
    """Block propagation and assurance delivery (runs with slot traffic)."""
    from jamsim.analysis.delivery import summary_rows

    for name, value in summary_rows(delivery):
        table.add_row(name, value)


@app.command(epilog="Examples:\n\n"
                    "  jamsim validate scenarios/mini.yaml\n\n"
                    "  jamsim validate scenarios/mini.yaml --set policy.max_retry=8s "
                    "--set validators.count=12\n\n"
                    "Exit code 0 when valid, 2 with every problem listed (file:line: field: "
                    "message) when not.")
def validate(
    scenario: ScenarioArgument,
    set_: Annotated[list[str], typer.Option(
        "--set", help="Check with a field overridden, as `jamsim run --set` would "
                      "run it, e.g. --set policy.max_retry=8s.")] = [],  # noqa: B006
    seed: SeedOption = None,
) -> None:
    """Check a scenario file without running it; errors name file, line and field."""
    loaded = _load(scenario, set_, seed)
    console.print(f"[green]ok[/]: {loaded.name}, {loaded.validators.count} validators, "
                  f"{len(loaded.timeline)} timeline entries, {len(loaded.expect)} expectations")


@app.command(epilog="Example: jamsim schema > scenario.schema.json  (point your editor's "
                    "YAML language server at it)")
def schema() -> None:
    """Print the scenario JSON Schema, for editor completion and validation."""
    from jamsim.scenario.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command(
    epilog="Examples:\n\n"
           "  jamsim sweep scenarios/quickstart.yaml --param policy.max_retry=8s,16s,32s "
           "--seeds 10\n\n"
           "  jamsim sweep scenarios/mini.yaml --param policy.preset=jamixir,jamnp-s "
           "--dask tcp://scheduler:8786 --out runs/presets\n\n"
           "Writes one folder per grid point plus sweep.parquet and sweep.csv into --out "
           "(default: a fresh runs/sweep-<name>-<time>/; an --out that already holds "
           "files is refused, so two sweeps never mix). Exit code 0 when every point "
           "passed its expectations, 1 when any failed or crashed (the table is still "
           "written), 2 for a bad scenario or option. --dask needs "
           "pip install 'jamsim[dask]'.")
def sweep(
    scenario: ScenarioArgument,
    param: Annotated[list[str], typer.Option(
        help="key=v1,v2,... ; repeat for a grid over several fields.")] = [],  # noqa: B006
    seeds: Annotated[int, typer.Option(
        min=1, help="Seeds per grid point (0..N-1); at least 1.")] = 1,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Local worker processes (default: one per core).")] = None,
    dask: Annotated[str | None, typer.Option(
        help="Run on a Dask distributed scheduler at this address instead.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the sweep, new or empty (default: runs/sweep-<name>-<time>/).")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Run a scenario over a grid of overrides and seeds, in parallel; one table out."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from jamsim.sweep import check_out_dir, default_out_dir, parse_param, require_dask, run_sweep

    folder = out if out is not None else default_out_dir(scenario)
    bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("points"), TextColumn("{task.fields[failed]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   console=err_console, disable=quiet)
    task = bar.add_task("sweep", total=None, failed="")
    failed: list[dict[str, Any]] = []

    def on_point(row: dict[str, Any]) -> None:
        if not row["passed"]:
            failed.append(row)
            why = row.get("error") or "an expectation failed"
            bar.console.print(f"[red]point {row['point']} failed[/]: {escape(str(why))} "
                              f"({row['out_dir']})")
        bar.update(task, advance=1,
                   failed=f"[red]{len(failed)} failed[/]" if failed else "0 failed")

    try:
        if dask is not None:
            require_dask()
        check_out_dir(folder)
        _check_sweep_points(scenario, param)
        params = dict(parse_param(p) for p in param)
        with bar:
            table = run_sweep(scenario, params, seeds=seeds, workers=workers,
                              dask_address=dask, out_dir=folder, on_point=on_point,
                              on_start=lambda total: bar.update(task, total=total))
    except JamsimError as exc:
        _exit_on_error(exc)
    shown = [c for c in table.columns if c in {"point", "seed", "passed",
             "time_to_full_mesh_s", "reconnect_p99_s", *dict.fromkeys(
                 k for k in (p.partition("=")[0] for p in param))}]
    console.print(table[shown].to_string(index=False))
    console.print(f"table: [bold]{folder / 'sweep.parquet'}[/] (and sweep.csv)")
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(table)} points failed[/]")
        raise typer.Exit(1)


TESTNET_EXAMPLES = {
    "testnet":
        "Examples:\n\n"
        "  jamsim testnet up 6 --detach --run-dir runs/tn\n\n"
        "  jamsim testnet status --run-dir runs/tn\n\n"
        "  jamsim testnet down --run-dir runs/tn\n\n"
        "To play a scenario's timeline on real nodes: jamsim run FILE --testnet local.",
    "up":
        "Examples:\n\n"
        "  jamsim testnet up 6 --detach --run-dir runs/tn\n\n"
        "  jamsim testnet up 4 --policy jamixir --base-port 43000\n\n"
        "  jamsim keys 16 --out keys.json\n\n"
        "  jamsim testnet up 16 --keys keys.json --backend docker --detach\n\n"
        "Prints each node's peer count once the mesh is full (or --wait runs out). "
        "With --detach it returns and the nodes keep running; without it, Ctrl-C "
        "stops them.",
    "status":
        "Examples:\n\n"
        "  jamsim testnet status --run-dir runs/tn\n\n"
        "  jamsim testnet status --backend docker --run-dir runs/tn\n\n"
        "Give the --backend and --run-dir the testnet was started with. Exit code 0 "
        "for a full mesh, 1 otherwise (a node down or a pair not connected).",
    "logs":
        "Examples:\n\n"
        "  jamsim testnet logs 0 --run-dir runs/tn\n\n"
        "  jamsim testnet logs 2 --tail 20 --follow --run-dir runs/tn\n\n"
        "  jamsim testnet logs 3 --backend docker --run-dir runs/tn\n\n"
        "NODE is the validator index (0 is v0). --follow prints new lines until Ctrl-C "
        "or until the testnet is taken down.",
    "down":
        "Examples:\n\n"
        "  jamsim testnet down --run-dir runs/tn\n\n"
        "  jamsim testnet down --backend docker --run-dir runs/tn\n\n"
        "  jamsim testnet down --backend docker --all\n\n"
        "Works after a crashed or Ctrl-C'd harness too; --all removes every "
        "jamsim-labelled container and network on the engine.",
    "build":
        "Examples:\n\n"
        "  jamsim testnet build --backend docker\n\n"
        "  jamsim testnet build --backend swarm\n\n"
        "Builds the node image; `up` builds it too when needed (nothing to do for local).",
}
"""Epilogs for ``jamsim testnet`` and its subcommands (the commands live in
jamsim/testnet/commands.py; their help examples are kept with the other
commands' examples, here)."""


def _single(name: str, module: str, attr: str, epilog: str) -> Callable[[], click.Command]:
    """Loader of a one-function command ``module.attr`` registered as ``name``."""
    def load() -> click.Command:
        function = getattr(importlib.import_module(module), attr)
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name, epilog=epilog)(function)
        command = typer.main.get_command(single)
        command.name = name
        return command
    return load


def _load_testnet() -> click.Command:
    from jamsim.testnet.commands import testnet_app

    for info in testnet_app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        if info.epilog is None and name in TESTNET_EXAMPLES:
            info.epilog = TESTNET_EXAMPLES[name]
    testnet_app.info.name = "testnet"
    testnet_app.info.help = LAZY_COMMANDS["testnet"].help
    testnet_app.info.epilog = TESTNET_EXAMPLES["testnet"]
    return typer.main.get_group(testnet_app)


LAZY_COMMANDS: dict[str, _LazyCommand] = {
    "keys": _LazyCommand(
        "Generate dev keys and a validator-set file (dev only: contains private seeds).",
        _single("keys", "jamsim.testnet.commands", "keys_command",
                "Example: jamsim keys 16 --out keys.json")),
    "testnet": _LazyCommand(
        "Start, inspect and tear down real-node testnets (local processes, docker, swarm).",
        _load_testnet),
    "node": _LazyCommand(
        "Run one JAMNP-S node until SIGINT/SIGTERM, then shut down cleanly.",
        _single("node", "jamsim.net.commands", "node_command",
                "Example: jamsim node --keys keys.json --index 0")),
    "report": _LazyCommand(
        "Write a self-contained HTML report (plots inlined) for one or more runs.",
        _single("report", "jamsim.analysis.commands", "report_command",
                "Example: jamsim report runs/quickstart-* --out report.html")),
}
"""Commands mounted lazily (see :class:`_LazyGroup`), in ``--help`` order."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
