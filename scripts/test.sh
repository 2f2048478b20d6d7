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

echo "== pytest"
rm -f .coverage .coverage.*
"$PYTHON" -m pytest --cov=jamsim --cov-report=term:skip-covered "$@"
echo "== coverage of the sans-IO core and codecs (must be >= 90%)"
"$PYTHON" -m coverage report --include='jamsim/core/*,jamsim/protocol/*' --fail-under=90
