"""ConnectionPolicy: presets, overrides, backoff bounds."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.core import policy as policy_module
from jamsim.core.errors import UsageError
from jamsim.core.policy import PRESETS, ConnectionPolicy, DuplicateRule, Jitter


def test_jamixir_backoff_sequence_matches_reference_client() -> None:
    policy = ConnectionPolicy.preset("jamixir")
    rng = random.Random(0)
    delays = [policy.retry_delay(n, rng) for n in range(1, 9)]
    assert delays == [2, 2, 4, 8, 16, 32, 32, 32]


def test_jamixir_preset_reproduces_its_weaknesses() -> None:
    p = ConnectionPolicy.preset("jamixir")
    assert not p.non_preferred_dials and not p.redial_lost_inbound
    assert p.serial_dials and p.connect_timeout == 10.0
    assert p.reconnect_after_loss == 5.0 and p.jitter is Jitter.NONE
    assert p.give_up_after == 300.0 and p.give_up_clock_resets
    assert p.duplicate_rule is DuplicateRule.KEEP_OLDER
    assert p.idle_timeout is None and p.keep_alive_interval is None


def test_jamnp_s_preset_is_the_recommended_one() -> None:
    p = ConnectionPolicy.preset("jamnp-s")
    assert p.non_preferred_dials and p.fallback_after == 5.0
    assert p.jitter is Jitter.FULL and not p.serial_dials
    assert p.give_up_spares_current_set
    assert p.duplicate_rule is DuplicateRule.PREFERRED_INITIATOR
    assert p.idle_timeout is not None and p.keep_alive_interval is not None


def test_overrides_and_string_enums() -> None:
    p = ConnectionPolicy.preset("jamixir", max_retry=8.0, jitter="full",
                                duplicate_rule="preferred_initiator")
    assert p.max_retry == 8.0 and p.jitter is Jitter.FULL
    assert p.duplicate_rule is DuplicateRule.PREFERRED_INITIATOR
    assert p.name == "jamixir"


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("nope", {}, "unknown policy preset"),
        ("jamnp-s", {"bogus": 1}, "unknown policy field"),
        ("jamnp-s", {"initial_retry": 0}, "initial_retry must be > 0"),
        ("jamnp-s", {"max_retry": 0.5}, "max_retry must be >= initial_retry"),
        ("jamnp-s", {"min_retry": 5.0}, "min_retry"),
        ("jamnp-s", {"idle_timeout": -1}, "idle_timeout"),
        ("jamnp-s", {"retry_multiplier": 0.5}, "retry_multiplier"),
    ],
)
def test_bad_policies_say_what_is_wrong(name: str, overrides: dict[str, object],
                                        match: str) -> None:
    with pytest.raises(UsageError, match=match):
        ConnectionPolicy.preset(name, **overrides)


def test_backoff_ceiling_rejects_attempt_zero() -> None:
    with pytest.raises(UsageError):
        PRESETS["jamnp-s"].backoff_ceiling(0)


policies = st.builds(
    lambda initial, mult, extra, floor_frac, jitter, repeats: ConnectionPolicy(
        initial_retry=initial, retry_multiplier=mult, max_retry=initial + extra,
        min_retry=initial * floor_frac, jitter=jitter, initial_retry_repeats=repeats),
    st.floats(0.01, 60), st.floats(1, 10), st.floats(0, 600), st.floats(0, 1),
    st.sampled_from(list(Jitter)), st.integers(1, 4),
)


@given(policies, st.integers(1, 10_000), st.integers(0, 2**32))
def test_retry_delay_within_floor_and_cap(policy: ConnectionPolicy, attempt: int,
                                          seed: int) -> None:
    delay = policy.retry_delay(attempt, random.Random(seed))
    assert policy.min_retry <= delay <= policy.max_retry


@given(policies, st.integers(1, 200))
def test_backoff_ceiling_is_monotone(policy: ConnectionPolicy, attempt: int) -> None:
    assert policy.backoff_ceiling(attempt) <= policy.backoff_ceiling(attempt + 1)
    assert policy.backoff_ceiling(attempt) <= policy.max_retry


@given(policies, st.integers(1, 5_000))
def test_backoff_schedule_is_the_ceiling_sequence(policy: ConnectionPolicy,
                                                  attempt: int) -> None:
    """Managers look ceilings up in the schedule; it must equal the computed one."""
    schedule = policy.backoff_schedule()
    final = schedule[-1] >= policy.max_retry or policy.retry_multiplier == 1
    if attempt <= len(schedule):
        assert schedule[attempt - 1] == policy.backoff_ceiling(attempt)
    elif final:
        assert schedule[-1] == policy.backoff_ceiling(attempt)


@given(policies, st.floats(0.001, 1_000), st.integers(0, 2**32))
def test_jittered_draws_what_random_uniform_would(policy: ConnectionPolicy, ceiling: float,
                                                  seed: int) -> None:
    """jittered() spells random.uniform out for speed: same floats, same draws."""
    ours, reference = random.Random(seed), random.Random(seed)
    for _ in range(3):
        if policy.jitter is Jitter.FULL:
            expected = reference.uniform(policy.min_retry, ceiling)
        elif policy.jitter is Jitter.EQUAL:
            expected = ceiling / 2 + reference.uniform(0.0, ceiling / 2)
        else:
            expected = ceiling
        expected = min(policy.max_retry, max(policy.min_retry, expected))
        assert policy.jittered(ceiling, ours) == expected
    assert ours.random() == reference.random()  # and the generator is where it would be


def test_count_fields_take_whole_floats_as_command_lines_give_them() -> None:
    """``jamsim node --policy-set`` parses numbers as floats; counts become ints."""
    policy = ConnectionPolicy.preset("jamnp-s", max_parallel_dials=8.0,
                                     non_validator_slots=20.0, initial_retry_repeats=2.0)
    counts = (policy.max_parallel_dials, policy.non_validator_slots,
              policy.initial_retry_repeats)
    assert counts == (8, 20, 2) and all(type(c) is int for c in counts)
    with pytest.raises(UsageError, match="whole number"):
        ConnectionPolicy.preset("jamnp-s", max_parallel_dials=2.5)


def test_whole_number_field_list_matches_the_annotations() -> None:
    annotated = {f.name: f.type for f in dataclasses.fields(ConnectionPolicy)}
    if not all(isinstance(kind, str) for kind in annotated.values()):
        pytest.skip("compiled build: annotations are not kept as strings")
    whole = {name for name, kind in annotated.items() if kind in ("int", "int | None")}
    assert whole == policy_module._WHOLE_NUMBER_FIELDS
