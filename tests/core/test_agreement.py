"""Property: whatever the interleaving, two managers end on one agreed connection.

Hypothesis picks keys (so either side may be the preferred initiator), which
epoch sets each side is told about, the order in which in-flight events arrive,
when transports die and when the link is down. Once faults stop and everything in
flight is delivered, both ends must name the same single live transport and no
other transport between them may stay open.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jamsim.core.events import ValidatorSetChanged
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import PeerEndpoint
from jamsim.identity import PeerAddress
from jamsim.testing.loopback import Loopback
from tests.core.helpers import apply_fault_op

keys = st.binary(min_size=32, max_size=32)
steps = st.lists(
    st.tuples(st.sampled_from(["deliver", "timer", "cut", "link"]), st.integers(0, 1000)),
    max_size=60,
)
epoch_slot = st.sampled_from(["previous", "current", "next"])


def _set_event(a: bytes, b: bytes, a_slot: str, b_slot: str) -> ValidatorSetChanged:
    groups: dict[str, list[PeerEndpoint]] = {"previous": [], "current": [], "next": []}
    groups[a_slot].append(PeerEndpoint(a, PeerAddress("127.0.0.1", 1)))
    groups[b_slot].append(PeerEndpoint(b, PeerAddress("127.0.0.1", 2)))
    return ValidatorSetChanged(tuple(groups["previous"]), tuple(groups["current"]),
                               tuple(groups["next"]))


def _run(policy: ConnectionPolicy, a: bytes, b: bytes, a_slot: str, b_slot: str,
         script: list[tuple[str, int]]) -> Loopback:
    link_up = [True]
    lb = Loopback({a: ConnectionManager(a, policy, rng_seed=3),
                   b: ConnectionManager(b, policy, rng_seed=4)},
                  reachable=lambda x, y: link_up[0])
    lb.start([(a, _set_event(a, b, a_slot, b_slot)), (b, _set_event(a, b, b_slot, a_slot))])
    for op, n in script:
        apply_fault_op(lb, op, n, link_up)
    link_up[0] = True  # faults stop
    lb.settle()
    return lb


def _assert_agreement(lb: Loopback, a: bytes, b: bytes) -> None:
    agreed = lb.live_transport(a, b)
    assert agreed is not None, "both ends should name the same live connection"
    assert lb.open_transports(a, b) == [agreed], "exactly one transport must stay open"
    assert not lb.pending


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys, keys, epoch_slot, epoch_slot, steps)
def test_jamnp_s_managers_agree_on_one_connection(a: bytes, b: bytes, a_slot: str,
                                                  b_slot: str,
                                                  script: list[tuple[str, int]]) -> None:
    if a == b:
        return
    lb = _run(ConnectionPolicy.preset("jamnp-s"), a, b, a_slot, b_slot, script)
    _assert_agreement(lb, a, b)


@settings(max_examples=200, deadline=None)
@given(keys, keys, steps)
def test_jamixir_managers_agree_when_losses_are_seen_by_both_ends(
        a: bytes, b: bytes, script: list[tuple[str, int]]) -> None:
    """Jamixir converges too, as long as every loss is noticed by both ends
    (here it is; with idle timeout disabled a silent loss is the case it fails)."""
    if a == b:
        return
    lb = _run(ConnectionPolicy.preset("jamixir"), a, b, "current", "current", script)
    _assert_agreement(lb, a, b)


def test_three_nodes_settle_into_a_full_mesh() -> None:
    from tests.core.helpers import keys as dev_keys
    from tests.core.helpers import loopback

    lb = loopback(dev_keys(5, seed=8), ConnectionPolicy.preset("jamnp-s"))
    lb.settle()
    assert lb.all_connected()


@settings(max_examples=300, deadline=None)
@given(keys, keys, st.lists(st.integers(0, 100), min_size=12, max_size=12))
def test_simultaneous_connections_resolve_identically_without_a_redial(
        a: bytes, b: bytes, order: list[int]) -> None:
    """Both sides dial at once; whatever order the handshakes and closes arrive in,
    exactly one connection survives and both ends agree on it with no timer (so no
    redial) needed: the duplicate rule alone must decide, identically at both ends."""
    if a == b:
        return
    policy = ConnectionPolicy.preset("jamnp-s", fallback_after=0.0)
    lb = Loopback({a: ConnectionManager(a, policy), b: ConnectionManager(b, policy)})
    lb.start([(a, _set_event(a, b, "current", "current")),
              (b, _set_event(a, b, "current", "current"))])
    lb.fire_timers()  # the non-preferred side's fallback dial, at t=0
    assert len(lb.transports) == 2
    for n in order:
        if lb.pending:
            lb.deliver(n % len(lb.pending))
    while lb.pending:
        lb.deliver(0)
    _assert_agreement(lb, a, b)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["jamnp-s", "jamixir"]), st.integers(0, 2**16),
       st.lists(st.sampled_from(["fail", "lose", "connect"]), min_size=1, max_size=40))
def test_manager_retry_deadlines_stay_within_policy_bounds(
        preset: str, seed: int, outcomes: list[str]) -> None:
    """Whatever happens to its dials, every retry the manager schedules lies within
    [min_retry, max_retry] of the failure (or exactly reconnect_after_loss)."""
    from jamsim.core.actions import Dial
    from jamsim.core.events import ConnectionEstablished, ConnectionLost, DialFailed
    from jamsim.core.types import ConnectionStatus
    from tests.core.helpers import endpoints, ordered_pair

    policy = ConnectionPolicy.preset(preset)
    a, b = ordered_pair(seed % 50)
    m = ConnectionManager(a, policy, rng_seed=seed)
    m.handle(ValidatorSetChanged(current=endpoints([a, b])), 0.0)
    now = 0.0
    for outcome in outcomes:
        dial = next(x for x in m.drain_actions() if isinstance(x, Dial))
        if outcome == "fail":
            m.handle(DialFailed(dial.conn_id, "timeout"), now)
            delay = m.next_deadline() - now  # type: ignore[operator]
            assert policy.min_retry <= delay <= policy.max_retry
        else:
            m.handle(ConnectionEstablished(dial.conn_id, b), now)
            assert m.status(b) is ConnectionStatus.CONNECTED
            if outcome == "lose":
                m.handle(ConnectionLost(dial.conn_id, "gone"), now)
                delay = m.next_deadline() - now  # type: ignore[operator]
                if policy.reconnect_after_loss is not None:
                    assert delay == policy.reconnect_after_loss
                else:
                    assert policy.min_retry <= delay <= policy.initial_retry
            else:
                m.handle(ConnectionLost(dial.conn_id, "gone"), now)
        now = m.next_deadline()  # type: ignore[assignment]
        m.handle_timer(now)
