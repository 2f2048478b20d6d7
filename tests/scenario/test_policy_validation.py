"""Policy values are checked when the scenario loads, with file, line and field.

Before, ``max_retry: 500ms`` under a preset whose ``initial_retry`` is 1 s, or
``jitter: fulll``, passed ``jamsim validate`` and failed only when the run
started, without a line number.
"""

from __future__ import annotations

from dataclasses import fields

import pytest
import yaml

from jamsim.core.policy import ConnectionPolicy, DuplicateRule, Jitter
from jamsim.scenario import ScenarioError, parse_scenario
from jamsim.scenario.schema import Policy


def error_for(policy_lines: str) -> ScenarioError:
    text = "name: p\nseed: 1\npolicy:\n" + policy_lines
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "p.yaml")
    return info.value


@pytest.mark.parametrize(("lines", "line", "field", "says"), [
    # units and types
    ("  max_retry: 5x\n", 4, "policy.max_retry", "duration such as 250ms"),
    ("  idle_timeout: -3\n", 4, "policy.idle_timeout", "cannot be negative"),
    ("  serial_dials: maybe\n", 4, "policy.serial_dials", "valid boolean"),
    ("  initial_retry_repeats: 1.5\n", 4, "policy.initial_retry_repeats", "valid integer"),
    ("  retry_multiplier: fast\n", 4, "policy.retry_multiplier", "valid number"),
    # enums list what is allowed
    ("  jitter: fulll\n", 4, "policy.jitter", "'none', 'full' or 'equal', got 'fulll'"),
    ("  duplicate_rule: newest\n", 4, "policy.duplicate_rule",
     "'keep_older', 'keep_newer' or 'preferred_initiator', got 'newest'"),
    ("  preset: jamixr\n", 4, "policy.preset", "'jamnp-s' or 'jamixir', got 'jamixr'"),
    # unknown fields suggest the right one and list the allowed ones
    ("  preset: jamixir\n  max_retri: 8s\n", 5, "policy.max_retri",
     "unknown key 'max_retri' (did you mean 'max_retry'?); allowed here: preset, "),
    # null only where it disables something
    ("  initial_retry: null\n", 4, "policy.initial_retry", "cannot be null"),
    # ConnectionPolicy's invariants, at the field the file set
    ("  preset: jamnp-s\n  max_retry: 500ms\n", 5, "policy.max_retry",
     "max_retry must be >= initial_retry: here max_retry = 0.5s, initial_retry = 1s "
     "(from preset jamnp-s; can be set too)"),
    ("  preset: jamixir\n  initial_retry: 1s\n", 5, "policy.initial_retry",
     "min_retry must be in [0, initial_retry]: here min_retry = 2s (from preset jamixir"),
    ("  initial_retry: 10s\n  max_retry: 5s\n", 5, "policy.max_retry",
     "max_retry must be >= initial_retry: here max_retry = 5s, initial_retry = 10s"),
    ("  connect_timeout: 0s\n", 4, "policy.connect_timeout", "connect_timeout must be > 0"),
    ("  retry_multiplier: 0.5\n", 4, "policy.retry_multiplier", "must be >= 1"),
    ("  initial_retry_repeats: 0\n", 4, "policy.initial_retry_repeats", "must be >= 1"),
    ("  non_validator_slots: -1\n", 4, "policy.non_validator_slots", "must be >= 0"),
])
def test_policy_errors_name_file_line_and_field(lines: str, line: int, field: str,
                                                says: str) -> None:
    error = error_for(lines)
    assert (error.file, error.line, error.field) == ("p.yaml", line, field), str(error)
    assert says in error.message


def test_several_invariant_violations_are_each_reported_at_their_line() -> None:
    error = error_for("  connect_timeout: 0s\n  retry_multiplier: 0.5\n")
    assert error.line == 4 and error.field == "policy.connect_timeout"
    assert "also p.yaml:5: policy.retry_multiplier: retry_multiplier must be >= 1" \
        in str(error)


def test_valid_overrides_build_the_policy_they_say() -> None:
    scenario = parse_scenario(
        "name: p\npolicy:\n  preset: jamixir\n  initial_retry: 1s\n  min_retry: 500ms\n"
        "  max_retry: 1m\n  jitter: equal\n  duplicate_rule: keep_newer\n"
        "  idle_timeout: 10s\n  give_up_after: null\n  serial_dials: false\n")
    built = scenario.policy.build()
    assert built == ConnectionPolicy.preset(
        "jamixir", initial_retry=1.0, min_retry=0.5, max_retry=60.0, jitter=Jitter.EQUAL,
        duplicate_rule=DuplicateRule.KEEP_NEWER, idle_timeout=10.0, give_up_after=None,
        serial_dials=False)
    # fields not given keep the preset's values
    assert built.reconnect_after_loss == 5.0 and built.connect_timeout == 10.0


def test_null_disables_and_survives_a_dump_and_reload() -> None:
    """``idle_timeout: null`` (disabled) must not turn into "not given" (15 s)."""
    scenario = parse_scenario("name: p\npolicy: {idle_timeout: null, max_retry: 8s}\n")
    dumped = scenario.model_dump(mode="json", exclude_none=True)
    assert dumped["policy"] == {"preset": "jamnp-s", "idle_timeout": None, "max_retry": 8.0}
    again = parse_scenario(yaml.safe_dump(dumped))
    assert again.policy.build().idle_timeout is None
    assert again.policy.build().max_retry == 8.0


def test_overrides_are_plain_values_for_json_and_testnets() -> None:
    scenario = parse_scenario("name: p\npolicy: {jitter: none, keep_alive_interval: 2s}\n")
    assert scenario.policy.overrides() == {"jitter": "none", "keep_alive_interval": 2.0}


def test_every_connection_policy_field_can_be_set_from_a_scenario() -> None:
    """A field added to ConnectionPolicy must be added to the scenario Policy too."""
    assert {f.name for f in fields(ConnectionPolicy)} - {"name"} == \
        set(Policy.model_fields) - {"preset"}
