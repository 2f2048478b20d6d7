"""Execute every notebook top to bottom (small parameters) and fail on any error.

The kernel runs the current interpreter: a kernel spec pointing at sys.executable is
written into a temporary directory, so no user-level install is needed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    return root


def test_notebooks_found() -> None:
    assert {p.name for p in NOTEBOOKS} >= {
        "01-quickstart.ipynb", "02-policy-comparison.ipynb", "03-fidelity.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_clean(path: Path, kernel_dir: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} is stored with outputs"
    assert "parameters" in nb.cells[1].metadata.get("tags", []), "first code cell = parameters"
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir) + os.pathsep
                       + os.environ.get("JUPYTER_PATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
