"""The lifecycle and impairment logic every backend shares, on an in-memory stand-in.

The stand-in starts no process: its "nodes" are indices, and its control
channel records each request, so the shared skeleton (tear-down on a failed
``up``, the state file, rules kept in force and replayed on restart) is tested
here without sockets or timing; the real backends' own tests cover the rest.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from jamsim.testnet.backend import NodeBackend
from jamsim.testnet.base import Heal, Kill, Partition, Pause, Restart
from jamsim.testnet.base import TestnetError as BackendError
from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.container import ContainerBackend
from jamsim.testnet.local import LocalProcessBackend
from jamsim.testnet.shared import read_state_file


class StandIn(NodeBackend):
    """Nodes as indices; Kill and Restart only; control requests recorded."""

    backend_name = "stand-in"

    def __init__(self, fail: BaseException | None = None) -> None:
        super().__init__(control_timeout=1.0)
        self.fail = fail
        self.live: set[int] = set()
        self.sent: list[tuple[int, dict[str, Any]]] = []
        self.removals = 0

    def _is_up(self) -> bool:
        return bool(self.live)

    def _clear_leftovers(self, spec: Spec) -> None:
        """Nothing is ever left over in memory."""
        return None

    def _deploy(self, spec: Spec, run_dir: Path) -> None:
        self.addresses = {i: (f"10.0.0.{i}", 4000) for i in range(spec.validators)}
        self.live = set(range(spec.validators))
        self._write_state()
        if self.fail is not None:
            raise self.fail

    def _remove_nodes(self) -> None:
        self.removals += 1
        self.live.clear()

    def _state_fields(self) -> dict[str, Any]:
        return {"live": sorted(self.live)}

    def _control_host(self, index: int) -> str:
        return self.addresses[index][0]

    def _control(self, index: int, request: dict[str, Any]) -> dict[str, Any]:
        self.sent.append((index, request))
        return {"status": {"connected": []}}

    def _running(self, index: int) -> bool:
        return index in self.live

    def logs(self, node: int) -> str:
        return ""

    def _kill(self, op: Kill) -> None:
        self.live.discard(op.node)

    def _restart(self, op: Restart) -> None:
        self.live.add(op.node)
        self._replay_rules(op.node)


def _spec(tmp_path: Path, n: int = 3) -> Spec:
    return Spec(validators=n, run_dir=tmp_path / "run")


def test_container_backends_share_the_node_backend_not_the_local_one() -> None:
    assert issubclass(ContainerBackend, NodeBackend)
    assert issubclass(LocalProcessBackend, NodeBackend)
    assert not issubclass(ContainerBackend, LocalProcessBackend)


def test_a_failed_up_tears_down_and_restores_signal_handlers(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    backend = StandIn(fail=BackendError("deploy failed"))
    with pytest.raises(BackendError, match="deploy failed"):
        backend.up(_spec(tmp_path))
    assert backend.removals == 1 and not backend.live
    assert signal.getsignal(signal.SIGTERM) == before


def test_up_records_state_and_refuses_a_second_up(tmp_path: Path) -> None:
    with StandIn() as backend:
        backend.up(_spec(tmp_path))
        state = read_state_file(tmp_path / "run")
        assert state is not None
        assert (state["backend"], state["live"]) == ("stand-in", [0, 1, 2])
        with pytest.raises(BackendError, match="already up"):
            backend.up(_spec(tmp_path))
    assert backend.removals == 1


def test_rules_in_force_are_replayed_to_a_restarted_node(tmp_path: Path) -> None:
    with StandIn() as backend:
        backend.up(_spec(tmp_path))
        backend.apply(Kill(2))
        backend.apply(Partition(((0,), (1, 2))))
        assert [i for i, _ in backend.sent] == [0, 1]  # node 2 is down: nothing sent
        backend.sent.clear()
        backend.apply(Restart(2))
        assert backend.sent[0] == (2, {"op": "ping"})
        assert backend.sent[1] == (2, {"op": "partition", "addrs": [["10.0.0.0", 4000]]})
        backend.apply(Heal())
        backend.sent.clear()
        backend.apply(Restart(2))
        assert backend.sent == []  # healed: no rule left to replay


def test_process_faults_a_backend_does_not_implement_are_refused(tmp_path: Path) -> None:
    with StandIn() as backend:
        with pytest.raises(BackendError, match="not up"):
            backend.apply(Pause(0))
        backend.up(_spec(tmp_path))
        with pytest.raises(BackendError, match="unsupported op Pause"):
            backend.apply(Pause(0))
