"""Dial limits: ``policy.max_parallel_dials`` (a fixed cap on dials in flight, queued
peers served in order) and ``policy.adaptive_dials`` (the limit the jamnp-s preset
adapts to what a crowded host's handshakes achieve).

Pure core tests: the manager is driven by hand (and by hypothesis), no event loop.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.actions import Dial
from jamsim.core.errors import UsageError
from jamsim.core.events import (
    ConnectionEstablished,
    ConnectionLost,
    DialFailed,
    DialPathCut,
    InboundConnecting,
    InboundHandshake,
    ReceiveDrops,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import ConnectionStatus, PeerKey
from jamsim.identity import ValidatorIdentity, is_preferred_initiator
from jamsim.testing.loopback import Delivery, Loopback, Transport
from tests.core.helpers import endpoints, keys
from tests.core.test_dial_path_cut import _caught_up, _step_by_step


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


# ---------------------------------------------------------------- adaptive limit


def adaptive(**overrides: object) -> ConnectionPolicy:
    return ConnectionPolicy.preset("jamnp-s", **overrides)


def test_the_preset_adapts_its_dials_and_jamixir_keeps_serial_ones() -> None:
    assert ConnectionPolicy.preset("jamnp-s").adaptive_dials
    jamixir = ConnectionPolicy.preset("jamixir")
    assert jamixir.serial_dials and not jamixir.adaptive_dials
    with pytest.raises(UsageError, match="adaptive_dials does not combine"):
        ConnectionPolicy.preset("jamixir", adaptive_dials=True)


def storm(peers: int, policy: ConnectionPolicy) -> tuple[ConnectionManager, list[Dial]]:
    local, others = dialled_set(peers)
    manager = ConnectionManager(local, policy)
    manager.handle(ValidatorSetChanged(current=endpoints([local, *others])), 0.0)
    return manager, dials(manager.drain_actions())


def test_a_stalled_dial_engages_the_limit_and_later_dials_wait_for_slots() -> None:
    manager, first = storm(12, adaptive())
    assert len(first) == 12 and manager.dial_limit is None  # open: all at once
    manager.handle(ConnectionEstablished(first[0].conn_id, first[0].peer), 1.0)
    manager.handle(ConnectionEstablished(first[1].conn_id, first[1].peer), 2.0)
    manager.handle(DialFailed(first[2].conn_id, "timeout", stalled=True), 5.0)
    # 9 others in flight, 2 completed in the last connect timeout: limit 2.
    assert manager.dial_limit == 2
    for dial in first[3:]:
        manager.handle(DialFailed(dial.conn_id, "timeout"), 5.0)
    manager.drain_actions()
    manager.handle_timer(60.0)  # every retry is due: only two may start
    assert len(dials(manager.drain_actions())) == 2


def test_unanswered_timeouts_never_engage_or_shrink_the_limit() -> None:
    manager, first = storm(12, adaptive())
    for dial in first[:6]:
        manager.handle(DialFailed(dial.conn_id, "timeout", stalled=False), 5.0)
    assert manager.dial_limit is None
    manager.handle(DialFailed(first[6].conn_id, "timeout", stalled=True), 5.0)
    engaged = manager.dial_limit
    assert engaged is not None
    manager.drain_actions()
    manager.handle_timer(60.0)
    retries = dials(manager.drain_actions())
    for dial in retries:  # dialled after the decrease, unanswered: say nothing
        manager.handle(DialFailed(dial.conn_id, "timeout", stalled=False), 65.0)
    assert manager.dial_limit == engaged


def test_dial_path_cut_under_an_engaged_adaptive_limit_applies_the_first_timeout() -> None:
    manager, first = storm(4, adaptive())
    manager.handle(DialFailed(first[0].conn_id, "timeout", stalled=True), 5.0)
    assert manager.dial_limit == 1
    manager.drain_actions()
    manager.handle(DialPathCut(first[1].conn_id), 100.0)
    assert manager.connection(first[1].conn_id) is None
    assert manager.status(first[1].peer) is ConnectionStatus.RETRYING
    assert manager.peer(first[1].peer).attempts == 1  # type: ignore[union-attr]


def test_receive_drops_engage_the_limit_though_every_dial_went_unanswered() -> None:
    """A crowded host drops the handshakes themselves: the dials time out with
    no answer, which alone says nothing, but the node's own socket drops do."""
    manager, first = storm(12, adaptive())
    manager.handle(ConnectionEstablished(first[0].conn_id, first[0].peer), 1.0)
    for dial in first[1:7]:
        manager.handle(DialFailed(dial.conn_id, "timeout", stalled=False), 5.0)
    assert manager.dial_limit is None
    manager.handle(ReceiveDrops(0), 5.0)  # nothing dropped: nothing to say
    assert manager.dial_limit is None
    manager.handle(ReceiveDrops(40), 5.0)
    # 5 dials still in flight (half: 2), 1 completed in the last connect timeout.
    assert manager.dial_limit == 1
    for dial in first[7:]:
        manager.handle(DialFailed(dial.conn_id, "timeout", stalled=False), 5.0)
    manager.drain_actions()
    manager.handle_timer(60.0)  # every retry is due: one may start
    assert len(dials(manager.drain_actions())) == 1


