"""Command-line overrides: errors name the flag as typed, not an internal file.

Before, ``--set`` values were written into a YAML dump of the scenario and
validated again, so a bad one was reported as ``<overrides>:7``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from jamsim.cli import app
from jamsim.core.errors import UsageError
from jamsim.scenario import ScenarioError, load_scenario, parse_scenario
from jamsim.scenario.loader import Override

FILE = """name: o
duration: 1m
validators: {count: 4}
policy:
  preset: jamnp-s
  max_retry: 8s
timeline:
  - {at: 10s, kill: [v3]}
  - {at: 50s, restart: [v3]}
"""


def error_for(*typed: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(FILE, "o.yaml", [Override.parse(t) for t in typed])
    return info.value


def test_overrides_apply_like_an_edit_of_the_file() -> None:
    scenario = parse_scenario(FILE, "o.yaml", [Override.parse("policy.max_retry=16s"),
                                               Override.parse("network.loss=1%"),
                                               Override("seed", 3, "--seed 3")])
    assert scenario.policy.build().max_retry == 16.0
    assert scenario.network.loss == pytest.approx(0.01) and scenario.seed == 3
    assert scenario.timeline[0].kill == ["v3"]  # the rest of the file is untouched


@pytest.mark.parametrize(("typed", "field", "says"), [
    ("policy.max_retry=5x", "policy.max_retry", "duration such as"),
    ("policy.jitter=fulll", "policy.jitter", "'none', 'full' or 'equal'"),
    ("policy.max_retry=500ms", "policy.max_retry", "max_retry must be >= initial_retry"),
    ("validators.count=1", "validators.count", "greater than or equal to 2"),
    ("polcy.max_retry=8s", "polcy", "did you mean 'policy'?"),
    ("expect=[{full_mesh: {within: 1x}}]", "expect[0].full_mesh.within", "duration such as"),
    ("timeline=[{at: 5s, kill: [v9]}]", "timeline[0].kill[0]", "outside 0..3"),
])
def test_an_error_in_an_override_names_the_override(typed: str, field: str, says: str) -> None:
    error = error_for(typed)
    assert error.file == f"--set {typed}" and error.line is None, str(error)
    assert error.field == field and says in error.message, str(error)
    assert str(error).startswith(f"--set {typed}: {field}: ")


def test_an_error_an_override_causes_in_the_file_names_both() -> None:
    """Shrinking the set makes the file's ``kill: [v3]`` wrong: point at the file's
    line, and say which override was in force."""
    error = error_for("validators.count=3")
    assert (error.file, error.line, error.field) == ("o.yaml", 8, "timeline[0].kill[0]")
    assert error.message.endswith("(with --set validators.count=3)")
    error = error_for("duration=30s")
    assert (error.line, error.field) == (9, "timeline[1].at")
    assert "after the end of the run" in error.message and "--set duration=30s" in error.message


def test_a_file_line_replaced_by_an_override_is_not_blamed() -> None:
    error = error_for("timeline=[{at: 5s, heal: all}, {at: 2m, heal: all}]")
    assert error.file.startswith("--set timeline=") and error.field == "timeline[1].at"


def test_lists_cannot_be_addressed_by_index() -> None:
    error = error_for("timeline.0.at=20s")
    assert "'timeline' is not a section" in error.message
    assert error.file == "--set timeline.0.at=20s"


@pytest.mark.parametrize("typed", ["novalue", "=5", "expect=[{a: 1"])
def test_malformed_overrides_are_usage_errors(typed: str) -> None:
    with pytest.raises(UsageError, match="--set"):
        Override.parse(typed)


def test_builtin_name_with_overrides() -> None:
    scenario = load_scenario("quickstart", [Override.parse("policy.preset=jamixir")])
    assert scenario.policy.preset == "jamixir"


# ----------------------------------------------------------------- the commands

def test_run_reports_a_bad_set_as_typed(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--quiet", "--set", "policy.max_retry=500ms",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "--set policy.max_retry=500ms: policy.max_retry: max_retry must be >= " \
           "initial_retry" in output
    assert "<overrides>" not in output and not (tmp_path / "o").exists()


def test_run_applies_set_and_seed(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--quiet", "--set", "duration=40s",
                                      "--set", "policy.preset=jamixir", "--seed", "4",
                                      "--set", "traffic=none",
                                      "--out", str(tmp_path / "o")])
    # Without slot traffic jamixir holds the partition's links stale for the whole
    # cut: the quickstart's stale_for bound fails (exit 1), the rest passes
    assert result.exit_code == 1, result.output
    assert "FAIL stale_for" in result.output and result.output.count("FAIL") == 1
    written = (tmp_path / "o" / "scenario.yaml").read_text()
    assert "duration: 40.0" in written and "seed: 4" in written and "preset: jamixir" in written
    assert "traffic: none" in written


def test_sweep_reports_a_bad_param_value_as_typed_before_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sweep", "quickstart", "--param",
                                      "policy.max_retry=8s,8x", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "--param policy.max_retry=8x: policy.max_retry" in " ".join(result.output.split())
    assert not (tmp_path / "s").exists()
