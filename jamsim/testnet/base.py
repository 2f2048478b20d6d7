"""The interface every testnet backend shares, and the timeline-op vocabulary.

Why a Protocol plus frozen dataclasses: the scenario runner maps its timeline to
these ops once, and each backend (local processes, docker compose, swarm) only
has to interpret the same small vocabulary.  Backends own cleanup: they are
context managers, register atexit/signal handlers, and record what they started
(pidfiles / container labels) under ``spec.run_dir`` so ``down`` finds leftovers
even after the harness itself crashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from jamsim.links import LinkSpec
from jamsim.telemetry.records import EventRecord
from jamsim.traffic.config import TrafficConfig


class TestnetError(RuntimeError):
    """A testnet could not be started, driven or torn down (message says which node/why)."""


# ------------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class TestnetSpec:
    """What to start.

    ``validators``: node count; ``keys_file``: a ``jamsim keys`` file (if None the
    backend derives dev keys from ``seed``).  ``regions`` maps node index ->
    region name (missing -> "default").  ``policy``/``policy_overrides`` select a
    :class:`jamsim.core.policy.ConnectionPolicy` preset.  ``telemetry`` is the
    collector ``(host, port)`` nodes report to (None: the backend runs its own).
    ``links`` maps (src_region, dst_region) -> conditions applied at start.
    ``traffic``: JAM slot traffic the nodes send (None: none), with slot 0
    starting at Unix time ``traffic_start`` (None: when the nodes start).
    """

    validators: int
    keys_file: Path | None = None
    seed: int | str = 0
    regions: Mapping[int, str] = field(default_factory=dict)
    policy: str = "jamnp-s"
    policy_overrides: Mapping[str, float | str | bool | None] = field(default_factory=dict)
    base_port: int = 40000
    telemetry: tuple[str, int] | None = None
    links: Mapping[tuple[str, str], LinkSpec] = field(default_factory=dict)
    run_dir: Path = Path(".jamsim-run")
    name: str = "jamsim"
    traffic: TrafficConfig | None = None
    traffic_start: float | None = None

    def region_names(self) -> list[str]:
        """The region of each validator, in index order (what a keys file records)."""
        return [self.regions.get(i, "default") for i in range(self.validators)]


# ---------------------------------------------------------------------- timeline ops
# Nodes are referred to by validator index.


@dataclass(frozen=True)
class Partition:
    """Drop traffic between groups; nodes in no group form one more group.

    ``one_way``: only traffic from ``groups[0]`` to every other node is dropped
    (the reverse direction still flows).  Rules survive a node's restart.
    """

    groups: tuple[tuple[int, ...], ...]
    one_way: bool = False


@dataclass(frozen=True)
class NodeOp:
    """An op on one node, by validator index (equal only to the same op on it)."""

    node: int


@dataclass(frozen=True)
class Isolate(NodeOp):
    """Drop all traffic to and from ``node``."""


@dataclass(frozen=True)
class Heal:
    """Remove all partitions/isolations (link conditions stay)."""


@dataclass(frozen=True)
class SetLink:
    """Apply the link ``conditions`` to datagrams from nodes in ``src`` to nodes in ``dst``.

    ``symmetric`` also applies them in the opposite direction.
    """

    src: tuple[int, ...]
    dst: tuple[int, ...]
    conditions: LinkSpec
    symmetric: bool = True


@dataclass(frozen=True)
class Kill(NodeOp):
    """Hard-kill the node process (SIGKILL / container kill)."""


@dataclass(frozen=True)
class Pause(NodeOp):
    """Freeze the node (SIGSTOP / docker pause)."""


@dataclass(frozen=True)
class Unpause(NodeOp):
    """Resume a paused node (SIGCONT / docker unpause)."""


@dataclass(frozen=True)
class Restart(NodeOp):
    """Start a killed node again (or kill + start a running one) with the same identity."""


ProcessFault = Kill | Pause | Unpause | Restart
"""Ops on a node's process itself: each backend applies them its own way, they change
no impairment rule, and the harness writes a lifecycle row for each."""
TimelineOp = Partition | Isolate | Heal | SetLink | ProcessFault
ContainerOp = ProcessFault | Isolate
"""Ops a container backend carries out on the container itself, not through the
node's impairment layer: the process faults (``docker kill``/``start``,
``pause``/``unpause``) and ``Isolate`` (``docker network disconnect``). A backend
whose containers run on other hosts cannot apply them."""


@dataclass(frozen=True)
class NodeStatus:
    """One node as a backend sees it.

    ``running``: process alive and not paused; ``connected``: validator indices
    of its live peers as the node itself reports them; ``error``: why the node
    could not be asked (``connected`` is then empty); ``traffic``: the node's
    recent slot-traffic receipts when it sends traffic
    (:meth:`jamsim.net.traffic.NodeTraffic.status`).
    """

    index: int
    running: bool
    connected: frozenset[int] = frozenset()
    error: str | None = None
    traffic: Mapping[str, Any] | None = None


def full_mesh(statuses: Mapping[int, NodeStatus], nodes: set[int] | None = None) -> bool:
    """True when every node in ``nodes`` (default: all) is connected to all the others."""
    wanted = set(statuses) if nodes is None else nodes
    for index in wanted:
        status = statuses.get(index)
        if status is None or not status.running or not (wanted - {index}) <= status.connected:
            return False
    return True


@runtime_checkable
class TestnetBackend(Protocol):
    """A running (or runnable) testnet.  Use as a context manager: ``__exit__`` calls ``down``."""

    def build(self) -> None:
        """Prepare artefacts (images, venvs); no-op where nothing is needed."""

    def up(self, spec: TestnetSpec) -> None:
        """Start all nodes of ``spec`` (and a collector if ``spec.telemetry`` is None)."""

    def apply(self, op: TimelineOp) -> None:
        """Apply one timeline op now; raise :class:`TestnetError` if it cannot be applied."""

    def status(self) -> dict[int, NodeStatus]:
        """Per-node running flag and connected peers (indices)."""

    def logs(self, node: int) -> str:
        """The node's stdout/stderr so far."""

    def collect(self) -> list[EventRecord]:
        """Telemetry rows received so far from all nodes (and not yet taken)."""

    def take_records(self) -> list[EventRecord]:
        """Rows received since the last call; the backend forgets them, so a
        harness that streams them to disk keeps its memory bounded."""

    def down(self) -> None:
        """Stop everything this backend (or a previous crashed run in ``run_dir``) started.

        Idempotent; must not raise for already-gone nodes.
        """

    def __enter__(self) -> TestnetBackend: ...

    def __exit__(self, *exc: object) -> None: ...
