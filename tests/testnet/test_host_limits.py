"""ensure_neighbour_capacity only raises thresholds, in a valid order, or explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamsim.testnet.host_limits import ensure_neighbour_capacity


def knobs(tmp_path: Path, values: tuple[int, int, int]) -> Path:
    for name, value in zip(("gc_thresh1", "gc_thresh2", "gc_thresh3"), values, strict=True):
        (tmp_path / name).write_text(f"{value}\n")
    return tmp_path


def read(path: Path) -> tuple[int, ...]:
    return tuple(int((path / f"gc_thresh{i}").read_text()) for i in (1, 2, 3))


def test_defaults_are_raised_for_a_64_container_mesh(tmp_path: Path) -> None:
    path = knobs(tmp_path, (128, 512, 1024))
    assert ensure_neighbour_capacity(64, path) is None
    needed = 64 * 64 + 256
    assert read(path) == (needed, 2 * needed, 4 * needed)


def test_larger_settings_are_left_alone(tmp_path: Path) -> None:
    path = knobs(tmp_path, (100_000, 200_000, 400_000))
    assert ensure_neighbour_capacity(64, path) is None
    assert read(path) == (100_000, 200_000, 400_000)


def test_a_small_testnet_needs_nothing_beyond_what_it_checks(tmp_path: Path) -> None:
    path = knobs(tmp_path, (128, 512, 1024))
    ensure_neighbour_capacity(6, path)
    assert read(path)[2] >= 6 * 6 + 256


def test_unwritable_knobs_give_the_sysctl_command_to_run(tmp_path: Path) -> None:
    # /proc/sys/fs/file-nr is read-only even for root: reads as a small number,
    # refuses writes -- the situation of a non-root harness.
    read_only = Path("/proc/sys/fs/file-nr")
    if not read_only.exists():
        pytest.skip("needs Linux /proc")
    for name in ("gc_thresh1", "gc_thresh2", "gc_thresh3"):
        (tmp_path / name).symlink_to(read_only)
    message = ensure_neighbour_capacity(1000, tmp_path)
    assert message is not None and "sysctl -w net.ipv4.neigh.default.gc_thresh3=" in message


def test_missing_knobs_mean_nothing_to_do(tmp_path: Path) -> None:
    assert ensure_neighbour_capacity(64, tmp_path / "absent") is None