def test_a_node_connected_to_everyone_opens_its_limit_so_a_heal_is_not_throttled() -> None:
    """Crowding at start-up engages the limit; once every peer is connected the
    node is at rest and the limit opens, so reconnecting after a later outage
    (a partition that healed) starts every dial at once again."""
    manager, first = storm(6, adaptive())
    manager.handle(ReceiveDrops(10), 1.0)
    assert manager.dial_limit == 1
    for dial in first[:5]:
        manager.handle(ConnectionEstablished(dial.conn_id, dial.peer), 2.0)
        assert manager.dial_limit is not None  # one peer still to go
    manager.handle(ConnectionEstablished(first[5].conn_id, first[5].peer), 2.0)
    assert manager.dial_limit is None
    manager.drain_actions()
    for peer in [d.peer for d in first]:
        live = manager.live_connection(peer)
        assert live is not None
        manager.handle(ConnectionLost(live, "idle timeout", None), 100.0)
    manager.drain_actions()
    manager.handle_timer(200.0)  # every redial is due
    assert len(dials(manager.drain_actions())) == 6


def test_receive_drops_while_nothing_is_dialled_change_nothing() -> None:
    manager, first = storm(4, adaptive())
    for dial in first:
        manager.handle(ConnectionEstablished(dial.conn_id, dial.peer), 1.0)
    manager.handle(ReceiveDrops(1000), 2.0)
    assert manager.dial_limit is None


def test_receive_drops_are_ignored_without_adaptive_dials() -> None:
    manager, _ = storm(4, adaptive(adaptive_dials=False))
    manager.handle(ReceiveDrops(1000), 2.0)
    assert manager.dial_limit is None


def test_a_negative_drop_count_is_refused() -> None:
    with pytest.raises(UsageError, match="counts datagrams"):
        ReceiveDrops(-1)


@dataclass
class _Handshake:
    transport: Transport
    started: float
    deadline: float
    work: float  # CPU seconds still needed; inf: nobody answers
    answer_at: float  # the first answer goes out when ``work`` falls to this
    answered: float | None = None  # when it did


