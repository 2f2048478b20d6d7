#!/usr/bin/env bash
# Command 1 of the README: install, then simulate the embedded quickstart scenario
# (6 validators bootstrapping a full mesh, a partition and a heal), print a summary
# and write a results folder under runs/. Extra arguments go to `jamsim run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${PYTHON:-python3}" -m jamsim run "$@"
