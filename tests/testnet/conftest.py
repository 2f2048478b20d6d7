"""Tests marked ``docker`` need an engine: skipped without one, failed when required."""

from __future__ import annotations

import pytest

from tests.testnet.docker_env import engine_answers, skip_docker


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None and not engine_answers():
        skip_docker("no Docker engine reachable")
