"""PeerSilence: a connection whose peer went silent loses a duplicate contest."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jamsim.core.actions import AcceptInbound, CloseConnection, Dial
from jamsim.core.events import (
    ConnectionEstablished,
    InboundHandshake,
    PeerSilence,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import PeerEndpoint
from jamsim.identity import PeerAddress
from jamsim.testing.loopback import Delivery, Loopback
from tests.core.helpers import apply_fault_op, endpoints, ordered_pair

POLICY = ConnectionPolicy.preset("jamnp-s")
ADDR = PeerAddress("127.0.0.1", 9)


def _connected(local: bytes, remote: bytes) -> tuple[ConnectionManager, int]:
    """``local`` (the preferred initiator) holding a live outbound connection."""
    m = ConnectionManager(local, POLICY)
    m.handle(ValidatorSetChanged(current=endpoints([local, remote])), 0.0)
    dial = next(a for a in m.drain_actions() if isinstance(a, Dial))
    m.handle(ConnectionEstablished(dial.conn_id, remote), 0.1)
    m.drain_actions()
    return m, dial.conn_id


def test_a_silent_connection_loses_to_a_restarted_peers_new_one() -> None:
    p, x = ordered_pair()
    for since, survivor in ((30.0, "new"), (None, "old")):
        m, old = _connected(p, x)
        new = m.allocate_connection_id()
        m.handle(PeerSilence(old, since), 38.0)
        m.handle(InboundHandshake(new, x, ADDR), 38.0)
        out = m.drain_actions()
        if survivor == "new":
            assert m.live_connection(x) == new and AcceptInbound(new, x) in out
            assert CloseConnection(old, "duplicate connection") in out
        else:  # the preferred initiator's connection wins, as before
            assert m.live_connection(x) == old
            assert CloseConnection(new, "duplicate connection") in out


def test_silence_is_ignored_for_connections_not_live_and_cleared_by_none() -> None:
    p, x = ordered_pair()
    m, old = _connected(p, x)
    m.handle(PeerSilence(999, 1.0), 5.0)  # unknown id: ignored
    m.handle(PeerSilence(old, 3.0), 5.0)
    m.handle(PeerSilence(old, None), 6.0)  # it answers again
    new = m.allocate_connection_id()
    m.handle(InboundHandshake(new, x, ADDR), 7.0)
    assert m.live_connection(x) == old


steps = st.lists(st.tuples(st.sampled_from(["deliver", "timer", "cut", "link", "silent"]),
                           st.integers(0, 1000)), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), steps)
def test_managers_still_agree_on_one_connection_with_silence_reports(
        a: bytes, b: bytes, script: list[tuple[str, int]]) -> None:
    """Silence reports reach the two ends of a connection in any order relative to
    other events (as a cut path is noticed at each end on its own clock); once
    faults stop, both ends must still name one shared live connection."""
    if a == b:
        return
    link_up = [True]
    lb = Loopback({a: ConnectionManager(a, POLICY, rng_seed=3),
                   b: ConnectionManager(b, POLICY, rng_seed=4)},
                  reachable=lambda x, y: link_up[0])
    both = (PeerEndpoint(a, PeerAddress("127.0.0.1", 1)),
            PeerEndpoint(b, PeerAddress("127.0.0.1", 2)))
    lb.start([(a, ValidatorSetChanged(current=both)), (b, ValidatorSetChanged(current=both))])
    for op, n in script:
        if apply_fault_op(lb, op, n, link_up):
            continue
        if op == "silent":  # both ends stop hearing each other on one connection
            live = [t for t in lb.transports if not t.closed and t.acceptor_id is not None]
            if live:
                t = live[n % len(live)]
                lb.pending.append(Delivery(t.dialer, PeerSilence(t.dialer_id, lb.now)))
                lb.pending.append(Delivery(t.acceptor, PeerSilence(t.acceptor_id, lb.now)))
    link_up[0] = True
    lb.settle()
    agreed = lb.live_transport(a, b)
    assert agreed is not None and lb.open_transports(a, b) == [agreed]
