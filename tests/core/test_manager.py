"""ConnectionManager behaviour with a fake clock: no event loop, no sleeps."""

from __future__ import annotations

import pytest

from jamsim.core.actions import AcceptInbound, CloseConnection, Dial, EmitTelemetry
from jamsim.core.errors import UsageError
from jamsim.core.events import (
    ConnectionEstablished,
    ConnectionLost,
    DialFailed,
    InboundConnecting,
    InboundFailed,
    InboundHandshake,
    PeerMisbehaved,
    Shutdown,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import ConnectionStatus, Direction, PeerEndpoint, Side, TelemetryKind
from jamsim.identity import PeerAddress
from tests.core.helpers import endpoints, keys, ordered_pair

JAMNP = ConnectionPolicy.preset("jamnp-s", jitter="none", initial_retry=1.0, min_retry=1.0)
JAMIXIR = ConnectionPolicy.preset("jamixir")


def of(actions: list[object], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def telemetry(actions: list[object]) -> list[TelemetryKind]:
    return [a.kind for a in actions if isinstance(a, EmitTelemetry)]


def start(local: bytes, peers: list[bytes], policy: ConnectionPolicy,
          now: float = 0.0) -> tuple[ConnectionManager, list[object]]:
    m = ConnectionManager(local, policy)
    m.handle(ValidatorSetChanged(current=endpoints([local, *peers])), now)
    return m, m.drain_actions()


# ------------------------------------------------------------------ dialling


def test_preferred_side_dials_and_connects() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMNP)
    (dial,) = of(actions, Dial)
    assert dial.peer == b and dial.attempt == 1 and dial.timeout == JAMNP.connect_timeout
    assert m.status(b) is ConnectionStatus.CONNECTING
    assert telemetry(actions) == [TelemetryKind.CONNECTING_OUT]
    m.handle(ConnectionEstablished(dial.conn_id, b), 0.1)
    out = m.drain_actions()
    assert telemetry(out) == [TelemetryKind.CONNECTED_OUT]
    assert out[0].ref_event_id == actions[0].event_id
    assert m.status(b) is ConnectionStatus.CONNECTED
    assert m.live_connection(b) == dial.conn_id and m.live_peers() == {b}
    assert m.next_deadline() is None


def test_non_preferred_side_waits_then_falls_back_under_jamnp_s() -> None:
    a, b = ordered_pair()
    m, actions = start(b, [a], JAMNP)
    assert not of(actions, Dial)
    assert m.status(a) is ConnectionStatus.WAITING_INBOUND
    assert m.next_deadline() == JAMNP.fallback_after
    m.handle_timer(4.9)
    assert not m.drain_actions()
    m.handle_timer(5.0)
    (dial,) = of(m.drain_actions(), Dial)
    assert dial.peer == a


def test_jamixir_non_preferred_side_never_dials() -> None:
    a, b = ordered_pair()
    m, actions = start(b, [a], JAMIXIR)
    assert not of(actions, Dial)
    assert m.status(a) is ConnectionStatus.WAITING_INBOUND
    assert m.next_deadline() is None


def test_failed_dials_back_off_exponentially_and_reset_after_success() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMNP)
    conn = of(actions, Dial)[0].conn_id
    now = 0.0
    expected = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 32.0]
    for delay in expected:
        m.handle(DialFailed(conn, "timeout"), now)
        assert m.status(b) is ConnectionStatus.RETRYING
        assert m.next_deadline() == pytest.approx(now + delay)
        now += delay
        m.handle_timer(now)
        (dial,) = of(m.drain_actions(), Dial)
        conn = dial.conn_id
    assert dial.attempt == len(expected) + 1
    m.handle(ConnectionEstablished(conn, b), now)
    assert m.peer(b).attempts == 0  # type: ignore[union-attr]


def test_full_jitter_spreads_retries() -> None:
    policy = ConnectionPolicy.preset("jamnp-s")
    peers = keys(40, seed=5)
    local = peers.pop()
    m, actions = start(local, peers, policy)
    deadlines = set()
    for dial in of(actions, Dial):
        m.handle(DialFailed(dial.conn_id, "refused"), 0.0)
    for peer in peers:
        snap = m.peer(peer)
        if snap and snap.retry_at is not None and snap.status is ConnectionStatus.RETRYING:
            deadlines.add(round(snap.retry_at, 6))
    assert len(deadlines) > 5
    assert all(policy.min_retry <= d <= policy.initial_retry for d in deadlines)


