"""The node command lines each backend builds: the contract with ``jamsim node``.

Pure functions, no engine needed. Pinned exactly because all three backends
build them from shared pieces, and a wrong order or a lost option would only
show as nodes that silently run with the default policy or report nowhere.
"""

from __future__ import annotations

from pathlib import Path

from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.docker import compose_document
from jamsim.testnet.local import node_argv
from jamsim.testnet.swarm import stack_document

SPEC = Spec(validators=2, policy="jamixir", run_dir=Path("runs/x"),
            policy_overrides={"max_retry": 4.0, "idle_timeout": None})
TAIL = ["--policy", "jamixir", "--policy-set", "idle_timeout=none",
        "--policy-set", "max_retry=4.0", "--telemetry", "10.0.0.1:9000"]


def test_local_node_argv() -> None:
    argv = node_argv(("node",), SPEC, Path("k.json"), 1, 41001, ("10.0.0.1", 9000))
    assert argv == ["node", "--keys", "k.json", "--index", "1", "--control-port", "41001",
                    *TAIL]
    assert "--telemetry" not in node_argv(("node",), SPEC, Path("k.json"), 1, 41001, None)


def test_compose_service_command() -> None:
    document = compose_document(SPEC, "p", "net", ["10.1.0.10", "10.1.0.11"], Path("k.json"),
                                ("10.0.0.1", 9000))
    assert document["services"]["v1"]["command"] == [
        "--keys", "/jamsim/keys.json", "--index", "1", "--control-port", "40000",
        "--control-host", "0.0.0.0", *TAIL]


def test_swarm_service_command_resolves_task_names() -> None:
    document = stack_document(SPEC, "p", "net", "p-keys", ("10.0.0.1", 9000),
                              control_base=22000)
    service = document["services"]["v1"]
    assert service["command"] == [
        "--keys", "/jamsim/keys.json", "--index", "1", "--control-port", "40000",
        "--control-host", "0.0.0.0", "--resolve-hosts", "120", *TAIL]
    assert service["configs"] == [{"source": "p-keys", "target": "/jamsim/keys.json"}]
    assert service["ports"][0]["published"] == 22001
