"""Every dial and inbound handshake the manager starts ends in an outcome event,
and ``redial_lost_inbound`` holds on both sides of a pair."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jamsim.core.actions import Dial, EmitTelemetry
from jamsim.core.events import (
    ConnectionLost,
    DialFailed,
    InboundConnecting,
    InboundHandshake,
    Shutdown,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import ConnectionStatus, PeerEndpoint, Side, TelemetryKind
from jamsim.identity import PeerAddress
from jamsim.testing.loopback import Loopback
from tests.core.helpers import apply_fault_op, endpoints, ordered_pair

K = TelemetryKind
STARTS = {K.CONNECTING_OUT: (K.CONNECTED_OUT, K.CONNECT_OUT_FAILED),
          K.CONNECTING_IN: (K.CONNECTED_IN, K.CONNECT_IN_FAILED)}


def _unanswered(events: list[EmitTelemetry]) -> list[EmitTelemetry]:
    """Start events no outcome refers to (or that more than one does)."""
    outcomes: dict[int, int] = {}
    for e in events:
        if e.ref_event_id is not None and e.kind in (K.CONNECTED_OUT, K.CONNECT_OUT_FAILED,
                                                     K.CONNECTED_IN, K.CONNECT_IN_FAILED):
            outcomes[e.ref_event_id] = outcomes.get(e.ref_event_id, 0) + 1
    return [e for e in events if e.kind in STARTS and outcomes.get(e.event_id) != 1]


def test_a_dial_to_a_peer_leaving_the_set_is_reported_failed() -> None:
    a, b = ordered_pair()
    m = ConnectionManager(a, ConnectionPolicy.preset("jamnp-s"))
    m.handle(ValidatorSetChanged(current=endpoints([a, b])), 0.0)
    dial = next(x for x in m.drain_actions() if isinstance(x, Dial))
    m.handle(ValidatorSetChanged(current=endpoints([a])), 1.0)
    out = [x for x in m.drain_actions() if isinstance(x, EmitTelemetry)]
    assert [(e.kind, e.conn_id, e.reason) for e in out] == \
        [(K.CONNECT_OUT_FAILED, dial.conn_id, "peer not in validator set")]


def test_shutdown_reports_dials_and_handshakes_in_flight_as_failed() -> None:
    a, b = ordered_pair()
    m = ConnectionManager(a, ConnectionPolicy.preset("jamnp-s"))
    m.handle(ValidatorSetChanged(current=endpoints([a, b])), 0.0)
    dial = next(x for x in m.drain_actions() if isinstance(x, Dial))
    inbound = m.allocate_connection_id()
    m.handle(InboundConnecting(inbound, PeerAddress("127.0.0.1", 9)), 0.5)
    m.drain_actions()
    m.handle(Shutdown(), 1.0)
    out = [x for x in m.drain_actions() if isinstance(x, EmitTelemetry)]
    assert {(e.kind, e.conn_id, e.reason) for e in out} == {
        (K.CONNECT_OUT_FAILED, dial.conn_id, "shutting down"),
        (K.CONNECT_IN_FAILED, inbound, "shutting down")}


def test_redial_lost_inbound_false_holds_on_the_non_preferred_side_too() -> None:
    a, b = ordered_pair()  # a dials b (preferred); b loses its outbound-from-a = inbound
    policy = ConnectionPolicy.preset("jamnp-s", redial_lost_inbound=False)
    for local, remote in ((b, a), (a, b)):
        m = ConnectionManager(local, policy)
        m.handle(ValidatorSetChanged(current=endpoints([a, b])), 0.0)
        for dial in [x for x in m.drain_actions() if isinstance(x, Dial)]:
            m.handle(DialFailed(dial.conn_id, "timeout"), 0.05)  # the preferred side's
        cid = m.allocate_connection_id()
        m.handle(InboundHandshake(cid, remote, PeerAddress("127.0.0.1", 9)), 0.1)
        m.drain_actions()
        m.handle(ConnectionLost(cid, "idle timeout", None), 5.0)
        assert m.status(remote) is ConnectionStatus.WAITING_INBOUND
        assert m.next_deadline() is None, "no fallback dial after losing an inbound"
    # with the default (True) the non-preferred side falls back after 5 s, as before
    m = ConnectionManager(b, ConnectionPolicy.preset("jamnp-s"))
    m.handle(ValidatorSetChanged(current=endpoints([a, b])), 0.0)
    cid = m.allocate_connection_id()
    m.handle(InboundHandshake(cid, a, PeerAddress("127.0.0.1", 9)), 0.1)
    m.handle(ConnectionLost(cid, "gone", Side.REMOTE), 5.0)
    assert m.next_deadline() == 10.0


steps = st.lists(st.tuples(st.sampled_from(["deliver", "timer", "cut", "link", "leave",
                                            "rejoin"]), st.integers(0, 1000)), max_size=60)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), steps,
       st.sampled_from(["jamnp-s", "jamixir"]))
def test_every_connecting_event_gets_exactly_one_outcome(
        a: bytes, b: bytes, script: list[tuple[str, int]], preset: str) -> None:
    if a == b:
        return
    link_up = [True]
    lb = Loopback({a: ConnectionManager(a, ConnectionPolicy.preset(preset), rng_seed=3),
                   b: ConnectionManager(b, ConnectionPolicy.preset(preset), rng_seed=4)},
                  reachable=lambda x, y: link_up[0])
    both = (PeerEndpoint(a, PeerAddress("127.0.0.1", 1)),
            PeerEndpoint(b, PeerAddress("127.0.0.1", 2)))
    lb.start([(a, ValidatorSetChanged(current=both)), (b, ValidatorSetChanged(current=both))])
    for op, n in script:
        node = (a, b)[n % 2]
        if apply_fault_op(lb, op, n, link_up):
            continue
        if op == "leave":  # the other peer left the validator set
            lb.handle(node, ValidatorSetChanged(current=tuple(e for e in both if e.key == node)))
        elif op == "rejoin":
            lb.handle(node, ValidatorSetChanged(current=both))
    for node in (a, b):
        lb.handle(node, Shutdown())
    for node in (a, b):
        events = [e for who, e in lb.telemetry if who == node]
        assert _unanswered(events) == []
