"""README's "Layout" table matches the tree: every path it names exists, and every
jamsim package and top-level module is named (a newcomer's map must not lie)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_paths(readme: str) -> set[str]:
    """Backquoted paths in the first column of the table under ``## Layout``."""
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    paths: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 2:
            paths.update(re.findall(r"`([^`]+)`", cells[1]))
    return paths


def test_layout_table_names_existing_paths_only() -> None:
    paths = layout_paths((ROOT / "README.md").read_text())
    assert "jamsim/sim/" in paths
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []


def test_layout_table_names_every_package_and_module() -> None:
    paths = layout_paths((ROOT / "README.md").read_text())
    package = ROOT / "jamsim"
    expected = {f"{p.parent.relative_to(ROOT).as_posix()}/" for p in package.rglob("__init__.py")
                if p.parent != package}
    expected |= {f"jamsim/{p.name}" for p in package.glob("*.py")
                 if p.name not in ("__init__.py", "__main__.py")}
    assert sorted(expected - paths) == []


def test_layout_paths_reads_only_the_first_column() -> None:
    readme = ("# x\n## Layout\n| path | what |\n| --- | --- |\n"
              "| `a/` | not `b/` |\n## Next\n| `c/` | x |\n")
    assert layout_paths(readme) == {"a/"}
