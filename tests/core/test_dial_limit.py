"""policy.max_parallel_dials: a cap on dials in flight, queued peers served in order.

Pure core tests: the manager is driven by hand (and by hypothesis), no event loop.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.actions import Dial
from jamsim.core.errors import UsageError
from jamsim.core.events import (
    ConnectionEstablished,
    DialFailed,
    DialPathCut,
    InboundConnecting,
    InboundHandshake,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import ConnectionStatus
from jamsim.identity import ValidatorIdentity, is_preferred_initiator
from tests.core.helpers import endpoints


def dialled_set(peers: int, seed: int = 3) -> tuple[bytes, list[bytes]]:
    """A local key and ``peers`` keys it is the preferred initiator for (it dials all)."""
    local = ValidatorIdentity.generate_dev(seed, 0).public_key
    others: list[bytes] = []
    index = 1
    while len(others) < peers:
        key = ValidatorIdentity.generate_dev(seed, index).public_key
        if is_preferred_initiator(local, key):
            others.append(key)
        index += 1
    return local, others


def limited(limit: int | None, **overrides: object) -> ConnectionPolicy:
    return ConnectionPolicy.preset("jamnp-s", max_parallel_dials=limit, jitter="none",
                                   initial_retry=1.0, min_retry=1.0, **overrides)


def dials(actions: list[object]) -> list[Dial]:
    return [a for a in actions if isinstance(a, Dial)]


def started(limit: int | None, peers: int) -> tuple[ConnectionManager, list[bytes], list[Dial]]:
    local, others = dialled_set(peers)
    manager = ConnectionManager(local, limited(limit))
    manager.handle(ValidatorSetChanged(current=endpoints([local, *others])), 0.0)
    return manager, others, dials(manager.drain_actions())


def test_dials_beyond_the_limit_wait_and_start_in_order_as_earlier_ones_end() -> None:
    manager, peers, first = started(3, 7)
    assert [d.peer for d in first] == peers[:3]
    # The waiting peers are already "connecting" (the dial is decided, not yet sent).
    assert all(manager.status(p) is ConnectionStatus.CONNECTING for p in peers[3:])
    manager.handle(ConnectionEstablished(first[0].conn_id, first[0].peer), 0.1)
    (next_dial,) = dials(manager.drain_actions())
    assert next_dial.peer == peers[3]
    manager.handle(DialFailed(first[1].conn_id, "timeout"), 5.0)
    (after_failure,) = dials(manager.drain_actions())
    assert after_failure.peer == peers[4]
    # The failed peer retries through the same queue once its backoff expires.
    manager.handle_timer(6.0)
    assert dials(manager.drain_actions()) == []
    assert manager.status(first[1].peer) is ConnectionStatus.CONNECTING


def test_unlimited_policy_dials_everyone_at_once() -> None:
    _, peers, first = started(None, 7)
    assert [d.peer for d in first] == peers


def test_a_queued_peer_that_connects_inbound_is_not_dialled() -> None:
    manager, peers, first = started(1, 3)
    waiting = peers[1]
    conn = manager.allocate_connection_id()
    manager.handle(InboundConnecting(conn), 0.05)
    manager.handle(InboundHandshake(conn, waiting), 0.1)
    assert manager.status(waiting) is ConnectionStatus.CONNECTED
    manager.drain_actions()
    manager.handle(ConnectionEstablished(first[0].conn_id, first[0].peer), 0.2)
    assert [d.peer for d in dials(manager.drain_actions())] == [peers[2]]


def test_a_peer_leaving_the_set_frees_its_dial_slot() -> None:
    manager, peers, _ = started(2, 4)
    local = manager.local_key
    manager.handle(ValidatorSetChanged(current=endpoints([local, *peers[1:]])), 1.0)
    assert [d.peer for d in dials(manager.drain_actions())] == [peers[2]]


def test_dial_path_cut_is_refused_under_a_limit() -> None:
    manager, _, first = started(2, 3)
    with pytest.raises(UsageError, match="max_parallel_dials"):
        manager.handle(DialPathCut(first[0].conn_id), 10.0)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"max_parallel_dials": 0}, "max_parallel_dials must be >= 1"),
    ({"max_parallel_dials": 2, "serial_dials": True}, "does not combine with serial_dials"),
])
def test_invalid_limits_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ConnectionPolicy.preset("jamnp-s", **overrides)


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 6), peers=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_in_flight_dials_never_exceed_the_limit_and_everyone_connects(
    limit: int, peers: int, seed: int,
) -> None:
    """A random driver answers dials in random order, failing some; at every step
    at most ``limit`` dials are unanswered, and all peers end up connected."""
    rng = random.Random(seed)
    local, others = dialled_set(peers)
    manager = ConnectionManager(local, limited(limit), rng_seed=seed)
    now = 0.0
    manager.handle(ValidatorSetChanged(current=endpoints([local, *others])), now)
    in_flight: list[Dial] = dials(manager.drain_actions())
    for _ in range(2000):
        assert len(in_flight) <= limit
        if not in_flight:
            deadline = manager.next_deadline()
            if deadline is None:
                break
            now = max(now, deadline)
            manager.handle_timer(now)
        else:
            now += rng.uniform(0.01, 1.0)
            dial = in_flight.pop(rng.randrange(len(in_flight)))
            if rng.random() < 0.3:
                manager.handle(DialFailed(dial.conn_id, "timeout"), now)
            else:
                manager.handle(ConnectionEstablished(dial.conn_id, dial.peer), now)
        in_flight += dials(manager.drain_actions())
    assert not in_flight
    assert all(manager.status(p) is ConnectionStatus.CONNECTED for p in others)
