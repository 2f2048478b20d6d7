"""The command line starts fast and mounts every command without hiding failures.

Startup is checked by what importing ``jamsim.cli`` loads (timing on a shared
machine would be flaky): none of the heavy libraries that only some commands use.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jamsim.cli import LAZY_COMMANDS, app

HEAVY = ("matplotlib", "pandas", "numpy", "aioquic", "simpy", "pydantic", "yaml",
         "cryptography", "pyarrow", "dask", "docker")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = ("import sys, jamsim.cli\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_top_level_help_lists_every_command_without_loading_them() -> None:
    code = ("import sys\nfrom jamsim.cli import main\nsys.argv = ['jamsim', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.startswith("
            "('jamsim.testnet', 'jamsim.net', 'jamsim.analysis'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, "COLUMNS": "200"})
    for name in ["run", "validate", "schema", "sweep", *LAZY_COMMANDS]:
        assert f" {name} " in result.stdout
    assert "LOADED []" in result.stdout


@pytest.mark.parametrize("name", list(LAZY_COMMANDS))
def test_each_lazy_command_loads_and_its_listed_help_is_its_own(name: str) -> None:
    command = LAZY_COMMANDS[name].load()
    assert command.name == name
    own = " ".join((command.help or "").split())
    assert own.startswith(LAZY_COMMANDS[name].help), (own, LAZY_COMMANDS[name].help)
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_a_broken_command_module_surfaces_instead_of_vanishing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jamsim.analysis.commands", None)  # import fails
    result = CliRunner().invoke(app, ["report", "--help"])
    assert isinstance(result.exception, ImportError)
    listing = CliRunner().invoke(app, ["--help"], terminal_width=120)
    assert listing.exit_code == 0 and " report " in listing.output


def test_version_prints_the_engine() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("jamsim ")
    assert "engine:" in result.output
