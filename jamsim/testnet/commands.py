"""``jamsim testnet up|status|logs|down|build`` and ``jamsim keys`` (typer).

The scenario contributor mounts ``testnet_app`` and ``keys_command`` in
``jamsim/cli.py``.  Docker/Swarm backends are imported lazily so a plain local
install never touches the docker SDK.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from jamsim.core.errors import UsageError
from jamsim.testnet.base import NodeStatus, TestnetBackend, TestnetError, TestnetSpec, full_mesh
from jamsim.testnet.keys import KeysFileError, generate_keys, load_keys, write_keys

testnet_app = typer.Typer(help="Start, inspect and tear down real-process testnets.")


class BackendName(StrEnum):
    local = "local"
    docker = "docker"
    swarm = "swarm"


BackendOpt = Annotated[BackendName, typer.Option("--backend", help="where nodes run")]
RunDirOpt = Annotated[Path, typer.Option("--run-dir", help="state, logs and keys of the run")]


def make_backend(name: BackendName | str, run_dir: Path | None = None) -> TestnetBackend:
    """A backend instance by name; docker/swarm modules expose ``create_backend(run_dir)``.

    ``run_dir`` lets a fresh harness attach to a testnet another one started
    (``status``, ``logs``, ``down`` after ``up --detach`` or a crash).
    """
    name = BackendName(name)
    if name is BackendName.local:
        from jamsim.testnet.local import LocalProcessBackend

        return LocalProcessBackend()
    try:
        module: Any = importlib.import_module(f"jamsim.testnet.{name.value}")
    except ImportError as exc:
        raise TestnetError(f"backend {name.value!r} is not available: {exc}") from exc
    factory = getattr(module, "create_backend", None)
    if factory is None:
        raise TestnetError(f"jamsim.testnet.{name.value} has no create_backend()")
    backend: TestnetBackend = factory(run_dir)
    return backend


@contextlib.contextmanager
def _exit_on_testnet_error() -> Iterator[None]:
    """A query that finds no testnet: its message on stderr and exit status 1, no traceback."""
    try:
        yield
    except TestnetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


def _print_status(statuses: dict[int, NodeStatus]) -> bool:
    """Print each node's peers and the verdict; True for a full mesh."""
    count = len(statuses)
    for index, status in sorted(statuses.items()):
        state = "up" if status.running else "down"
        extra = f"  error: {status.error}" if status.error else ""
        if status.traffic is not None:
            extra += f", {len(status.traffic.get('blocks', ()))} recent blocks"
        typer.echo(f"v{index}: {state}, {len(status.connected)}/{count - 1} peers{extra}")
    full = full_mesh(statuses)
    typer.echo("full mesh" if full else "not full mesh")
    return full


@testnet_app.command()
def up(
    validators: Annotated[int, typer.Argument(help="number of nodes")] = 6,
    backend: BackendOpt = BackendName.local,
    run_dir: RunDirOpt = Path(".jamsim-run"),
    keys: Annotated[Path | None, typer.Option(help="a `jamsim keys` file")] = None,
    seed: int = 0,
    base_port: Annotated[int, typer.Option(
        help="first UDP port (node i listens on base+i, the collector on base+V); "
             "keep the range below the kernel's ephemeral ports (32768 and up)")] = 20000,
    policy: str = "jamnp-s",
    detach: Annotated[bool, typer.Option(help="leave nodes running; stop with `down`")] = False,
    wait: Annotated[float, typer.Option(help="seconds to wait for full mesh")] = 60.0,
    slot: Annotated[
        float | None,
        typer.Option(help="send JAM slot traffic with slots of this many seconds (UP 0 "
                     "announcements, CE 128 block fetches, CE 141 assurances); off if unset"),
    ] = None,
) -> None:
    """Start a testnet, wait for full mesh, then (unless --detach) run until Ctrl-C."""
    traffic = None
    if slot is not None:
        from jamsim.traffic.config import TrafficConfig

        try:
            traffic = TrafficConfig(slot=slot, assurance_lead=min(2.0, slot / 3), first_slot=1)
        except UsageError as exc:
            raise typer.BadParameter(str(exc)) from exc
    spec = TestnetSpec(
        validators=validators,
        keys_file=keys,
        seed=seed,
        base_port=base_port,
        policy=policy,
        run_dir=run_dir,
        traffic=traffic,
    )
    tn = make_backend(backend, run_dir)
    try:
        tn.build()
        tn.up(spec)
        deadline = time.monotonic() + wait
        statuses = tn.status()
        while not full_mesh(statuses) and time.monotonic() < deadline:
            time.sleep(0.5)
            statuses = tn.status()
        _print_status(statuses)
        if detach and hasattr(tn, "detach"):
            tn.detach()
            flag = "" if backend is BackendName.local else f" --backend {backend.value}"
            typer.echo(f"detached; `jamsim testnet down{flag} --run-dir {run_dir}` stops it")
            return
        typer.echo("running; Ctrl-C stops the testnet")
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    except (TestnetError, KeysFileError) as exc:
        tn.down()
        raise typer.BadParameter(str(exc)) from exc
    tn.down()