@dataclass
class CrowdedHost(Loopback):
    """Every manager on one host whose CPU runs all handshakes at once, shared
    equally (processor sharing): ``work`` CPU seconds each, the first answer
    (ServerHello) after the first ``answer_share`` of it. A handshake not done by
    its dial's timeout fails *stalled* if answered, else unanswered (as a
    dial to an unreachable peer does); a completed one reports how long its
    answer took. Records every dial that started above its manager's limit."""

    work: float = 0.2
    answer_share: float = 0.3
    handshakes: list[_Handshake] = field(default_factory=list)
    over_limit: list[tuple[float, int, int]] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)

    def _dial(self, node: PeerKey, dial: Dial) -> None:
        transport = Transport(node, dial.peer, dial.conn_id)
        self.transports.append(transport)
        limit = self.managers[node].dial_limit
        in_flight = 1 + sum(1 for h in self.handshakes if h.transport.dialer == node
                            and not h.transport.closed)
        if limit is not None:
            self.limits.append(limit)
            if in_flight > limit:
                self.over_limit.append((self.now, in_flight, limit))
        remote = self.managers.get(dial.peer)
        work = math.inf
        if remote is not None and self.reachable(node, dial.peer):
            transport.acceptor_id = remote.allocate_connection_id()
            work = self.work
        self.handshakes.append(_Handshake(transport, self.now, self.now + dial.timeout, work,
                                          work * (1 - self.answer_share)))

    def run(self, until: float) -> float | None:
        """Drive until every pair is connected (returns when) or ``until``."""
        while self.now < until:
            if self.pending:
                self.deliver(0)
                continue
            self.handshakes = [h for h in self.handshakes if not h.transport.closed]
            if all(len(m.live_peers()) == len(self.managers) - 1
                   for m in self.managers.values()) and self.all_connected():
                return self.now
            running = [h for h in self.handshakes if h.work != math.inf]
            rate = 1.0 / len(running) if running else 0.0
            candidates = [h.deadline for h in self.handshakes]
            candidates += [self.now + h.work / rate for h in running]
            candidates += [self.now + (h.work - h.answer_at) / rate for h in running
                           if h.answered is None]
            candidates += [d for m in self.managers.values()
                           if (d := m.next_deadline()) is not None]
            if not candidates:
                return None
            step = max(self.now, min(candidates))
            for h in running:
                h.work -= (step - self.now) * rate
                if h.answered is None and h.work <= h.answer_at + 1e-9:
                    h.answered = step
            self.now = step
            for h in list(self.handshakes):
                t = h.transport
                if h.work <= 1e-9:
                    self.handshakes.remove(h)
                    assert t.acceptor_id is not None
                    self.pending.append(Delivery(t.acceptor,
                                                 InboundHandshake(t.acceptor_id, t.dialer), t))
                    rtt = (h.answered or self.now) - h.started
                    self.pending.append(Delivery(t.dialer, ConnectionEstablished(
                        t.dialer_id, t.acceptor, rtt), t))
                elif h.deadline <= self.now:
                    self.handshakes.remove(h)
                    t.closed = True
                    self.pending.append(Delivery(t.dialer, DialFailed(
                        t.dialer_id, "timeout", stalled=h.answered is not None)))
            for key, manager in self.managers.items():
                deadline = manager.next_deadline()
                if deadline is not None and deadline <= self.now:
                    manager.handle_timer(self.now)
                    self.pump(key)
        return None


def crowded(nodes: int, work: float, policy: ConnectionPolicy, seed: int = 1,
            cut: tuple[set[int], float] | None = None) -> CrowdedHost:
    node_keys = keys(nodes, seed)
    managers = {k: ConnectionManager(k, policy, rng_seed=seed) for k in node_keys}
    host = CrowdedHost(managers, work=work)
    if cut is not None:
        side, heal = cut
        inside = {node_keys[i] for i in side}
        host.reachable = lambda a, b: host.now >= heal or ((a in inside) == (b in inside))
    change = ValidatorSetChanged(current=endpoints(node_keys))
    host.start((k, change) for k in node_keys)
    return host


def test_a_crowded_host_meshes_with_the_preset_and_storms_without_it() -> None:
    """12 nodes, 66 handshakes of 0.4 CPU s each at once on one core: none can
    finish within 5 s. Adapting, the managers mesh; with every dial at once (the
    old preset) the stalls repeat until backoff alone spreads them."""
    adapting = crowded(12, 0.4, adaptive(), seed=2)
    meshed = adapting.run(600.0)
    assert meshed is not None and not adapting.over_limit and adapting.limits
    fixed = crowded(12, 0.4, adaptive(adaptive_dials=False), seed=2)
    unlimited = fixed.run(600.0)
    assert unlimited is None or unlimited > 2 * meshed


