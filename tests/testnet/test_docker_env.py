"""The Docker skip turns into a failure when Docker tests are required."""

from __future__ import annotations

import pytest

from tests.testnet.docker_env import REQUIRE_ENV, skip_docker


def test_skips_when_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no engine"):
        skip_docker("no engine")


def test_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"no engine.*{REQUIRE_ENV}=1"):
        skip_docker("no engine")


def test_every_docker_module_is_marked() -> None:
    """A Docker test module without the marker would skip (or fail) on its own
    terms, outside the required-Docker rule: the marker is what enforces it."""
    from tests.testnet import test_docker, test_image, test_swarm

    for module in (test_docker, test_image, test_swarm):
        assert module.pytestmark.name == "docker", module.__name__
