"""What every testnet backend writes and reads the same way, as plain functions.

The run's state file (one atomic writer, one reader), the index from the names
a node's status gives its peers to validator indices, the ``jamsim node``
options that do not depend on where a node runs, and the reading of a node's
status answer. Local processes, compose and swarm all go through these, so a
fresh harness (``jamsim testnet status|down``) reads what any of them wrote,
and a node is told its policy, telemetry and traffic in one way everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jamsim.identity import ValidatorSet, alt_name
from jamsim.testnet.base import NodeStatus, TestnetError, TestnetSpec

STATE_FILE = "state.json"
"""The state file's name inside the run folder."""


def write_state_file(run_dir: Path, state: dict[str, Any]) -> None:
    """Replace ``run_dir``'s state file in one step (write a temporary file, then rename).

    Why atomic: ``jamsim testnet down`` from another process may read it at any
    moment, also while a crashing harness is writing it; it must see the old
    state or the new one, never half a file.
    """
    path = Path(run_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def read_state_file(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir``'s state file, or None when there is none.

    Raises :class:`TestnetError` naming the file when it exists but is not a
    JSON object (every backend reads it through here, so they agree on that).
    """
    path = Path(run_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TestnetError(f"{path}: unreadable state file: {exc}") from exc
    if not isinstance(state, dict):
        raise TestnetError(f"{path}: unreadable state file: not a JSON object")
    return state


def key_index(vset: ValidatorSet) -> dict[str, int]:
    """Validator index by each name a node's status may give a peer: hex key and alt-name."""
    names = {info.key.hex(): info.index for info in vset}
    names.update({alt_name(info.key): info.index for info in vset})
    return names


def node_status(index: int, body: Mapping[str, Any], names: Mapping[str, int]) -> NodeStatus:
    """The status of running node ``index`` from its control channel's ``status`` answer.

    ``names``: :func:`key_index` of the validator set; peers it does not know
    (or that are not names at all) are left out rather than trusted.
    """
    peers = body.get("connected", [])
    connected = frozenset(names[p] for p in peers if isinstance(p, str) and p in names)
    traffic = body.get("traffic")
    return NodeStatus(index, True, connected,
                      traffic=traffic if isinstance(traffic, dict) else None)


def node_options(spec: TestnetSpec, telemetry: tuple[str, int] | None) -> list[str]:
    """The ``jamsim node`` options every backend passes the same way: policy and telemetry."""
    options = ["--policy", spec.policy]
    for name, value in sorted(spec.policy_overrides.items()):
        options += ["--policy-set", f"{name}={'none' if value is None else value}"]
    if telemetry is not None:
        options += ["--telemetry", f"{telemetry[0]}:{telemetry[1]}"]
    return options + traffic_options(spec)


def with_traffic_start(spec: TestnetSpec) -> TestnetSpec:
    """``spec`` with slot 0 fixed to now when it sends traffic and no start was given.

    Every node, and a node restarted later, must share one slot clock, so the
    start is fixed once when the testnet comes up, not per node command line.
    """
    if spec.traffic is None or spec.traffic_start is not None:
        return spec
    return dataclasses.replace(spec, traffic_start=time.time())


def traffic_options(spec: TestnetSpec) -> list[str]:
    """``jamsim node`` options for the run's slot traffic (none when it is off)."""
    t = spec.traffic
    if t is None:
        return []
    start = spec.traffic_start if spec.traffic_start is not None else time.time()
    options = [
        "--traffic-start", repr(start), "--traffic-seed", str(spec.seed),
        "--traffic-slot", repr(t.slot), "--traffic-lead", repr(t.assurance_lead),
        "--traffic-block-size", str(t.block_size), "--traffic-first-slot", str(t.first_slot),
    ]
    if t.core_count is not None:
        options += ["--traffic-cores", str(t.core_count)]
    for extra in t.extra:
        options += ["--traffic-extra", extra.option()]
    return options