def test_jamixir_give_up_never_fires_because_its_clock_resets() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMIXIR)
    conn = of(actions, Dial)[0].conn_id
    now = 0.0
    for _ in range(40):  # > 20 minutes of failures
        m.handle(DialFailed(conn, "timeout"), now)
        now = m.next_deadline()  # type: ignore[assignment]
        m.handle_timer(now)
        conn = of(m.drain_actions(), Dial)[0].conn_id
    assert now > 600
    assert m.status(b) is ConnectionStatus.CONNECTING


def test_give_up_when_clock_does_not_reset() -> None:
    policy = ConnectionPolicy.preset("jamixir", give_up_clock_resets=False, serial_dials=False)
    a, b = ordered_pair()
    m, actions = start(a, [b], policy)
    conn = of(actions, Dial)[0].conn_id
    now = 0.0
    while True:
        m.handle(DialFailed(conn, "timeout"), now)
        if m.status(b) is ConnectionStatus.GIVEN_UP:
            break
        now = m.next_deadline()  # type: ignore[assignment]
        m.handle_timer(now)
        conn = of(m.drain_actions(), Dial)[0].conn_id
    assert now >= 300
    assert m.next_deadline() is None
    # A new validator-set announcement revives a given-up peer.
    m.handle(ValidatorSetChanged(current=endpoints([a, b])), now + 1)
    assert of(m.drain_actions(), Dial)


def test_jamnp_s_spares_current_set_but_gives_up_on_next_epoch_only_peers() -> None:
    policy = ConnectionPolicy.preset("jamnp-s", give_up_after=10.0)
    a, b = ordered_pair()
    c = keys(3, seed=9)[2]
    m = ConnectionManager(a, policy)
    ends = endpoints([a, b, c])
    m.handle(ValidatorSetChanged(current=ends[:2], next=(ends[2],)), 0.0)
    now = 0.0
    for _ in range(60):
        for dial in of(m.drain_actions(), Dial):
            m.handle(DialFailed(dial.conn_id, "timeout"), now)
        deadline = m.next_deadline()
        if deadline is None:
            break
        now = deadline
        m.handle_timer(now)
    assert m.status(b) is not ConnectionStatus.GIVEN_UP
    if m.peer(c) and m.peer(c).we_are_preferred:  # type: ignore[union-attr]
        assert m.status(c) is ConnectionStatus.GIVEN_UP


# ------------------------------------------------------------------ losses


def test_lost_outbound_redials_after_fixed_5s_under_jamixir() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMIXIR)
    conn = of(actions, Dial)[0].conn_id
    m.handle(ConnectionEstablished(conn, b), 1.0)
    m.drain_actions()
    m.handle(ConnectionLost(conn, "closed by peer", Side.REMOTE), 10.0)
    out = m.drain_actions()
    assert telemetry(out) == [TelemetryKind.DISCONNECTED]
    assert out[0].side is Side.REMOTE
    assert m.next_deadline() == 15.0
    m.handle_timer(15.0)
    assert of(m.drain_actions(), Dial)


def test_lost_inbound_waits_forever_under_jamixir() -> None:
    a, b = ordered_pair()
    m, _ = start(b, [a], JAMIXIR)
    cid = m.allocate_connection_id()
    m.handle(InboundConnecting(cid, PeerAddress("127.0.0.1", 1)), 0.0)
    m.handle(InboundHandshake(cid, a), 0.1)
    out = m.drain_actions()
    assert of(out, AcceptInbound) == [AcceptInbound(cid, a)]
    assert telemetry(out) == [TelemetryKind.CONNECTING_IN, TelemetryKind.CONNECTED_IN]
    m.handle(ConnectionLost(cid, "idle", Side.REMOTE), 5.0)
    assert m.status(a) is ConnectionStatus.WAITING_INBOUND
    assert m.next_deadline() is None


def test_lost_inbound_falls_back_under_jamnp_s() -> None:
    a, b = ordered_pair()
    m, _ = start(b, [a], JAMNP)
    cid = m.allocate_connection_id()
    m.handle(InboundHandshake(cid, a), 0.1)
    m.handle(ConnectionLost(cid, "idle timeout", None), 5.0)
    assert m.status(a) is ConnectionStatus.WAITING_INBOUND
    assert m.next_deadline() == 10.0


def test_events_for_unknown_connections_are_ignored() -> None:
    a, b = ordered_pair()
    m, _ = start(a, [b], JAMNP)
    for event in (ConnectionEstablished(999, b), DialFailed(999, "x"),
                  ConnectionLost(999, "x"), InboundFailed(999, "x")):
        m.handle(event, 1.0)
    assert not m.drain_actions()


# ------------------------------------------------------------------ duplicates


