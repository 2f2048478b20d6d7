"""Load the mypyc-compiled build of the hot modules when it matches the sources.

Why: the simulator's cost is CPython's interpreter overhead spread thinly over the
manager, the policy and the network (no single hot spot is left to remove).
``scripts/build_native.py`` compiles exactly those modules with mypyc, from the
same typed sources, into ``build/native/``; this module puts that build in front
of the pure-Python files, but only when every compiled module was built from the
source bytes that are on disk now. An edited source therefore never runs stale
compiled code: the whole build is ignored until it is rebuilt (``jamsim --version``
and every benchmark say which engine ran).

``JAMSIM_NATIVE=0`` forces pure Python (the test suite's coverage run uses it:
coverage cannot trace compiled code).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

#: The modules compiled by scripts/build_native.py: the sans-IO core, the link
#: samplers and the model-fidelity simulator (what a 1023-validator run spends its
#: time in).
COMPILED_MODULES: tuple[str, ...] = (
    "jamsim.core.types",
    "jamsim.core.errors",
    "jamsim.core.events",
    "jamsim.core.actions",
    "jamsim.core.policy",
    "jamsim.core.keepalive",
    "jamsim.core.connection",
    "jamsim.core.manager",
    "jamsim.links",
    "jamsim.sim.network",
    "jamsim.sim.connectivity",
    "jamsim.sim.model.transport",
    "jamsim.sim.simulation",
)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
NATIVE_DIR = PACKAGE_ROOT / "build" / "native"
MANIFEST = NATIVE_DIR / "manifest.json"
DISABLE_VARIABLE = "JAMSIM_NATIVE"
REBUILD = "rebuild with: python scripts/build_native.py"

EngineState = Literal["compiled", "pure", "stale", "disabled"]


@dataclass(frozen=True)
class NativeStatus:
    """Which engine this process runs, and why (for summaries and benchmarks)."""

    state: EngineState
    detail: str

    @property
    def compiled(self) -> bool:
        return self.state == "compiled"


def source_digest(path: Path) -> str:
    """The sha256 of a source file: what the manifest pins each module to."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_tag() -> str:
    """The interpreter a build is for (extension modules are ABI-specific)."""
    return f"{sys.implementation.cache_tag}-{sys.platform}"


class _CompiledFinder(importlib.abc.MetaPathFinder):
    """Resolves exactly the compiled module names to their extension files."""

    def __init__(self, files: dict[str, Path]) -> None:
        self._files = files

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        file = self._files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def _check_build() -> tuple[NativeStatus, dict[str, Path]]:
    """Which engine to use, and the extension files if compiled. All or nothing:
    the compiled modules call each other natively, so one stale module means none
    of them may load."""
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return NativeStatus("disabled", f"{DISABLE_VARIABLE}=0"), {}
    if not MANIFEST.is_file():
        return NativeStatus("pure", "no compiled build (scripts/build_native.py makes one)"), {}
    try:
        manifest = json.loads(MANIFEST.read_text())
        if manifest["cache_tag"] != cache_tag():
            return NativeStatus("stale", f"built for {manifest['cache_tag']}; {REBUILD}"), {}
        files: dict[str, Path] = {}
        for name, entry in manifest["modules"].items():
            if source_digest(PACKAGE_ROOT / entry["source"]) != entry["sha256"]:
                changed = f"{entry['source']} changed since the build; {REBUILD}"
                return NativeStatus("stale", changed), {}
            files[name] = NATIVE_DIR / entry["file"]
        if set(files) != set(COMPILED_MODULES):
            return NativeStatus("stale", f"the build covers other modules; {REBUILD}"), {}
        files[manifest["group"]["name"]] = NATIVE_DIR / manifest["group"]["file"]
    except (OSError, KeyError, TypeError, ValueError) as error:
        return NativeStatus("stale", f"unreadable manifest ({error!r}); {REBUILD}"), {}
    if not all(file.is_file() for file in files.values()):
        return NativeStatus("stale", f"a compiled file is missing; {REBUILD}"), {}
    return NativeStatus("compiled", f"mypyc build in {NATIVE_DIR}"), files


def _activate() -> NativeStatus:
    status, files = _check_build()
    if status.compiled:
        sys.meta_path.insert(0, _CompiledFinder(files))
    return status


STATUS: NativeStatus = _activate()


def native_status() -> NativeStatus:
    """The engine chosen when jamsim was first imported in this process."""
    return STATUS