@settings(max_examples=40, deadline=None)
@given(nodes=st.integers(3, 8), load=st.floats(0.05, 0.9), seed=st.integers(0, 1000),
       cut=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.floats(0, 40))))
def test_under_overload_no_dial_starts_above_the_limit_and_everyone_connects(
    nodes: int, load: float, seed: int, cut: tuple[int, float] | None,
) -> None:
    """``load``: one dial per node in flight uses that fraction of what the host
    can finish within the connect timeout (above 1 even the floor of one dial
    stalls); all of them at once use up to (nodes - 1) / 2 times more."""
    policy = adaptive(adaptive_dials_min=1, adaptive_dials_max=6)
    work = load * policy.connect_timeout / nodes
    host = crowded(nodes, work, policy, seed,
                   None if cut is None else (set(range(cut[0])), cut[1]))
    assert host.run(900.0) is not None
    assert not host.over_limit
    assert all(1 <= limit <= 6 for limit in host.limits)


@settings(max_examples=25, deadline=None)
@given(nodes=st.integers(3, 8), seed=st.integers(0, 1000), heal=st.floats(5, 60))
def test_a_partition_alone_never_engages_the_limit(nodes: int, seed: int, heal: float) -> None:
    """Light handshakes, half the nodes cut off until ``heal``: every failure is
    an unanswered timeout, so no manager ever limits its dials."""
    host = crowded(nodes, 0.001, adaptive(), seed, (set(range(nodes // 2)), heal))
    assert host.run(900.0) is not None
    assert host.limits == []
    assert all(m.dial_limit is None for m in host.managers.values())


def test_a_slow_first_answer_engages_the_limit_and_a_prompt_one_does_not() -> None:
    manager, first = storm(8, adaptive())
    slow = manager.policy.connect_timeout / 4
    manager.handle(ConnectionEstablished(first[0].conn_id, first[0].peer, slow * 0.9), 2.0)
    assert manager.dial_limit is None  # prompt enough, however long the dial took
    manager.handle(ConnectionEstablished(first[1].conn_id, first[1].peer, slow * 1.1), 2.0)
    # 6 others in flight, 2 completed in the last connect timeout: limit 2.
    assert manager.dial_limit == 2
    assert manager.status(first[1].peer) is ConnectionStatus.CONNECTED
    for dial in first[2:]:
        manager.handle(DialFailed(dial.conn_id, "timeout"), 5.0)
    manager.drain_actions()
    manager.handle_timer(60.0)
    assert len(dials(manager.drain_actions())) == 2


@settings(max_examples=60, deadline=None)
@given(cut_until=st.floats(0.0, 400.0), in_current_set=st.booleans(), emit=st.booleans(),
       give_up_after=st.none() | st.floats(10.0, 200.0), jitter=st.sampled_from(["none", "full"]))
def test_catching_up_a_cut_dial_equals_each_attempt_under_the_preset(
    cut_until: float, in_current_set: bool, emit: bool, give_up_after: float | None,
    jitter: str,
) -> None:
    """The preset's adaptive limit stays open through a cut path (every attempt
    times out unanswered), so DialPathCut's one step is still exact."""
    policy = adaptive(give_up_after=give_up_after, jitter=jitter)
    slow, remote, slow_seen, slow_started = _step_by_step(policy, cut_until, in_current_set,
                                                          emit)
    fast, _, fast_seen, fast_started = _caught_up(policy, cut_until, in_current_set, emit)
    assert (fast_seen, fast_started) == (slow_seen, slow_started)
    assert fast.peer(remote) == slow.peer(remote)
    assert fast.next_deadline() == slow.next_deadline()
    assert fast._rng.random() == slow._rng.random()
    assert fast.dial_limit is None and slow.dial_limit is None
