"""Every `jamsim testnet` subcommand's --help shows examples, and they parse.

The examples are checked against the real command definitions (arguments and
options parsed by click, nothing executed), so an option renamed in
jamsim/testnet/commands.py breaks this test instead of silently rotting the help.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jamsim.cli import TESTNET_EXAMPLES, app

SUBCOMMANDS = ["up", "status", "logs", "down", "build"]


def example_lines(epilog: str) -> list[str]:
    return [line.strip() for line in epilog.splitlines() if line.strip().startswith("jamsim ")]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_testnet_subcommand_help_shows_examples(name: str) -> None:
    result = CliRunner().invoke(app, ["testnet", name, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"jamsim testnet {name}" in result.output


def test_testnet_group_help_shows_examples() -> None:
    result = CliRunner().invoke(app, ["testnet", "--help"], terminal_width=100)
    assert result.exit_code == 0 and "Examples:" in result.output


def parse(line: str) -> dict[str, Any]:
    """Parse ``jamsim ...`` with the real click commands (typer vendors its own
    click, hence duck typing); return the parameters, raise on a bad option."""
    words = shlex.split(line, comments=True)[1:]  # drop "jamsim"
    command: Any = typer.main.get_command(app)
    while hasattr(command, "get_command"):  # a group: descend to the subcommand
        name, words = words[0], words[1:]
        found = command.get_command(command.make_context("jamsim", ["--help"],
                                                         resilient_parsing=True), name)
        assert found is not None, f"{line}: no command {name!r}"
        command = found
    params: dict[str, Any] = command.make_context(command.name, list(words)).params
    return params


@pytest.mark.parametrize("line", [line for text in TESTNET_EXAMPLES.values()
                                  for line in example_lines(text)])
def test_every_example_parses_against_the_real_command(line: str) -> None:
    params = parse(line)
    for word in shlex.split(line, comments=True):
        if word.startswith("--"):
            assert word[2:].replace("-", "_").removesuffix("_") in {
                key.removesuffix("_") for key in params}, (word, params)


def test_a_wrong_option_in_an_example_would_be_caught() -> None:
    with pytest.raises(Exception, match="No such option"):
        parse("jamsim testnet up 6 --detatch")
    assert parse("jamsim testnet up 6 --detach")["validators"] == 6


def test_examples_cover_every_subcommand() -> None:
    assert set(SUBCOMMANDS) <= set(TESTNET_EXAMPLES)
    for name in SUBCOMMANDS:
        assert any(line.startswith(f"jamsim testnet {name}")
                   for line in example_lines(TESTNET_EXAMPLES[name])), name
