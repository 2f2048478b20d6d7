"""What compose and swarm share before any container exists: the engine check.

Runs without an engine: PATH is emptied, so there is no docker CLI at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jamsim.testnet.base import TestnetError as BackendError
from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.container import ContainerBackend
from jamsim.testnet.docker import DockerComposeBackend
from jamsim.testnet.swarm import SwarmBackend


@pytest.mark.parametrize("backend", [DockerComposeBackend, SwarmBackend])
def test_without_docker_build_and_up_say_what_to_do(
        backend: Callable[[], ContainerBackend], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = Spec(validators=2, run_dir=tmp_path / "run")
    with pytest.raises(BackendError, match="start dockerd or use --testnet local"):
        backend().build()
    with pytest.raises(BackendError, match="start dockerd or use --testnet local"):
        backend().up(spec)
    assert not (tmp_path / "run").exists()
