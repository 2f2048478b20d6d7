"""The architecture's one rule: the core and codecs do no I/O and read no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import jamsim

FORBIDDEN = {"asyncio", "simpy", "socket", "time", "selectors", "threading", "aioquic",
             "subprocess", "datetime"}
PACKAGE = Path(jamsim.__file__).parent
PURE = [PACKAGE / "core", PACKAGE / "protocol", PACKAGE / "identity.py", PACKAGE / "testing",
        PACKAGE / "links.py"]


def _modules() -> list[Path]:
    files: list[Path] = []
    for root in PURE:
        files.extend(sorted(root.rglob("*.py")) if root.is_dir() else [root])
    return files


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_packages_exist() -> None:
    assert len(_modules()) >= 6


def test_core_imports_no_io_or_clock() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imported_roots(path) & FORBIDDEN)
        for path in _modules()
        if _imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom asyncio import sleep\n")
    assert _imported_roots(bad) & FORBIDDEN == {"time", "asyncio"}
