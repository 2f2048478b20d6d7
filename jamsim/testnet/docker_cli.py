"""Thin, checked wrappers around the docker and compose command-line tools.

Why the CLI and not the Python SDK: the compose backend needs ``docker-compose``
(or the ``docker compose`` plugin) anyway, and the CLI gives the same behaviour a
user sees when they debug a testnet by hand. Every call has a timeout and turns
failures into :class:`TestnetError` naming the command and docker's own message.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from collections.abc import Sequence

from jamsim.testnet.base import TestnetError

__all__ = ["LABEL", "compose_command", "docker", "engine_reachable", "remove_labelled"]

LABEL = "jamsim.testnet"
"""Label on every container, service and network jamsim starts (value: project name)."""


def docker(*args: str, timeout: float = 120.0, check: bool = True,
           stdin: str | None = None, with_stderr: bool = False) -> str:
    """Run ``docker ARGS``; return stdout. Raise TestnetError on failure if ``check``.

    ``with_stderr`` appends stderr (``docker logs`` replays a container's stderr there).
    """
    if shutil.which("docker") is None:
        raise TestnetError("the docker CLI is not installed (Debian: apt-get install docker.io)")
    try:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True,
                              timeout=timeout, check=False, input=stdin)
    except subprocess.TimeoutExpired as exc:
        raise TestnetError(f"`docker {' '.join(args)}` timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        raise TestnetError(f"`docker {' '.join(args[:3])}...` failed: {message}")
    return proc.stdout + proc.stderr if with_stderr else proc.stdout


def engine_reachable() -> bool:
    """True when a Docker engine answers (``docker info``)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30,
                              check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@functools.cache
def compose_command() -> tuple[str, ...]:
    """``docker compose`` (v2 plugin) if present, else ``docker-compose`` (v1)."""
    if shutil.which("docker") is not None and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ("docker", "compose")
    if shutil.which("docker-compose") is not None:
        return ("docker-compose",)
    raise TestnetError("neither `docker compose` nor `docker-compose` is installed "
                       "(Debian: apt-get install docker-compose)")


def compose(project: str, compose_file: str, *args: str, timeout: float = 300.0) -> str:
    """Run a compose subcommand for ``project`` defined by ``compose_file``."""
    argv = [*compose_command(), "-p", project, "-f", compose_file, *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TestnetError(f"`{' '.join(argv)}` timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise TestnetError(f"`{' '.join(argv[:6])}...` failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _ids(kind: Sequence[str], label: str) -> list[str]:
    out = docker(*kind, "--filter", f"label={label}", "--format", "{{.ID}}", check=False)
    return [line for line in out.split() if line]


def remove_labelled(project: str | None = None) -> tuple[int, int]:
    """Remove containers, services and networks labelled by jamsim (one project or all).

    The last line of defence of cleanup: works from a fresh process, after the
    harness that started them has crashed. Returns (containers, networks) removed.
    """
    label = f"{LABEL}={project}" if project else LABEL
    services = _ids(("service", "ls"), label) if _swarm_active() else []
    if services:
        docker("service", "rm", *services, check=False)
    containers = _ids(("ps", "-a"), label)
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    networks = _ids(("network", "ls"), label)
    removed_networks = 0
    for network in networks:
        # A network still has endpoints for a moment after its containers went.
        for _ in range(20):
            if docker("network", "rm", network, check=False, timeout=30) != "" or \
                    network not in _ids(("network", "ls"), label):
                removed_networks += 1
                break
            time.sleep(0.25)  # bounded retry while the engine detaches endpoints
    return len(containers), removed_networks


def _swarm_active() -> bool:
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=False).strip()
    return state == "active"
