"""Compile jamsim's hot modules with mypyc into build/native/ (optional, ~30 s).

Why: a 1023-validator simulation is interpreter-bound; mypyc turns the same typed
sources (the sans-IO core and the model-fidelity simulator) into C extensions.
jamsim loads them only while they match the sources byte for byte (see
jamsim/_native.py), so editing a module simply falls back to pure Python until
the next build. ``scripts/install.sh`` runs this; run it again after editing one
of the compiled modules to get the compiled speed back.

Usage: ``python scripts/build_native.py [--clean]``. Needs a C compiler (gcc) and
mypy (which ships mypyc); exits non-zero with the reason when either is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jamsim._native import (  # noqa: E402  (after the path set-up above)
    COMPILED_MODULES,
    MANIFEST,
    NATIVE_DIR,
    cache_tag,
    source_digest,
)

GROUP = "jamsim_native"

SETUP = textwrap.dedent(
    """
    from setuptools import setup
    from mypyc.build import mypycify

    setup(
        name="jamsim-native",
        ext_modules=mypycify(
            ["--config-file", "mypyc.ini", *{sources!r}],
            opt_level="3",
            group_name={group!r},
        ),
    )
    """
)

# The project's mypy settings without warn_unused_configs (the build type-checks
# only the compiled modules, so the other packages' sections would be "unused").
MYPY_CONFIG = textwrap.dedent(
    """
    [mypy]
    python_version = 3.11
    ignore_missing_imports = True
    check_untyped_defs = True
    """
)


def module_source(name: str) -> str:
    return name.replace(".", "/") + ".py"


def build(verbose: bool) -> None:
    """Compile in a scratch copy, then install the extensions and the manifest."""
    if not any(shutil.which(compiler) for compiler in ("gcc", "cc")):
        raise SystemExit("build_native: no C compiler found (Debian: apt-get install gcc)")
    try:
        import mypyc  # noqa: F401
    except ImportError:
        raise SystemExit("build_native: mypyc is missing (pip install mypy)") from None

    sources = [module_source(name) for name in COMPILED_MODULES]
    with tempfile.TemporaryDirectory(prefix="jamsim-native-") as scratch_dir:
        scratch = Path(scratch_dir)
        shutil.copytree(ROOT / "jamsim", scratch / "jamsim",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        (scratch / "setup.py").write_text(SETUP.format(group=GROUP, sources=sources))
        (scratch / "mypyc.ini").write_text(MYPY_CONFIG)
        out = scratch / "out"
        command = [sys.executable, "setup.py", "build_ext", "--build-lib", str(out),
                   "--build-temp", str(scratch / "tmp")]
        result = subprocess.run(command, cwd=scratch, capture_output=not verbose, text=True)
        if result.returncode != 0:
            sys.stderr.write((result.stdout or "") + (result.stderr or ""))
            raise SystemExit(f"build_native: mypyc failed (exit {result.returncode})")

        if NATIVE_DIR.exists():
            shutil.rmtree(NATIVE_DIR)
        shutil.copytree(out, NATIVE_DIR)

    modules = {}
    for name, source in zip(COMPILED_MODULES, sources, strict=True):
        file = _one(NATIVE_DIR.glob(source.removesuffix(".py") + ".*.so"), name)
        modules[name] = {
            "source": source,
            "sha256": source_digest(ROOT / source),
            "file": str(file.relative_to(NATIVE_DIR)),
        }
    group_file = _one(NATIVE_DIR.glob(f"{GROUP}__mypyc.*.so"), GROUP)
    manifest = {
        "cache_tag": cache_tag(),
        "modules": modules,
        "group": {"name": f"{GROUP}__mypyc", "file": group_file.name},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def _one(found: Iterable[Path], what: str) -> Path:
    files = sorted(found)
    if len(files) != 1:
        raise SystemExit(f"build_native: expected one extension for {what}, found {files}")
    return files[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true",
                        help="remove build/native and exit (jamsim then runs pure Python)")
    parser.add_argument("--verbose", action="store_true", help="show the compiler's output")
    args = parser.parse_args()
    if args.clean:
        shutil.rmtree(NATIVE_DIR, ignore_errors=True)
        print(f"removed {NATIVE_DIR}")
        return
    build(args.verbose)
    check = subprocess.run(
        [sys.executable, "-c",
         "import jamsim; s = jamsim.native_status(); print(s.state, s.detail)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    print(f"build_native: {len(COMPILED_MODULES)} modules compiled; engine: {check.stdout.strip()}")


if __name__ == "__main__":
    main()
