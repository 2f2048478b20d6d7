"""Every bad scenario input gets a clear error, quickly and in bounded memory.

One case per input a hostile or careless user produced: an alias bomb (also
inside ``timeline[].kill``), random bytes, Latin-1 text, an empty file, ``-5s``,
several errors in one file. Each is checked through ``jamsim validate`` (exit
code 2 and the message, file named, no traceback) and through the loader under
``tracemalloc`` (wall time <= 2 s, allocation peak bounded). The bomb also runs
in a subprocess with an address-space limit, where an unbounded expansion would
die of memory instead of hanging.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jamsim.cli import app
from jamsim.scenario import ScenarioError, load_scenario
from jamsim.scenario.errors import MAX_LISTED
from jamsim.scenario.loader import MAX_DEPTH, MAX_FILE_BYTES, Override, parse_scenario

PEAK_BYTES = 16 << 20
"""Loading any bad input allocates less than this (a good scenario: about 1 MiB)."""


def alias_bomb(levels: int = 9, width: int = 9, *, in_kill: bool = False) -> str:
    """``levels`` nested levels of ``width`` aliases: width**levels values expanded."""
    if in_kill:
        lines = ["name: bomb", "validators: {count: 6}", "timeline:",
                 "  - at: 1s", "    kill: &a0 [" + ", ".join(["v1"] * width) + "]"]
        for i in range(1, levels + 1):
            lines += ["  - at: 1s", f"    kill: &a{i} [" + ", ".join([f"*a{i - 1}"] * width)
                      + "]"]
        return "\n".join(lines) + "\n"
    lines = ["name: bomb", "a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


CASES: dict[str, tuple[bytes, int | None, str]] = {
    # name: (file content, line named, words the message must contain)
    "alias-bomb": (alias_bomb().encode(), 7, "aliases expand this document to more than"),
    "alias-bomb-in-kill": (alias_bomb(in_kill=True).encode(), 15,
                           "aliases expand this document to more than"),
    "alias-depth": (("name: deep\nl0: &l0 [0]\n" + "".join(f"l{i}: &l{i} [*l{i - 1}]\n"
                                                          for i in range(1, 60))).encode(),
                    41, f"nest this document more than {MAX_DEPTH} levels"),
    "random-bytes": (random.Random(16).randbytes(4096), 1, "binary file"),
    "latin-1": ("name: caf\xe9\n".encode("latin-1"), 1, "not UTF-8 text: byte 0xe9"),
    "control-char": (b"name: x\nseed: 1\x07\n", 2, "control character 0x07"),
    "empty": (b"", None, "the file is empty"),
    "only-comments": (b"# nothing here\n", None, "the file is empty"),
    "negative-duration": (b"name: x\nduration: -5s\n", 2,
                          "a duration cannot be negative, got '-5s'"),
    "too-large": (b"name: x\n" + b"# padding\n" * (MAX_FILE_BYTES // 10 + 1), None,
                  "larger than 1024 KiB"),
    "nested-too-deep": (b"name: x\nseed: " + b"[" * 500 + b"]" * 500 + b"\n", 2,
                        f"nested more than {MAX_DEPTH} levels"),
    "recursive-alias": (b"name: x\ndescription: &d [1, *d]\n", 2, "contains it"),
}


def write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(CASES[name][0])
    return path


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_a_clear_error_fast_and_in_bounded_memory(tmp_path: Path,
                                                               name: str) -> None:
    path = write(tmp_path, name)
    _, line, says = CASES[name]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took <= 2.0 and peak <= PEAK_BYTES, (took, peak)
    assert info.value.file == str(path) and info.value.line == line, str(info.value)
    assert says in info.value.message


@pytest.mark.parametrize("name", CASES)
def test_validate_exits_2_naming_the_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name)
    result = CliRunner().invoke(app, ["validate", str(path)], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert f"error: {path}" in result.output and CASES[name][2] in result.output
    assert "Traceback" not in result.output


def _limit_memory() -> None:
    limit = 2 << 30  # `jamsim run` needs a few hundred MiB of address space; the
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # bomb, tens of GiB


@pytest.mark.parametrize("name", ["alias-bomb", "alias-bomb-in-kill"])
def test_alias_bomb_under_a_memory_limit(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name)
    for command in (["validate", str(path)], ["run", str(path), "--quiet",
                                              "--out", str(tmp_path / "out")]):
        result = subprocess.run([sys.executable, "-m", "jamsim", *command],
                                capture_output=True, text=True, timeout=60,
                                preexec_fn=_limit_memory,
                                env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                     "OMP_NUM_THREADS": "1"})  # per-core arenas
        assert result.returncode == 2, result.stderr
        assert f"{path}:" in result.stderr and "aliases expand" in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_problem_of_a_file_is_listed_at_once() -> None:
    text = ("name: x\nseed: 1\nseed: 2\nname: y\npolicy:\n  max_retry: 500ms\n"
            "  jitter: fulll\nduration: -5s\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "m.yaml")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("m.yaml:3: seed: key 'seed' appears twice")
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        "also m.yaml:4", "also m.yaml:6", "also m.yaml:7", "also m.yaml:8"]
    assert "policy.max_retry: max_retry must be >= initial_retry" in lines[2]
    assert "policy.jitter:" in lines[3] and "'fulll'" in lines[3]
    assert "duration: a duration cannot be negative" in lines[4]
    assert [(p.line, p.field) for p in info.value.problems] == [
        (3, "seed"), (4, "name"), (6, "policy.max_retry"), (7, "policy.jitter"),
        (8, "duration")]


def test_the_list_is_capped() -> None:
    text = "name: x\n" + "".join(f"unknown_{i}: 1\n" for i in range(MAX_LISTED + 5))
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "c.yaml")
    assert len(info.value.problems) == MAX_LISTED + 5
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_LISTED + 1 and lines[-1] == "  ... and 5 more problems"


def test_an_alias_bomb_in_a_set_value_is_refused() -> None:
    from jamsim.core.errors import UsageError

    value = "{" + alias_bomb().replace("\n", ", ").rstrip(", ") + "}"
    with pytest.raises(UsageError, match="aliases expand"):
        Override.parse(f"description={value}")


def test_validate_checks_overrides(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "quickstart", "--set", "validators.count=12",
                             "--seed", "4"])
    assert ok.exit_code == 0 and "12 validators" in ok.output
    bad = runner.invoke(app, ["validate", "quickstart", "--set", "policy.max_retry=-5s"],
                        terminal_width=400)
    assert bad.exit_code == 2
    assert "--set policy.max_retry=-5s: policy.max_retry: a duration cannot be negative" \
        in bad.output
