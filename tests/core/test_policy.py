"""ConnectionPolicy: what each preset makes a manager do, overrides, backoff bounds."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.core import policy as policy_module
from jamsim.core.actions import CloseConnection, Dial
from jamsim.core.errors import UsageError
from jamsim.core.events import (
    ConnectionEstablished,
    DialFailed,
    InboundConnecting,
    InboundHandshake,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import PRESETS, ConnectionPolicy, DuplicateRule, Jitter
from jamsim.identity import PeerAddress, is_preferred_initiator
from tests.core.helpers import endpoints, keys, ordered_pair


def test_jamixir_backoff_sequence_matches_reference_client() -> None:
    policy = ConnectionPolicy.preset("jamixir")
    rng = random.Random(0)
    delays = [policy.retry_delay(n, rng) for n in range(1, 9)]
    assert delays == [2, 2, 4, 8, 16, 32, 32, 32]


def _manager(local: bytes, peers: list[bytes], policy: ConnectionPolicy) -> ConnectionManager:
    """A manager that has just learnt a validator set of ``local`` and ``peers``."""
    m = ConnectionManager(local, policy, rng_seed=3)
    m.handle(ValidatorSetChanged(current=endpoints([local, *peers])), 0.0)
    return m


def _dials(m: ConnectionManager) -> list[Dial]:
    return [a for a in m.drain_actions() if isinstance(a, Dial)]


@pytest.mark.parametrize(("preset", "fallback_at"), [("jamixir", None), ("jamnp-s", 5.0)])
def test_who_dials(preset: str, fallback_at: float | None) -> None:
    """The preferred initiator dials at once under both presets; the other side
    dials only under jamnp-s, after its grace period (catches a preset that lets
    Jamixir's non-preferred side dial, or drops jamnp-s's fallback)."""
    policy = ConnectionPolicy.preset(preset)
    preferred, other = ordered_pair(seed=4)
    assert [d.peer for d in _dials(_manager(preferred, [other], policy))] == [other]
    m = _manager(other, [preferred], policy)
    assert _dials(m) == []
    assert m.next_deadline() == fallback_at
    m.handle_timer(1_000.0 if fallback_at is None else fallback_at)
    assert [d.peer for d in _dials(m)] == ([] if fallback_at is None else [preferred])


def _peers_it_dials_first() -> tuple[bytes, list[bytes]]:
    """A node and four peers it is the preferred initiator of."""
    pool = keys(12, seed=9)
    for local in pool:
        peers = [k for k in pool if k != local and is_preferred_initiator(local, k)]
        if len(peers) >= 4:
            return local, peers[:4]
    raise AssertionError("no key is preferred over four others")


@pytest.mark.parametrize(("preset", "at_once"), [("jamixir", 1), ("jamnp-s", 4)])
def test_serial_or_parallel_dials(preset: str, at_once: int) -> None:
    """Jamixir dials one peer at a time and waits for the outcome (its next dial
    comes only after the first fails); jamnp-s dials the whole set at once."""
    policy = ConnectionPolicy.preset(preset)
    local, peers = _peers_it_dials_first()
    m = _manager(local, peers, policy)
    first = _dials(m)
    assert len(first) == at_once and {d.peer for d in first} <= set(peers)
    assert all(d.timeout == policy.connect_timeout for d in first)
    if at_once == 1:
        m.handle(DialFailed(first[0].conn_id, "timeout"), policy.connect_timeout)
        following = _dials(m)
        assert len(following) == 1 and following[0].peer in set(peers) - {first[0].peer}


def _dial_until(m: ConnectionManager, until: float) -> list[float]:
    """Fail every dial at once and follow the manager's timers up to ``until``;
    returns when each dial started."""
    starts: list[float] = []
    now = 0.0
    while now <= until:
        for dial in _dials(m):
            starts.append(now)
            m.handle(DialFailed(dial.conn_id, "timeout"), now)
        deadline = m.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        m.handle_timer(now)
    return starts


def test_jamixir_give_up_never_fires_because_its_clock_resets() -> None:
    """Jamixir's 300 s give-up restarts at each failure, so it dials forever;
    the same policy without the reset stops dialling a dead peer after 300 s."""
    preferred, other = ordered_pair(seed=4)
    buggy = ConnectionPolicy.preset("jamixir")
    fixed = ConnectionPolicy.preset("jamixir", give_up_clock_resets=False)
    forever = _dial_until(_manager(preferred, [other], buggy), 900.0)
    stops = _dial_until(_manager(preferred, [other], fixed), 900.0)
    assert max(forever) > 800.0
    assert max(stops) <= 300.0 + buggy.max_retry and len(stops) < len(forever)


def test_jamnp_s_never_gives_up_on_the_current_set_and_jitters() -> None:
    """jamnp-s keeps dialling a current-set validator past its 900 s give-up,
    with delays spread by full jitter under the doubling ceiling (two seeds
    disagree), where Jamixir's delays are the same for every seed."""
    preferred, other = ordered_pair(seed=4)
    policy = ConnectionPolicy.preset("jamnp-s")
    starts = _dial_until(_manager(preferred, [other], policy), 1_100.0)
    assert max(starts) > 900.0 + policy.max_retry  # a give-up would stop by then
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(policy.min_retry <= g <= policy.max_retry for g in gaps)
    draws = {seed: [policy.retry_delay(n, random.Random(seed)) for n in range(1, 9)]
             for seed in (1, 2)}
    assert draws[1] != draws[2]
    jamixir = ConnectionPolicy.preset("jamixir")
    assert ([jamixir.retry_delay(n, random.Random(1)) for n in range(1, 9)]
            == [jamixir.retry_delay(n, random.Random(2)) for n in range(1, 9)])


@pytest.mark.parametrize(("preset", "survivor"), [("jamixir", "inbound"),
                                                 ("jamnp-s", "outbound")])
def test_which_duplicate_survives(preset: str, survivor: str) -> None:
    """The preferred initiator's dial completes after an inbound connection from
    the same peer went live: Jamixir keeps the older (the inbound), jamnp-s the
    one the preferred initiator opened (its own dial), as the peer computes too.
    Dials run in parallel here: a serial Jamixir manager would hold the inbound
    handshake back until its dial ended, and the rule would not be reached."""
    policy = ConnectionPolicy.preset(preset, serial_dials=False)
    preferred, other = ordered_pair(seed=4)
    m = _manager(preferred, [other], policy)
    (dial,) = _dials(m)
    inbound = m.allocate_connection_id()
    m.handle(InboundConnecting(inbound, PeerAddress("127.0.0.1", 40001)), 1.0)
    m.handle(InboundHandshake(inbound, other, PeerAddress("127.0.0.1", 40001)), 1.0)
    assert m.live_connection(other) == inbound
    m.drain_actions()
    m.handle(ConnectionEstablished(dial.conn_id, other), 2.0)
    closed = [a.conn_id for a in m.drain_actions() if isinstance(a, CloseConnection)]
    kept, dropped = ((inbound, dial.conn_id) if survivor == "inbound"
                     else (dial.conn_id, inbound))
    assert closed == [dropped] and m.live_connection(other) == kept


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
