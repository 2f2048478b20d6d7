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
PYV="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$PYV" == "3.11" ]] || { echo "host python is $PYV, need 3.11 for bookworm wheels" >&2; exit 2; }
WHEELS="$BUILD/wheels"
mkdir -p "$WHEELS"
rm -f "$WHEELS"/jamsim-*.whl
python3 -m pip wheel -q --wheel-dir "$WHEELS" "$ROOT" >&2

# The label lets `jamsim testnet build` tell a stale image from a current one.
docker build -q --build-arg BASE_IMAGE="$BASE_TAG" \
    --label "jamsim.source=${JAMSIM_SOURCE_DIGEST:-unknown}" \
    -f "$HERE/Dockerfile" -t "$NODE_TAG" "$BUILD" >&2
echo "$NODE_TAG"
