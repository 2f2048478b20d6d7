"""DialPathCut: catching up on cut dials in one step equals handling each attempt.

The simulator relies on this equivalence to skip millions of doomed attempts
during partitions (jamsim/sim/model/transport.py), so it is checked property-style: for
any policy and any cut length, one ``DialPathCut`` leaves the manager exactly where
handling every ``DialFailed`` and retry timer in turn would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.actions import Action, Dial, EmitTelemetry
from jamsim.core.errors import UsageError
from jamsim.core.events import DialFailed, DialPathCut, ValidatorSetChanged
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy, Jitter
from jamsim.core.types import ConnectionStatus
from tests.core.helpers import endpoints, ordered_pair


@dataclass(frozen=True)
class Seen:
    """What a telemetry event says, ids included: both paths start from the same
    manager state, so the recorded tables are the same only if the connection and
    event ids (and the outcome-to-attempt references) are."""

    kind: str
    time: float
    attempt: int
    reason: str
    event_id: int
    conn_id: int | None
    ref_event_id: int | None
    peer: bytes | None
    address: object
    direction: object


def _start(policy: ConnectionPolicy, in_current_set: bool,
           emit: bool = True) -> tuple[ConnectionManager, bytes, Dial]:
    local, remote = ordered_pair(3)
    manager = ConnectionManager(local, policy, rng_seed=11, emit_telemetry=emit)
    eps = endpoints([local, remote])
    change = ValidatorSetChanged(current=eps) if in_current_set else \
        ValidatorSetChanged(current=eps[:1], next=eps[1:])
    manager.handle(change, 0.0)
    dials = [a for a in manager.drain_actions() if isinstance(a, Dial)]
    assert len(dials) == 1
    return manager, remote, dials[0]


def _seen(actions: list[Action], now: float) -> list[Seen]:
    return [Seen(a.kind.label, now if a.at is None else a.at, a.attempt, a.reason,
                 a.event_id, a.conn_id, a.ref_event_id, a.peer, a.address, a.direction)
            for a in actions if isinstance(a, EmitTelemetry)]


def _step_by_step(policy: ConnectionPolicy, cut_until: float, in_current_set: bool,
                  emit: bool = True) -> tuple[ConnectionManager, bytes, list[Seen],
                                              float | None]:
    """Every attempt handled as a driver would: DialFailed at each timeout, timers."""
    manager, remote, dial = _start(policy, in_current_set, emit)
    seen: list[Seen] = []
    pending: tuple[int, float] | None = (dial.conn_id, 0.0)
    while True:
        fail_at = pending[1] + dial.timeout if pending else None
        timer = manager.next_deadline()
        if fail_at is not None and fail_at <= cut_until:
            assert pending is not None
            manager.handle(DialFailed(pending[0], "timeout"), fail_at)
            seen += _seen(manager.drain_actions(), fail_at)
            pending = None
        elif pending is None and timer is not None and timer < cut_until:
            manager.handle_timer(timer)
            actions = manager.drain_actions()
            seen += _seen(actions, timer)
            dial = next(a for a in actions if isinstance(a, Dial))
            pending = (dial.conn_id, timer)
        else:
            return manager, remote, seen, pending[1] if pending else None


def _caught_up(policy: ConnectionPolicy, cut_until: float, in_current_set: bool,
               emit: bool = True) -> tuple[ConnectionManager, bytes, list[Seen],
                                           float | None]:
    manager, remote, dial = _start(policy, in_current_set, emit)
    manager.handle(DialPathCut(dial.conn_id), cut_until)
    actions = manager.drain_actions()
    redials = [a for a in actions if isinstance(a, Dial)]
    assert len(redials) <= 1
    if redials:
        started = redials[0].started_at
        assert started is not None and started + redials[0].timeout > cut_until
    else:
        pending = manager.peer(remote)
        assert pending is not None
        started = 0.0 if pending.status is ConnectionStatus.CONNECTING else None
    return manager, remote, _seen(actions, cut_until), started


policies = st.builds(
    ConnectionPolicy,
    initial_retry=st.floats(0.5, 4.0),
    retry_multiplier=st.floats(1.0, 3.0),
    max_retry=st.floats(4.0, 40.0),
    min_retry=st.floats(0.0, 0.5),
    initial_retry_repeats=st.integers(1, 3),
    jitter=st.sampled_from(list(Jitter)),
    connect_timeout=st.floats(0.5, 12.0),
    give_up_after=st.none() | st.floats(10.0, 200.0),
    give_up_clock_resets=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(policies, st.floats(0.0, 400.0), st.booleans(), st.booleans())
def test_catching_up_equals_handling_each_attempt(policy: ConnectionPolicy,
                                                  cut_until: float,
                                                  in_current_set: bool, emit: bool) -> None:
    """Both paths: with telemetry (each attempt's events) and without (closed form)."""
    slow, remote, slow_seen, slow_started = _step_by_step(policy, cut_until, in_current_set,
                                                          emit)
    fast, _, fast_seen, fast_started = _caught_up(policy, cut_until, in_current_set, emit)
    assert fast_seen == slow_seen
    assert fast_started == slow_started
    assert fast.peer(remote) == slow.peer(remote)
    assert fast.next_deadline() == slow.next_deadline()
    assert fast.open_connection_ids() == slow.open_connection_ids()
    # Ids continue from the same place, and so does the random stream.
    assert fast.allocate_connection_id() == slow.allocate_connection_id()
    assert fast._next_event_id == slow._next_event_id
    assert fast._rng.random() == slow._rng.random()


def test_a_long_cut_gives_up_on_a_next_epoch_validator_at_its_time() -> None:
    policy = ConnectionPolicy.preset("jamnp-s", give_up_after=60.0, jitter="none")
    manager, remote, _, started = _caught_up(policy, 500.0, in_current_set=False)
    peer = manager.peer(remote)
    assert peer is not None and peer.status is ConnectionStatus.GIVEN_UP
    assert started is None and manager.next_deadline() is None
    assert 60.0 <= peer.last_change < 120.0


def test_a_dial_still_within_its_timeout_is_left_alone() -> None:
    policy = ConnectionPolicy.preset("jamnp-s")
    manager, _, dial = _start(policy, True)
    manager.handle(DialPathCut(dial.conn_id), policy.connect_timeout / 2)
    assert manager.drain_actions() == []
    assert manager.connection(dial.conn_id) is not None


def test_serial_dialling_refuses_to_catch_up() -> None:
    policy = ConnectionPolicy.preset("jamixir")
    manager, _, dial = _start(policy, True)
    with pytest.raises(UsageError, match="serial_dials"):
        manager.handle(DialPathCut(dial.conn_id), 100.0)


def test_unknown_connection_is_ignored() -> None:
    manager, _, _ = _start(ConnectionPolicy.preset("jamnp-s"), True)
    manager.handle(DialPathCut(999), 100.0)
    assert manager.drain_actions() == []
