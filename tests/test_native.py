"""The optional mypyc build: chosen only when it matches the sources, same results.

``scripts/test.sh`` sets ``JAMSIM_REQUIRE_NATIVE=1`` after building, so there a
missing or stale build fails instead of skipping the cross-engine comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jamsim import _native

ROOT = Path(__file__).resolve().parent.parent


def child_engine(**env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import jamsim; print(jamsim.native_status().state)"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def engine_digest(native: str, *args: str) -> tuple[str, str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "engine_digest.py"), *args],
        cwd=ROOT, env={**os.environ, "JAMSIM_NATIVE": native},
        capture_output=True, text=True, check=True,
    )
    state, _, digest = out.stdout.strip().partition(" ")
    return state, digest


@pytest.fixture
def compiled_build() -> None:
    if child_engine(JAMSIM_NATIVE="1") != "compiled":
        if os.environ.get("JAMSIM_REQUIRE_NATIVE") == "1":
            pytest.fail(f"no usable compiled build: {_native._check_build()[0].detail}")
        pytest.skip("no compiled build (python scripts/build_native.py)")


@pytest.mark.usefixtures("compiled_build")
@pytest.mark.parametrize("size_and_seed", [("40", "7"), ("120", "3")])
def test_compiled_and_pure_engines_write_byte_identical_event_logs(
    size_and_seed: tuple[str, str],
) -> None:
    compiled = engine_digest("1", *size_and_seed)
    pure = engine_digest("0", *size_and_seed)
    assert (compiled[0], pure[0]) == ("compiled", "disabled")
    assert compiled[1] == pure[1]


def test_environment_variable_forces_pure_python() -> None:
    assert child_engine(JAMSIM_NATIVE="0") == "disabled"


# ------------------------------------------------------------ build selection rules


@pytest.fixture
def fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package root with every compiled module's source and a matching build."""
    native = tmp_path / "build" / "native"
    modules = {}
    for name in _native.COMPILED_MODULES:
        source = name.replace(".", "/") + ".py"
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text(f"# {name}\n")
        extension = native / (name.replace(".", "/") + ".so")
        extension.parent.mkdir(parents=True, exist_ok=True)
        extension.write_bytes(b"")
        modules[name] = {"source": source, "sha256": _native.source_digest(tmp_path / source),
                         "file": str(extension.relative_to(native))}
    (native / "group.so").write_bytes(b"")
    manifest = {"cache_tag": _native.cache_tag(), "modules": modules,
                "group": {"name": "jamsim_native__mypyc", "file": "group.so"}}
    (native / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(_native, "PACKAGE_ROOT", tmp_path)
    monkeypatch.setattr(_native, "NATIVE_DIR", native)
    monkeypatch.setattr(_native, "MANIFEST", native / "manifest.json")
    monkeypatch.delenv("JAMSIM_NATIVE", raising=False)
    return tmp_path


def test_matching_build_is_selected_with_every_module_and_the_group(fake_tree: Path) -> None:
    status, files = _native._check_build()
    assert status.state == "compiled"
    assert set(files) == {*_native.COMPILED_MODULES, "jamsim_native__mypyc"}


def test_an_edited_source_makes_the_whole_build_stale(fake_tree: Path) -> None:
    (fake_tree / "jamsim/core/manager.py").write_text("# edited\n")
    status, files = _native._check_build()
    assert status.state == "stale" and files == {}
    assert "jamsim/core/manager.py changed" in status.detail
    assert "scripts/build_native.py" in status.detail


def test_a_build_for_another_interpreter_is_stale(fake_tree: Path) -> None:
    manifest_path = fake_tree / "build/native/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["cache_tag"] = "cpython-39-linux"
    manifest_path.write_text(json.dumps(manifest))
    assert _native._check_build()[0].state == "stale"


def test_a_missing_extension_or_bad_manifest_is_stale(fake_tree: Path) -> None:
    (fake_tree / "build/native/group.so").unlink()
    assert _native._check_build()[0].state == "stale"
    (fake_tree / "build/native/manifest.json").write_text("{not json")
    assert _native._check_build()[0].state == "stale"


def test_no_build_is_pure_and_disabled_wins(fake_tree: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAMSIM_NATIVE", "0")
    assert _native._check_build()[0].state == "disabled"
    monkeypatch.delenv("JAMSIM_NATIVE")
    (fake_tree / "build/native/manifest.json").unlink()
    assert _native._check_build()[0].state == "pure"


def test_version_option_names_the_engine() -> None:
    from typer.testing import CliRunner

    from jamsim.cli import app

    result = CliRunner().invoke(app, ["--version"], terminal_width=200)
    assert result.exit_code == 0, result.output
    status = _native.native_status()
    assert f"engine: {status.state}" in result.output