def test_simultaneous_dial_keeps_preferred_initiators_connection() -> None:
    a, b = ordered_pair()
    ma, out_a = start(a, [b], JAMNP)
    mb, _ = start(b, [a], JAMNP)
    mb.handle_timer(5.0)  # b's fallback dial
    a_dial = of(out_a, Dial)[0]
    b_dial = of(mb.drain_actions(), Dial)[0]
    # Transport 1: a -> b (preferred). Transport 2: b -> a (fallback).
    b_in = mb.allocate_connection_id()
    a_in = ma.allocate_connection_id()
    # Worst order: each side sees the other's connection first.
    ma.handle(InboundHandshake(a_in, b), 5.1)
    mb.handle(InboundHandshake(b_in, a), 5.1)
    ma.handle(ConnectionEstablished(a_dial.conn_id, b), 5.2)
    mb.handle(ConnectionEstablished(b_dial.conn_id, a), 5.2)
    assert ma.live_connection(b) == a_dial.conn_id  # a kept its own (preferred) dial
    assert mb.live_connection(a) == b_in  # b kept a's dial too
    assert CloseConnection(a_in, "duplicate connection") in ma.drain_actions()
    assert CloseConnection(b_dial.conn_id, "duplicate connection") in mb.drain_actions()


def test_jamixir_refuses_duplicate_inbound_keeping_the_older() -> None:
    a, b = ordered_pair()
    m, _ = start(b, [a], JAMIXIR)
    first, second = m.allocate_connection_id(), m.allocate_connection_id()
    m.handle(InboundHandshake(first, a), 1.0)
    m.handle(InboundHandshake(second, a), 2.0)
    assert m.live_connection(a) == first
    assert CloseConnection(second, "duplicate connection") in m.drain_actions()


def test_jamnp_s_prefers_the_newer_redial_from_the_same_initiator() -> None:
    a, b = ordered_pair()
    m, _ = start(b, [a], JAMNP)
    first, second = m.allocate_connection_id(), m.allocate_connection_id()
    m.handle(InboundHandshake(first, a), 1.0)
    m.handle(InboundHandshake(second, a), 2.0)
    assert m.live_connection(a) == second  # a redialled: it believes `first` is dead
    assert CloseConnection(first, "duplicate connection") in m.drain_actions()


# ------------------------------------------------------------------ inbound admission


def test_non_validator_slots_are_bounded_and_refusals_explained() -> None:
    policy = ConnectionPolicy.preset("jamnp-s", non_validator_slots=2)
    local, *strangers = keys(5, seed=11)
    m = ConnectionManager(local, policy)
    m.handle(ValidatorSetChanged(current=endpoints([local])), 0.0)
    for i, stranger in enumerate(strangers):
        m.handle(InboundHandshake(m.allocate_connection_id(), stranger, builder=True), float(i))
    out = m.drain_actions()
    assert len(of(out, AcceptInbound)) == 2
    refusals = of(out, CloseConnection)
    assert [r.reason for r in refusals] == ["no non-validator slot free"] * 2
    # A slot holder leaving frees the slot.
    holder = of(out, AcceptInbound)[0]
    m.handle(ConnectionLost(holder.conn_id, "bye"), 10.0)
    m.handle(InboundHandshake(m.allocate_connection_id(), strangers[-1]), 11.0)
    assert of(m.drain_actions(), AcceptInbound)


def test_validators_only_refuses_strangers_and_self() -> None:
    policy = ConnectionPolicy.preset("jamnp-s", validators_only=True)
    local, stranger = keys(2, seed=12)
    m = ConnectionManager(local, policy)
    m.handle(InboundHandshake(m.allocate_connection_id(), stranger), 0.0)
    m.handle(InboundHandshake(m.allocate_connection_id(), local), 0.0)
    reasons = [a.reason for a in of(m.drain_actions(), CloseConnection)]
    assert reasons == ["peer not in validator set", "connection to self"]


def test_misbehaviour_is_reported() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMNP)
    conn = of(actions, Dial)[0].conn_id
    m.handle(ConnectionEstablished(conn, b), 0.0)
    m.drain_actions()
    m.handle(PeerMisbehaved(conn, "malformed frame"), 1.0)
    (event,) = m.drain_actions()
    assert isinstance(event, EmitTelemetry)
    assert event.kind is TelemetryKind.PEER_MISBEHAVED and event.peer == b


def test_established_with_unexpected_key_is_closed_and_the_peer_retried() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMNP)
    conn = of(actions, Dial)[0].conn_id
    m.handle(ConnectionEstablished(conn, b"\x07" * 32), 0.5)
    out = m.drain_actions()
    assert of(out, CloseConnection) == [CloseConnection(conn, "unexpected peer key")]
    assert telemetry(out) == [TelemetryKind.CONNECT_OUT_FAILED]
    assert m.status(b) is ConnectionStatus.RETRYING
    deadline = m.next_deadline()
    assert deadline is not None
    m.handle_timer(deadline)
    (redial,) = of(m.drain_actions(), Dial)
    assert redial.peer == b and redial.attempt == 2


