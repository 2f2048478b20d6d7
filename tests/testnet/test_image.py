"""The node image builds offline and runs jamsim inside a container (real engine)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from jamsim.testnet.image import (
    NODE_IMAGE,
    ensure_image,
    image_exists,
    image_source,
    source_digest,
)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def node_image() -> str:
    """Build (or reuse) the node image once per session; first build takes minutes."""
    return ensure_image()


def test_image_exists_after_build(node_image: str) -> None:
    assert node_image == NODE_IMAGE
    assert image_exists(node_image)


def _image_id(tag: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag],
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_image_is_labelled_with_its_sources_and_not_rebuilt_when_current(
        node_image: str) -> None:
    assert image_source(node_image) == source_digest()
    before = _image_id(node_image)
    assert ensure_image() == node_image
    assert _image_id(node_image) == before


def test_container_imports_jamsim_and_is_removed(node_image: str) -> None:
    label = f"jamsim.testnet=test-image-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--label",
            label,
            "--entrypoint",
            "python3",
            node_image,
            "-c",
            "import sys, jamsim, aioquic; print(sys.version_info[:2], jamsim.__name__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(3, 11) jamsim" in proc.stdout
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert left.stdout.strip() == ""


def test_jamsim_cli_runs_in_container(node_image: str) -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", node_image, "node", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--keys" in proc.stdout
