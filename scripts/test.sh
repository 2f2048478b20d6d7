#!/usr/bin/env bash
# Command 2 of the README: install everything (dev tools, Docker base image when an
# engine is reachable) and run the whole suite: ruff, mypy, pytest with coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
bash scripts/install.sh --dev

echo "== ruff"
"$PYTHON" -m ruff check jamsim tests benchmarks notebooks
echo "== mypy (strict on jamsim.core, jamsim.identity, jamsim.protocol)"
"$PYTHON" -m mypy jamsim

# The compiled engine must exist wherever a C compiler does: without it the
# cross-engine comparison would only skip.
if command -v gcc >/dev/null || command -v cc >/dev/null; then
  export JAMSIM_REQUIRE_NATIVE=1
fi
# Likewise the Docker tests must run wherever an engine answers: with this set, a
# Docker test that would skip (engine check, swarm precondition) fails instead.
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  export JAMSIM_REQUIRE_DOCKER=1
fi

# And the interoperability tests against quinn + rustls: install.sh --dev built
# their peer wherever cargo exists, so there a missing or stale binary fails.
if command -v cargo >/dev/null; then
  export JAMSIM_REQUIRE_INTEROP=1
fi

echo "== pytest (pure Python: coverage cannot trace compiled code)"
rm -f .coverage .coverage.*
JAMSIM_NATIVE=0 "$PYTHON" -m pytest --cov=jamsim --cov-report=term:skip-covered "$@"
echo "== pytest (compiled engine: the sans-IO core, the simulator and scenarios again)"
"$PYTHON" -c 'import os, sys, jamsim; s = jamsim.native_status(); print("engine:", s.state, "-", s.detail)
sys.exit(os.environ.get("JAMSIM_REQUIRE_NATIVE") == "1" and not s.compiled)'
"$PYTHON" -m pytest -q tests/core tests/sim tests/scenario tests/test_native.py
echo "== coverage of the sans-IO core and codecs (must be >= 90%)"
"$PYTHON" -m coverage report --include='jamsim/core/*,jamsim/protocol/*' --fail-under=90
