"""Whether the Docker tests may skip, decided in one place.

On a machine without an engine they skip. Where one answers, ``scripts/test.sh``
sets ``JAMSIM_REQUIRE_DOCKER=1`` and every reason to skip becomes a failure: a
suite must not go green with every Docker backend untested because the engine
check, an image build or a swarm precondition quietly failed.
"""

from __future__ import annotations

import functools
import os
from typing import NoReturn

import pytest

from jamsim.testnet.docker_cli import engine_reachable

REQUIRE_ENV = "JAMSIM_REQUIRE_DOCKER"


@functools.cache
def engine_answers() -> bool:
    """``docker info`` succeeded (asked once per session: it takes a moment)."""
    return engine_reachable()


def docker_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def skip_docker(reason: str) -> NoReturn:
    """Skip a Docker test, or fail it when Docker tests are required to run."""
    if docker_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: Docker tests must run here)", pytrace=False)
    pytest.skip(reason)
