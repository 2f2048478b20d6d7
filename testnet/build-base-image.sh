#!/usr/bin/env bash
# Build the jamsim node image without any image registry (offline path).
#
# Why: CI machines and this dev box reach apt/PyPI but no registry, so we make
# our own Debian base with debootstrap, `docker import` it, prebuild wheels on
# the host (same CPython minor as Debian bookworm: 3.11) and `docker build`
# with --no-index.  Every stage is skipped when its output already exists, so
# re-runs are fast.  Usage: testnet/build-base-image.sh [--force]
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
BUILD="$HERE/.build"
BASE_TAG="${JAMSIM_BASE_IMAGE:-jamsim-base:bookworm}"
NODE_TAG="${JAMSIM_NODE_IMAGE:-jamsim-node:latest}"
SUITE="${JAMSIM_SUITE:-bookworm}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

# Use the mirror apt already uses on this host (deb822 or one-line format).
mirror() {
    local m
    m="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -v security | head -n1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')"
    echo "${m:-http://deb.debian.org/debian}"
}

mkdir -p "$BUILD"
# Several harnesses (parallel test sessions) may build at once: one at a time,
# the later ones then find most layers cached.
exec 9>"$BUILD/.lock"
flock 9
if [[ $FORCE == 1 ]] || ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    ROOTFS="$BUILD/rootfs"
    rm -rf "$ROOTFS"
    echo "debootstrap $SUITE from $(mirror) (slow, once)" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOTFS" "$(mirror)" >&2
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_TAG" >&2
    rm -rf "$ROOTFS"
fi

# Wheelhouse: jamsim + its runtime deps, built by the host python (must be 3.11).
# A cache that only grows.  Dependencies are resolved again only when
# pyproject.toml changed since the last time; otherwise only jamsim is rebuilt.
PYV="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$PYV" == "3.11" ]] || { echo "host python is $PYV, need 3.11 for bookworm wheels" >&2; exit 2; }
WHEELS="$BUILD/wheels"
mkdir -p "$WHEELS"
rm -f "$WHEELS"/jamsim-*.whl
if [[ -f "$WHEELS/.deps-stamp" && "$WHEELS/.deps-stamp" -nt "$ROOT/pyproject.toml" ]]; then
    python3 -m pip wheel -q --no-deps --wheel-dir "$WHEELS" "$ROOT" >&2
else
    python3 -m pip wheel -q --wheel-dir "$WHEELS" "$ROOT" >&2
    touch "$WHEELS/.deps-stamp"
fi

# Build context: deps/ (dependency wheels + the requirement list from
# pyproject.toml) changes only when dependencies do, so its layers stay cached;
# app/ is the jamsim wheel unpacked for site-packages, byte-compiled with
# unchecked hashes (containers import without compiling or stat-checking).
CONTEXT="$BUILD/context"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/deps" "$CONTEXT/app"
for wheel in "$WHEELS"/*.whl; do
    case "$(basename "$wheel")" in
        jamsim-*) python3 -m zipfile -e "$wheel" "$CONTEXT/app/" ;;
        *) ln "$wheel" "$CONTEXT/deps/" 2>/dev/null || cp "$wheel" "$CONTEXT/deps/" ;;
    esac
done
python3 -m compileall -q --invalidation-mode unchecked-hash "$CONTEXT/app/jamsim" >&2
python3 - "$ROOT/pyproject.toml" > "$CONTEXT/deps/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY

# The label lets `jamsim testnet build` tell a stale image from a current one.
docker build -q --build-arg BASE_IMAGE="$BASE_TAG" \
    --build-arg JAMSIM_SOURCE="${JAMSIM_SOURCE_DIGEST:-unknown}" \
    -f "$HERE/Dockerfile" -t "$NODE_TAG" "$CONTEXT" >&2
# The image this one replaces is now untagged: drop it unless containers use it.
docker image prune -f --filter "label=jamsim.source" >/dev/null 2>&1 || true
echo "$NODE_TAG"
