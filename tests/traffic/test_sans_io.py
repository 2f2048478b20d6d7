"""The schedule, config, records and overlay are pure: no I/O, no clock, no simulator.

Real nodes import the schedule; the overlay reaches the network only through its
DeliveryNetwork protocol. Only jamsim/traffic/simulated.py (the simulator driver)
may import the simulator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jamsim.traffic
from tests.core.test_sans_io import FORBIDDEN, _imported_roots

PACKAGE = Path(jamsim.traffic.__file__).parent
PURE = ["config.py", "schedule.py", "records.py", "overlay.py"]


def _jamsim_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jamsim"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jamsim"))
    return found


def test_pure_traffic_modules_import_no_io_clock_or_simulator() -> None:
    for name in PURE:
        path = PACKAGE / name
        assert not _imported_roots(path) & FORBIDDEN, name
        assert not {m for m in _jamsim_imports(path) if m.startswith("jamsim.sim")}, name
    assert "jamsim.sim.simulation" in _jamsim_imports(PACKAGE / "simulated.py")