# ------------------------------------------------------------------ epochs, shutdown


def test_validator_set_change_drops_leavers_and_dials_newcomers() -> None:
    ks = keys(6, seed=2)
    local = ks[0]
    m, actions = start(local, ks[1:4], JAMNP)
    for dial in of(actions, Dial):
        m.handle(ConnectionEstablished(dial.conn_id, dial.peer), 1.0)
    m.drain_actions()
    live_before = m.live_peers()
    ends = endpoints(ks)
    # Next epoch: ks[1] leaves, ks[4], ks[5] join (as next-epoch validators).
    m.handle(ValidatorSetChanged(current=(ends[0], ends[2], ends[3]), next=ends[4:]), 2.0)
    out = m.drain_actions()
    if ks[1] in live_before:
        assert CloseConnection(m_conn := next(
            a.conn_id for a in out if isinstance(a, CloseConnection)), "peer not in validator set"
        ) in out and m_conn
    assert ks[1] not in m.connections()
    assert set(m.connections()) == set(ks[2:])
    newcomers_dialled = {d.peer for d in of(out, Dial)}
    assert newcomers_dialled <= {ks[4], ks[5]}


def test_shutdown_closes_everything_and_stops() -> None:
    a, b = ordered_pair()
    m, actions = start(a, [b], JAMNP)
    conn = of(actions, Dial)[0].conn_id
    m.handle(ConnectionEstablished(conn, b), 0.0)
    m.drain_actions()
    m.handle(Shutdown(), 1.0)
    out = m.drain_actions()
    assert CloseConnection(conn, "shutting down") in out
    assert TelemetryKind.DISCONNECTED in telemetry(out)
    assert m.is_shut_down and m.next_deadline() is None and not m.live_peers()
    m.handle(ValidatorSetChanged(current=endpoints([a, b])), 2.0)
    assert not m.drain_actions()


# ------------------------------------------------------------------ serial dialling


def test_serial_dials_block_the_manager_like_jamixir() -> None:
    local, *peers = keys(8, seed=3)
    m = ConnectionManager(local, JAMIXIR)
    m.handle(ValidatorSetChanged(current=endpoints([local, *peers])), 0.0)
    dials = of(m.drain_actions(), Dial)
    assert len(dials) == 1  # one at a time
    preferred = [p for p in peers if m.peer(p).we_are_preferred]  # type: ignore[union-attr]
    # While the dial is in flight, an inbound handshake waits in the backlog.
    non_preferred = [p for p in peers if p not in preferred]
    cid = m.allocate_connection_id()
    if non_preferred:
        m.handle(InboundHandshake(cid, non_preferred[0]), 1.0)
        assert not of(m.drain_actions(), AcceptInbound)
    assert m.next_deadline() is None  # timers wait too
    seen = {dials[0].peer}
    now = 10.0
    m.handle(DialFailed(dials[0].conn_id, "timeout"), now)
    out = m.drain_actions()
    accepted_at = None
    while (dial := next(iter(of(out, Dial)), None)) is not None:
        # Mailbox order: the dials queued at t=0 run before the inbound from t=1.
        assert not of(out, AcceptInbound)
        seen.add(dial.peer)
        now += 10.0
        m.handle(DialFailed(dial.conn_id, "timeout"), now)
        out = m.drain_actions()
    if of(out, AcceptInbound):
        accepted_at = now
    assert seen == set(preferred)
    assert now == 10.0 * len(preferred)  # serial: 10 s per unreachable peer
    if non_preferred:
        assert accepted_at == now  # the inbound waited for every queued dial


def test_unknown_event_type_is_refused() -> None:
    m = ConnectionManager(keys(1)[0])
    # Pure Python dispatches and finds no handler (UsageError); the compiled build
    # checks the ``Event`` annotation at the call (TypeError). Either refuses it.
    with pytest.raises((UsageError, TypeError)):
        m.handle("not an event", 0.0)  # type: ignore[arg-type]


def test_bad_local_key() -> None:
    with pytest.raises(UsageError):
        ConnectionManager(b"short")


def test_snapshots_report_direction() -> None:
    a, b = ordered_pair()
    m, _ = start(b, [a], JAMNP)
    cid = m.allocate_connection_id()
    m.handle(InboundHandshake(cid, a, PeerAddress("::1", 5)), 0.0)
    snap = m.connections()[a]
    assert snap.direction is Direction.INBOUND and snap.conn_id == cid
    assert m.connection(cid) is not None and cid in m.open_connection_ids()
    assert PeerEndpoint(a, PeerAddress("::1", 5)).key == a
