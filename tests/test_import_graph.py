"""The jamsim package's import graph has no cycle.

Why: a cycle between modules makes the import order matter (a module can see its
partner half-initialised), ties layers together that should stand alone (the
simulator's driver and its fidelities used to import each other), and blocks
compiling one module without the other. Only imports that run when a module is
loaded count: ``if TYPE_CHECKING:`` blocks (annotations only) and imports inside
functions (deferred on purpose) are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import jamsim

PACKAGE = Path(jamsim.__file__).resolve().parent


def module_name(root: Path, path: Path) -> str:
    """``jamsim/sim/quic/transport.py`` -> ``jamsim.sim.quic.transport``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def load_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements executed when the module loads (not in functions, not
    under ``if TYPE_CHECKING:``; both branches of other ifs and tries count)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from load_time_imports(node.body)
            yield from load_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                yield from load_time_imports(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from load_time_imports(node.body)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's own modules it imports at load time."""
    files = {module_name(root, path): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in load_time_imports(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    drop = node.level - 1 if is_package else node.level
                    anchor = anchor[:len(anchor) - drop] if drop else anchor
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import sub`` imports the submodule ``pkg.sub``.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files
                           else base for alias in node.names]
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[m1, m2, ..., m1]``, or None if the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found is not None:
                return found
    return None


def test_jamsim_imports_form_no_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert "jamsim.sim.simulation" in graph and graph["jamsim.sim.simulation"] >= {
        "jamsim.sim.fidelity", "jamsim.sim.model.transport", "jamsim.sim.quic.transport"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_fidelities_do_not_import_each_other() -> None:
    graph = import_graph(PACKAGE)
    for name, edges in graph.items():
        for own, other in (("jamsim.sim.model", "jamsim.sim.quic"),
                           ("jamsim.sim.quic", "jamsim.sim.model")):
            if name.startswith(own + ".") or name == own:
                assert not {e for e in edges if e.startswith(other)}, name


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_a_cycle_through_from_and_relative_imports(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import a\n",
        "b.py": "try:\n    import pkg.sub.c\nexcept ImportError:\n    pass\n",
    })
    assert find_cycle(import_graph(root)) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]


def test_checker_ignores_type_checking_and_deferred_imports(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "import pkg.b\n",
        "b.py": ("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from pkg.a import X\n"
                 "def later():\n    from pkg import a\n"),
    })
    graph = import_graph(root)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == set()
    assert find_cycle(graph) is None