@testnet_app.command()
def status(
    backend: BackendOpt = BackendName.local, run_dir: RunDirOpt = Path(".jamsim-run")
) -> None:
    """Per-node connected peers of a running (detached) testnet; exit code 1 unless
    every node is up and the mesh is full (so scripts can wait on it)."""
    from jamsim.testnet.local import status_run_dir

    with _exit_on_testnet_error():
        full = _print_status(status_run_dir(run_dir) if backend is BackendName.local
                             else make_backend(backend, run_dir).status())
    if not full:
        raise typer.Exit(1)


FOLLOW_POLL = 0.25
"""Seconds between reads of a followed log."""


def tail_lines(text: str, count: int | None) -> str:
    """The last ``count`` lines of ``text`` (all of it for None)."""
    if count is None:
        return text
    lines = text.splitlines(keepends=True)
    return "".join(lines[-count:]) if count else ""


def follow_log(read: Callable[[], str | None], write: Callable[[str], None],
               already: int, poll: float = FOLLOW_POLL) -> None:
    """Write what ``read()`` adds beyond the first ``already`` characters, as it
    grows, until ``read()`` returns None (the testnet is gone) or Ctrl-C.

    A log that shrank was truncated or replaced (a restarted node): it is
    written again from its start.
    """
    shown = already
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            text = read()
            if text is None:
                return
            if len(text) < shown:
                shown = 0
            if len(text) > shown:
                write(text[shown:])
                shown = len(text)
            time.sleep(poll)


@testnet_app.command()
def logs(
    node: Annotated[int, typer.Argument(help="validator index")],
    backend: BackendOpt = BackendName.local,
    run_dir: RunDirOpt = Path(".jamsim-run"),
    tail: Annotated[int | None, typer.Option(
        "--tail", "-n", min=0, help="print only the last N lines")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="keep printing new lines until Ctrl-C or the testnet "
        "stops")] = False,
) -> None:
    """Print a node's log (--tail N: its end; --follow: and what it writes next)."""
    with _exit_on_testnet_error():
        read = _log_reader(node, backend, run_dir)
        text = read()
    if text is None:
        typer.echo(f"{run_dir / 'logs' / f'node-{node}.log'}: no such log", err=True)
        raise typer.Exit(1)
    shown = tail_lines(text, tail)
    typer.echo(shown, nl=not follow and bool(shown) and not shown.endswith("\n"))
    if follow:
        follow_log(read, lambda chunk: typer.echo(chunk, nl=False), len(text))


def _log_reader(node: int, backend: BackendName, run_dir: Path) -> Callable[[], str | None]:
    """A function returning node ``node``'s whole log so far, or None once the
    testnet is gone (local: its state file removed by ``down``)."""
    if backend is not BackendName.local:
        tn = make_backend(backend, run_dir)
        tn.logs(node)  # a testnet that is not there raises TestnetError here

        def read_backend() -> str | None:
            try:
                return tn.logs(node)
            except TestnetError:
                return None
        return read_backend
    path = run_dir / "logs" / f"node-{node}.log"
    state = run_dir / "state.json"
    first = True  # the first read shows the log even after `down`

    def read_file() -> str | None:
        nonlocal first
        if not first and not state.exists():
            return None
        first = False
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return None
    return read_file


@testnet_app.command()
def down(
    backend: BackendOpt = BackendName.local,
    run_dir: RunDirOpt = Path(".jamsim-run"),
    all_: Annotated[bool, typer.Option(
        "--all", help="docker/swarm: remove every jamsim-labelled container, service and "
        "network on this engine, whoever started them")] = False,
) -> None:
    """Stop every node a run (even a crashed harness) left behind."""
    if all_ and backend is not BackendName.local:
        from jamsim.testnet.docker_cli import remove_labelled

        containers, networks = remove_labelled()
        typer.echo(f"removed {containers} container(s) and {networks} network(s) "
                   "labelled jamsim.testnet")
        return
    if backend is not BackendName.local:
        make_backend(backend, run_dir).down()
        typer.echo(f"removed the {backend.value} testnet of {run_dir} (and labelled leftovers)")
        return
    from jamsim.testnet.local import down_run_dir

    typer.echo(f"stopped {down_run_dir(run_dir)} node process(es)")


@testnet_app.command()
def build(backend: BackendOpt = BackendName.local) -> None:
    """Prepare images/artefacts for the backend (nothing for local)."""
    make_backend(backend).build()


def keys_command(
    count: Annotated[int, typer.Argument(help="number of validators")],
    out: Annotated[Path, typer.Option("--out", help="file to write")] = Path("keys.json"),
    seed: Annotated[str, typer.Option("--seed")] = "0",
    base_port: int = 20000,
    host: str = "127.0.0.1",
    regions: Annotated[str | None, typer.Option(help="comma list, cycled")] = None,
) -> None:
    """Generate dev keys and a validator-set file (dev only: contains private seeds)."""
    seed_value: int | str = int(seed) if seed.isdigit() else seed
    try:
        document = generate_keys(
            count,
            seed=seed_value,
            host=host,
            base_port=base_port,
            regions=regions.split(",") if regions else None,
        )
        write_keys(out, document)
        load_keys(out)
    except KeysFileError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"wrote {count} validators to {out}")
