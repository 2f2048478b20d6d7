"""Make sure the jamsim node image exists locally (``jamsim testnet build``).

Why a module of its own: docker and swarm backends both need the image, and the
way to get it depends on the machine.  With a registry, the stock
``python:3.11-slim`` base works; without one (this project's CI and dev boxes)
``testnet/build-base-image.sh`` debootstraps a Debian base, imports it and
installs jamsim from a host-built wheelhouse with ``--no-index``.  The script is
the single source of truth for the offline path so humans can run it directly.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from jamsim.testnet.base import TestnetError

NODE_IMAGE = "jamsim-node:latest"
BASE_IMAGE = "jamsim-base:bookworm"
REGISTRY_BASE = "python:3.11-slim"
TESTNET_DIR = Path(__file__).resolve().parents[2] / "testnet"
BUILD_SCRIPT = TESTNET_DIR / "build-base-image.sh"


def _docker(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; raise TestnetError if it is missing."""
    if shutil.which("docker") is None:
        raise TestnetError("docker CLI not found")
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def image_exists(tag: str) -> bool:
    """True if the local engine has ``tag``."""
    return _docker("image", "inspect", tag).returncode == 0


def registry_base_available(timeout: float = 60.0) -> bool:
    """True if ``python:3.11-slim`` is local or can be pulled (registry reachable)."""
    if image_exists(REGISTRY_BASE):
        return True
    try:
        return _docker("pull", "-q", REGISTRY_BASE, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


SOURCE_LABEL = "jamsim.source"


def source_digest() -> str:
    """A digest of the jamsim sources and pyproject the image would be built from.

    Stored as a label on the node image: an image built from other sources is
    stale (a container would run old node code) and gets rebuilt.
    """
    root = TESTNET_DIR.parent
    digest = hashlib.sha256()
    files = [*sorted((root / "jamsim").rglob("*.py")), root / "pyproject.toml"]
    for path in files:
        if path.exists():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def image_source(tag: str) -> str | None:
    """The source digest label of a local image, or None if absent/unlabelled."""
    proc = _docker("image", "inspect", "--format",
                   f'{{{{ index .Config.Labels "{SOURCE_LABEL}" }}}}', tag)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def ensure_image(force: bool = False, tag: str = NODE_IMAGE) -> str:
    """Return ``tag`` after making sure it exists; build it if missing or ``force``.

    ``force`` rebuilds the node image only; the slow base is rebuilt by running
    the script with ``--force`` by hand.  Picks the base by itself: an
    already-imported offline base, else the registry base if pullable, else the
    offline debootstrap path (slow once).
    """
    digest = source_digest()
    if not force and image_source(tag) == digest:
        return tag
    if not BUILD_SCRIPT.exists():
        raise TestnetError(f"build script missing: {BUILD_SCRIPT}")
    base = BASE_IMAGE
    if not image_exists(BASE_IMAGE) and registry_base_available():
        base = REGISTRY_BASE
    env_args = [f"JAMSIM_BASE_IMAGE={base}", f"JAMSIM_NODE_IMAGE={tag}",
                f"JAMSIM_SOURCE_DIGEST={digest}"]
    cmd = ["env", *env_args, "bash", str(BUILD_SCRIPT)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    if proc.returncode != 0 or not image_exists(tag):
        raise TestnetError(f"image build failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return tag
