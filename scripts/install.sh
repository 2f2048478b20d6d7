#!/usr/bin/env bash
# Install jamsim and everything it needs on a fresh Debian machine.
#   scripts/install.sh          runtime only
#   scripts/install.sh --dev    + test, lint and notebook tools
# Idempotent: a second run only checks. Uses the interpreter in $PYTHON
# (default python3); an active virtualenv is respected.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
extras="[native]"
stamp=".install-stamp"
if [[ "${1:-}" == "--dev" ]]; then
  extras="[dev,native]"
  stamp=".install-stamp-dev"
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "jamsim needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))." >&2
  echo "Install it (Debian: apt-get install python3.11) or set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
# Docker testnets need a compose tool next to the engine; install Debian's when an
# engine is reachable and neither `docker compose` nor `docker-compose` exists.
if command -v docker >/dev/null && docker info >/dev/null 2>&1 \
    && ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  echo "Installing docker-compose (apt) for Docker testnets..." >&2
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null
  else
    echo "warning: install docker-compose (Debian: sudo apt-get install docker-compose)" \
         "to use --testnet docker" >&2
  fi
fi
# The report's rendering test looks at the HTML report in a real browser: --dev
# installs Debian's headless Chromium when it is missing and we can.
if [[ "${1:-}" == "--dev" ]] && ! command -v chromium >/dev/null \
    && ! command -v chromium-browser >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing chromium (apt) for the HTML report's rendering test..." >&2
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null || true
  else
    echo "warning: install chromium (Debian: sudo apt-get install chromium) to run" \
         "the HTML report's rendering test" >&2
  fi
fi
if ! [[ -f "$stamp" && "$stamp" -nt pyproject.toml ]] || ! "$PYTHON" -c 'import jamsim' 2>/dev/null; then
  echo "Installing jamsim${extras} (pip, editable)..." >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".${extras}"
  touch "$stamp"
fi
# The compiled engine (mypyc, ~30 s): rebuilt whenever a compiled module's source
# changed; jamsim runs pure Python, only slower, if it cannot be built.
engine=$("$PYTHON" -c 'import jamsim; print(jamsim.native_status().state)')
if [[ "$engine" == "pure" || "$engine" == "stale" ]]; then
  # mypyc needs a C compiler and the interpreter's headers (Debian: gcc and, for
  # the system python, python3-dev); install them when we can.
  headers=$("$PYTHON" -c 'import os, sysconfig
print(os.path.isfile(os.path.join(sysconfig.get_path("include"), "Python.h")))')
  missing=()
  command -v gcc >/dev/null || command -v cc >/dev/null || missing+=(gcc)
  [[ "$headers" == "True" ]] || missing+=(python3-dev)
  if (( ${#missing[@]} )) && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing ${missing[*]} (apt) for the compiled engine..." >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || true
  fi
  echo "Compiling the simulator's hot modules (mypyc; engine was: $engine)..." >&2
  if ! "$PYTHON" scripts/build_native.py; then
    echo "warning: the compiled engine could not be built; jamsim runs in pure Python" \
         "(about a third slower). Install gcc, then: python scripts/build_native.py" >&2
  fi
fi
# The interoperability tests' peer (testnet/quinn-peer: quinn + rustls, Rust) is
# built with --dev wherever cargo exists; cargo rebuilds only what changed. Dev
# profile without debug info (its Cargo.toml): a clean build took 31 s on 2 cores
# against 253 s for --release, and the peer only runs a few handshakes per test.
# The first build downloads its crates from crates.io.
if [[ "${1:-}" == "--dev" ]] && command -v cargo >/dev/null; then
  echo "Building testnet/quinn-peer (cargo, dev profile) for the interoperability tests..." >&2
  if ! cargo build --locked --quiet --manifest-path testnet/quinn-peer/Cargo.toml; then
    echo "warning: testnet/quinn-peer did not build; its interoperability tests" \
         "(tests/net/test_interop_quinn.py) will fail under scripts/test.sh" >&2
  fi
fi
