"""Every class of scenario error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamsim.scenario import ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def error_for(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    return info.value


def test_three_line_file_is_valid_and_defaults_fill_in() -> None:
    s = parse_scenario("name: tiny\nseed: 1\nduration: 10s\n")
    assert s.validators.count == 6 and s.policy.preset == "jamnp-s" and s.fidelity == "model"


@pytest.mark.parametrize(("text", "line", "field", "says"), [
    ("name: x\nvalidatorz: 3\n", 2, "validatorz", "unknown key"),
    ("name: x\nvalidators:\n  count: 5\n  colour: red\n", 4, "validators.colour",
     "unknown key"),
    ("name: x\nduration: 5 parsecs\n", 2, "duration", "duration such as 250ms"),
    ("name: x\nnetwork:\n  loss: 150%\n", 3, "network.loss", "between 0% and 100%"),
    ("name: x\nvalidators: {count: many}\n", 2, "validators.count", "valid integer"),
    ("name: x\nvalidators: {count: 5000}\n", 2, "validators.count", "less than or equal"),
    ("name: x\ntimeline:\n  - at: 5s\n    kill: [v9]\n", 4, "timeline[0].kill[0]",
     "outside 0..5"),
    ("name: x\ntimeline:\n  - at: 5s\n    partition: [[mars], [0..2]]\n", 4,
     "timeline[0].partition[0][0]", "not a validator"),
    ("name: x\ntimeline:\n  - at: 5s\n    heal: all\n    kill: [v1]\n", 3, "timeline[0]",
     "exactly one of"),
    ("name: x\nduration: 10s\ntimeline:\n  - at: 20s\n    heal: all\n", 4,
     "timeline[0].at", "after the end of the run"),
    ("name: x\nduration: 2m\ntimeline:\n  - {at: 30s, heal: all}\n  - {at: 1m, heal: all}\n"
     "  - {at: 90s, heal: all}\n  - {at: 3m, heal: all}\n", 7, "timeline[3].at",
     "lengthen `duration`"),
    ("name: x\nfidelity: perfect\n", 2, "fidelity", "'model' or 'quic'"),
    ("name: x\npolicy:\n  preset: jamixir\n  max_retri: 8s\n", 4, "policy.max_retri",
     "unknown key 'max_retri' (did you mean 'max_retry'?)"),
    ("name: x\nvalidators:\n  regions: {eu: 50%, us: 40%}\n", 3, "validators.regions",
     "add up to 100%"),
    ("name: x\nnetwork:\n  latency: {default: 10ms, eu-mars: 5ms}\n", 3,
     "network.latency.eu-mars", "unknown region"),
    ("name: x\nexpect:\n  - full_mesh: {within: 10s}\n    reconnect_p99: {below: 1s}\n", 3,
     "expect[0]", "exactly one of"),
])
def test_error_names_file_line_and_field(text: str, line: int, field: str, says: str) -> None:
    error = error_for(text)
    assert error.file == "bad.yaml"
    assert error.line == line, str(error)
    assert error.field == field, str(error)
    assert says in str(error)
    assert str(error).startswith(f"bad.yaml:{line}: ")


def test_malformed_yaml_syntax() -> None:
    error = error_for("name: x\nvalidators:\n  count: [1, 2\n")
    assert error.line is not None and "not valid YAML" in str(error)


def test_duplicate_key() -> None:
    error = error_for("name: x\nseed: 1\nseed: 2\n")
    assert error.line == 3 and "appears twice" in str(error)


def test_top_level_must_be_a_mapping() -> None:
    assert "mapping" in str(error_for("- just\n- a list\n"))


def test_missing_file_suggests_builtins(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="quickstart"):
        load_scenario(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_scenario_is_valid(path: Path) -> None:
    assert load_scenario(path).name == path.stem


def test_builtin_quickstart_matches_the_example() -> None:
    """The embedded default is the example, comments included: its comments state
    the figures a first run prints, so a copy that drifts tells a new user wrong ones."""
    from jamsim.scenario.loader import builtin_path

    assert load_scenario("quickstart") == load_scenario(SCENARIOS / "quickstart.yaml")
    assert builtin_path("quickstart").read_text() == (SCENARIOS / "quickstart.yaml").read_text()


def test_json_schema_exports() -> None:
    from jamsim.scenario.schema import Scenario

    schema = Scenario.model_json_schema()
    assert "timeline" in schema["properties"] and "$defs" in schema


def test_expectation_after_an_action_the_timeline_lacks_is_caught_by_validate() -> None:
    text = ("name: x\nduration: 1m\nvalidators: {count: 4}\n"
            "timeline:\n  - {at: 5s, kill: [v1]}\n"
            "expect:\n  - full_mesh: {within: 10s, after: heal}\n")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "s.yaml")
    assert err.value.line == 7 and err.value.field == "expect[0].full_mesh.after"
    assert "names no timeline action" in err.value.message and "'kill'" in err.value.message
