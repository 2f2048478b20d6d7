"""The ``model`` fidelity: an abstract QUIC connection over the simulated network.

A transport is one QUIC connection between a dialer and an acceptor. Its handshake
is three packets, as in QUIC's 1-RTT handshake with TLS 1.3:

1. client Initial -> server (the server allocates an inbound id: "connecting in");
2. server Initial+Handshake flight -> client: the client is *established* after one
   RTT and reports ``ConnectionEstablished``;
3. client Finished -> server: the server verifies the client certificate and
   reports ``InboundHandshake`` after 1.5 RTT.

Loss is recovered like RFC 9002 before an RTT sample exists: the client
retransmits its Initial after a probe timeout (PTO) of 1 s that doubles every time,
until the dial's ``timeout``; the Finished is retransmitted with an RTT-based PTO
(3 RTT + 25 ms max_ack_delay). Timers are only created when a packet is lost, so a
loss-free handshake costs three network events and nothing else.

A dial whose first Initial meets a cut path (partition, crashed peer) is doomed
until the topology changes, and so is every retry the manager would make: during a
half/half partition of 1023 validators that is ~5 million attempts in two minutes,
each costing a transport, timers and two manager calls. Such a dial is *cut*: it
arms no timer at all. When a topology change opens the path (or the manager must
be current, e.g. before an epoch change), the dialer's manager gets one
``DialPathCut`` and applies every attempt that timed out meanwhile, each at its own
time; a retry still within its timeout comes back as a ``Dial`` with
``started_at`` and resumes its PTO schedule here. ``Simulation(fast_forward=
False)`` turns this off; tests check both ways give the same attempts.

An established connection carries no modelled traffic. Its loss is noticed:

* when the peer closes it: after one-way latency, if the CONNECTION_CLOSE packet is
  not lost; otherwise by idle timeout;
* by idle timeout (``policy.idle_timeout``; ``None`` = never, like Jamixir) when the
  peer stops being reachable (partition, crash, pause) or has silently dropped its
  end (crash, its own idle timeout). As in QUIC (RFC 9000 section 10.1), the idle
  clock starts at the end's first keep-alive PING after the silence began. Who
  PINGs is the real node's rule (:mod:`jamsim.core.keepalive`, in closed form):
  the dialling end at its node's next keep-alive tick, the accepting end at its
  first tick 1.5 intervals after it last heard the dialler (the dialler's last
  PING, or slot data, before the silence, one-way latency later; or the
  handshake), so an acceptor notices up to 2.5 intervals plus the idle timeout
  after the break, a dialler up to one interval plus the idle timeout
  (calibrated against the quic fidelity, which runs the rule tick by tick).
  Keep-alives are assumed to keep a reachable connection alive: random loss does
  not kill established connections (at 1% loss losing every keep-alive of a 15 s
  idle period has negligible probability);
* with slot traffic (``Simulation(traffic=True)``), also by QUIC loss detection:
  every live connection carries data every slot, so an end whose peer stopped
  answering sends its next data at the next slot boundary after the break, gets
  no acknowledgement, and closes the connection ``policy.disconnect_timeout``
  later ("disconnect timeout"), idle timeout or not. Approximation: the first
  unacknowledged send is taken to be the slot tick (every ``slot_seconds`` from
  t=0, the JAM slot clock) at or after the break, not the exact message times of
  the traffic schedule; slot data also restarts the idle clock, so the idle
  timer counts from the earlier of that tick and the next keep-alive. The end
  closes at whichever deadline comes first.

A restarted node no longer knows its old connections: the first packet a peer
sends on one afterwards (its next keep-alive, or slot data with traffic) is
answered by a stateless reset (RFC 9000 section 10.3; an acceptor's next PING
comes only after 1.5 intervals of silence, as above), and the peer closes the
connection ("stateless reset") one RTT after sending it. Before a handshake
completes at the acceptor, the transport tells its manager how long the peer has
been silent on the connection it already holds (``PeerSilence``), so the duplicate rule keeps
the new connection of a restarted peer rather than the dead one.

Not modelled: stream traffic itself (its delivery is the traffic overlay's job),
congestion control, handshake amplification limits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from jamsim.core import events
from jamsim.core.keepalive import first_ping, tick_at_or_after, tick_at_or_before

if TYPE_CHECKING:
    from jamsim.sim.simulation import SimNode, Simulation

__all__ = ["INITIAL_PTO", "MAX_ACK_DELAY", "ModelTransport"]

INITIAL_PTO = 1.0
"""RFC 9002: kInitialRtt 333 ms gives a first PTO of ~1 s, doubling per probe."""
MAX_ACK_DELAY = 0.025

# Client (dialer) end phases.
C_PENDING, C_ESTABLISHED, C_CLOSED = 0, 1, 2
# Server (acceptor) end phases.
S_NONE, S_HANDSHAKING, S_LIVE, S_CLOSED = 0, 1, 2, 3


class ModelTransport:
    """One abstract QUIC connection; both ends and the handshake in flight."""

    __slots__ = (
        "a", "a_broken", "a_cid", "a_gen", "a_live", "a_phase",
        "b", "b_broken", "b_cid", "b_gen", "b_live", "b_phase",
        "cut", "deadline", "deadline_armed", "initial_sent", "parked", "pto", "pto_for", "rtt",
        "sim", "tid",
    )

    def __init__(self, sim: Simulation, tid: int, a: SimNode, cid: int, b: SimNode,
                 timeout: float, started_at: float | None = None) -> None:
        self.sim = sim
        self.tid = tid
        self.a = a.index
        self.a_gen = a.generation
        self.a_cid = cid
        self.a_phase = C_PENDING
        self.a_live = False
        self.a_broken: float | None = None
        self.b = b.index
        self.b_gen = b.generation
        self.b_cid = -1
        self.b_phase = S_NONE
        self.b_live = False
        self.b_broken: float | None = None
        start = sim.env.now if started_at is None else started_at
        self.deadline = start + timeout
        self.deadline_armed = False
        self.initial_sent = start
        self.pto = INITIAL_PTO
        self.pto_for = -1.0
        self.parked = False
        self.cut = False
        """Doomed dial with no timers: see the module docstring."""
        self.rtt = 0.0

    # ---------------------------------------------------------------- helpers

    def live_ends(self) -> int:
        return int(self.a_live) + int(self.b_live)

    def _set_live(self, client: bool, value: bool) -> None:
        a_live, b_live = self.a_live, self.b_live
        old = a_live + b_live
        if client:
            self.a_live = a_live = value
        else:
            self.b_live = b_live = value
        self.sim.links.change(self.a, self.b, old, a_live + b_live)

    def _node_ok(self, client: bool) -> SimNode | None:
        """The end's node if it is still the same process (not crashed/restarted)."""
        node = self.sim.nodes[self.a if client else self.b]
        gen = self.a_gen if client else self.b_gen
        if node.generation != gen or not node.alive:
            return None
        return node

    def _feed(self, client: bool, event: events.Event) -> None:
        node = self._node_ok(client)
        if node is not None:
            self.sim.feed(node, event)

    def _arm_deadline(self) -> None:
        """Start the handshake timers; only needed once something went wrong."""
        if self.deadline_armed:
            return
        self.deadline_armed = True
        self.sim.call_for(self.a, self.a_gen, max(0.0, self.deadline - self.sim.env.now),
                          self._client_deadline)
        if self.b_phase == S_HANDSHAKING:
            self._arm_server_deadline()

    def _arm_server_deadline(self) -> None:
        """The acceptor gives up on a handshake one connect timeout after the dialer."""
        server_deadline = self.deadline + self.sim.policy.connect_timeout
        self.sim.network.call_later(max(0.0, server_deadline - self.sim.env.now),
                                    self._server_deadline)

    def _done(self) -> None:
        if self.a_phase == C_CLOSED and self.b_phase in (S_NONE, S_CLOSED):
            self.sim.forget_transport(self)

    # ---------------------------------------------------------------- handshake

    def start(self) -> None:
        self._send_initial()

    def resume(self) -> None:
        """Continue a dial that began at ``initial_sent`` on a cut path (a ``Dial``
        with ``started_at``): its probes so far were all dropped."""
        self.pto_for = self.initial_sent
        if self.sim.network.blackholed(self.a, self.b):
            self.parked = self.cut = True
            return
        self._arm_deadline()
        self._unpark()

    def _send_initial(self) -> None:
        self.initial_sent = self.sim.env.now
        self.sim.network.send(self.a, self.b, self._server_got_initial, None, self._lost_initial)

    def _lost_initial(self) -> None:
        if self.pto_for == self.initial_sent:
            return  # one probe per flight, however many of its packets were lost
        self.pto_for = self.initial_sent
        if self.sim.network.blackholed(self.a, self.b):
            # Cut path (partition, peer crashed): every probe would be dropped the same
            # way until the topology changes, and a change calls reassess(), which
            # replays the probe schedule up to that instant. Parking here saves two
            # timers and two sends per failed dial without changing any outcome.
            self.parked = True
            if self.b_phase == S_NONE and not self.deadline_armed and self.sim.fast_forward:
                self.cut = True  # not even a deadline: the manager catches up later
                return
            self._arm_deadline()
            return
        self._arm_deadline()
        self._schedule_pto()

    def _schedule_pto(self) -> None:
        self.sim.call_for(self.a, self.a_gen,
                          max(0.0, self.initial_sent + self.pto - self.sim.env.now),
                          self._client_pto)

    def _unpark(self) -> None:
        """The path may be open again: resume the PTO schedule a parked dial had."""
        self.parked = False
        if self.a_phase != C_PENDING:
            return
        now = self.sim.env.now
        # Probes that fell while the path was cut were sent and dropped: advance the
        # schedule past them exactly as _client_pto would have (doubling each time).
        while self.initial_sent + self.pto < now:
            self.initial_sent += self.pto
            self.pto *= 2
        self.pto_for = self.initial_sent
        self._schedule_pto()

    def _client_pto(self) -> None:
        if self.a_phase != C_PENDING or self.sim.env.now >= self.deadline:
            return
        self.pto *= 2
        self._send_initial()

    def _server_got_initial(self) -> None:
        node = self.sim.nodes[self.b]
        if not node.alive or node.manager is None:
            return
        if self.b_phase != S_NONE and node.generation != self.b_gen:
            return
        if self.b_phase == S_NONE:
            if self.a_phase == C_CLOSED:
                return  # the dialer gave up; its retransmission was still in flight
            self.b_phase = S_HANDSHAKING
            self.b_gen = node.generation
            self.b_cid = node.manager.allocate_connection_id()
            node.ends[self.b_cid] = self
            if self.deadline_armed:
                self._arm_server_deadline()
            dialler = self.sim.nodes[self.a].address
            self.sim.feed(node, events.InboundConnecting(self.b_cid, dialler))
        if self.b_phase == S_HANDSHAKING:
            self.sim.network.send(self.b, self.a, self._client_got_flight, None,
                                  self._lost_initial)

    def _client_got_flight(self) -> None:
        sim = self.sim
        node = sim.nodes[self.a]  # _node_ok(True), inline: once per connection
        if node.generation != self.a_gen or not node.alive or self.a_phase != C_PENDING:
            return
        rtt = sim.env.now - self.initial_sent
        self.rtt = rtt if rtt > 1e-6 else 1e-6
        self.a_phase = C_ESTABLISHED
        self._set_live(True, True)  # the manager's CloseConnection undoes this
        self._send_finished()
        sim.feed(node, events.ConnectionEstablished(self.a_cid, sim.nodes[self.b].key))

    def _send_finished(self) -> None:
        self.sim.network.send(self.a, self.b, self._server_got_finished, None,
                              self._lost_finished)

    def _lost_finished(self) -> None:
        self._arm_deadline()
        delay = 3 * self.rtt + MAX_ACK_DELAY
        self.sim.call_for(self.a, self.a_gen, delay, self._retransmit_finished)

    def _retransmit_finished(self) -> None:
        if self.a_phase == C_ESTABLISHED and self.b_phase == S_HANDSHAKING:
            self._send_finished()

    def _server_got_finished(self) -> None:
        sim = self.sim
        node = sim.nodes[self.b]  # _node_ok(False), inline: once per connection
        if node.generation != self.b_gen or not node.alive or self.b_phase != S_HANDSHAKING:
            return
        self.b_phase = S_LIVE
        client = sim.nodes[self.a]
        self._report_silence(node, client.key)
        sim.feed(node, events.InboundHandshake(self.b_cid, client.key, client.address))

    def _client_deadline(self) -> None:
        if self.a_phase != C_PENDING:
            return
        self.a_phase = C_CLOSED
        node = self._node_ok(True)
        if node is not None:
            node.ends.pop(self.a_cid, None)
            self.sim.feed(node, events.DialFailed(self.a_cid, "timeout"))
        self._done()

    def _server_deadline(self) -> None:
        if self.b_phase != S_HANDSHAKING:
            return
        self._server_gone(events.InboundFailed(self.b_cid, "handshake timeout"))

    def _server_gone(self, event: events.Event) -> None:
        self.b_phase = S_CLOSED
        self._end_gone(False, self.b_live, self.b_cid, event)

    def _client_gone(self, event: events.Event) -> None:
        self.a_phase = C_CLOSED
        self._end_gone(True, self.a_live, self.a_cid, event)

    def _end_gone(self, client: bool, live: bool, cid: int, event: events.Event) -> None:
        """One end closed: it no longer counts as live, its node hears ``event``."""
        if live:
            self._set_live(client, False)
        node = self._node_ok(client)
        if node is not None:
            node.ends.pop(cid, None)
            self.sim.feed(node, event)
        self._done()

    # ---------------------------------------------------------------- manager actions

    def accept(self) -> None:
        """The acceptor's manager kept this inbound connection."""
        if self.b_phase == S_LIVE and not self.b_live:
            self._set_live(False, True)

    def close(self, node: SimNode, reason: str) -> None:
        """``node``'s manager closed its end: tell the other end with a close packet."""
        client = node.index == self.a and node.generation == self.a_gen and \
            self.a_cid in node.ends and node.ends[self.a_cid] is self
        if client:
            node.ends.pop(self.a_cid, None)
            if self.a_live:
                self._set_live(True, False)
            was = self.a_phase
            self.a_phase = C_CLOSED
            if was == C_PENDING:
                self._arm_deadline()  # the server end may be left handshaking
            if self.b_phase in (S_HANDSHAKING, S_LIVE):
                self._send_close(False, reason)
        else:
            node.ends.pop(self.b_cid, None)
            if self.b_live:
                self._set_live(False, False)
            self.b_phase = S_CLOSED
            if self.a_phase in (C_PENDING, C_ESTABLISHED):
                self._send_close(True, reason)
        self._done()

    def _send_close(self, to_client: bool, reason: str) -> None:
        src, dst = (self.b, self.a) if to_client else (self.a, self.b)

        def deliver() -> None:
            self._remote_closed(to_client, reason)

        def dropped() -> None:
            self._orphaned(to_client)

        self.sim.network.send(src, dst, deliver, on_drop=dropped)

    def _remote_closed(self, client: bool, reason: str) -> None:
        if client:
            if self.a_phase == C_PENDING:
                self._client_gone(events.DialFailed(self.a_cid, f"closed by peer: {reason}"))
            elif self.a_phase == C_ESTABLISHED:
                self._client_gone(events.ConnectionLost(self.a_cid, reason, self.sim.remote_side))
        elif self.b_phase == S_HANDSHAKING:
            self._server_gone(events.InboundFailed(self.b_cid, f"closed by peer: {reason}"))
        elif self.b_phase == S_LIVE:
            self._server_gone(events.ConnectionLost(self.b_cid, reason, self.sim.remote_side))

    # ---------------------------------------------------------------- idle timeout

    def _open(self, client: bool) -> bool:
        if client:
            return self.a_phase == C_ESTABLISHED
        return self.b_phase == S_LIVE

    def _orphaned(self, client: bool) -> None:
        """The other end vanished without a word: only the idle timeout can tell.

        An end whose silence clock already runs has its idle check pending (every
        place that starts the clock schedules one), so nothing is added: after a
        partition both ends' checks are armed, and the first to fire would
        otherwise arm a second, redundant one for the other end.
        """
        if not self._open(client) or (self.a_broken if client else self.b_broken) is not None:
            return
        self._set_broken(client, self.sim.env.now)
        self._schedule_idle(client)

    def _silence_clock(self, client: bool, now: float) -> float:
        """When this end's idle timer starts counting a silence that began at ``now``.

        RFC 9000 section 10.1: the idle timer restarts on every packet received and
        on the first ack-eliciting packet sent after one was received. After the
        peer falls silent, that packet is the end's first keep-alive PING into the
        silence (or, with slot traffic, its next data), sent on one of its node's
        keep-alive ticks (every ``min(keep_alive, idle/3)`` from process start) by
        the rule every runtime shares (:mod:`jamsim.core.keepalive`): the dialler
        at its next tick, the acceptor at its first tick 1.5 intervals after it
        last heard the dialler. Calibrated against the quic fidelity: detection
        one idle timeout after that PING, not after the break.
        """
        sent = self._next_send(client, now, now)
        return now if sent is None else sent

    def _next_send(self, client: bool, now: float, silent_since: float) -> float | None:
        """When this end next sends something at or after ``now``, its peer silent
        since ``silent_since``: its first keep-alive PING by the shared rule or,
        with slot traffic, the next slot boundary; ``None`` if it never does."""
        sim = self.sim
        interval = sim.keepalive_interval
        best: float | None = None
        if interval is not None:
            node = sim.nodes[self.a if client else self.b]
            heard = now if client else self._acceptor_heard(silent_since, interval)
            best = first_ping(client, now, heard, node.booted_at, interval)
        if sim.traffic:
            slot_tick = self._slot_tick(now)
            if best is None or slot_tick < best:
                best = slot_tick
        return best

    def _acceptor_heard(self, silent_since: float, interval: float) -> float:
        """When the acceptor last heard the dialler before a silence that began at
        ``silent_since``: one-way latency (RTT / 2) after the dialler's last send at
        or before it (its keep-alive PING or, with slot traffic, its slot data; its
        ticks are those of the process that dialled), or the handshake's end (the
        Finished, 1.5 RTT after the Initial) if that is later. Approximation: a
        send at the very instant of the break counts as sent before it."""
        sim = self.sim
        rtt = self.rtt
        heard = self.initial_sent + 1.5 * rtt
        last = tick_at_or_before(sim.nodes[self.a].boot_time(self.a_gen), interval,
                                 silent_since)
        if sim.traffic:
            slot_tick = tick_at_or_before(0.0, sim.slot_seconds, silent_since)
            if slot_tick is not None and (last is None or slot_tick > last):
                last = slot_tick
        if last is not None and last + rtt / 2 > heard:
            heard = last + rtt / 2
        return heard

    def _slot_tick(self, now: float) -> float:
        """The first slot boundary at or after ``now``: the next data sent."""
        return tick_at_or_after(0.0, self.sim.slot_seconds, now)

    def _loss_deadline(self, client: bool, broken: float) -> tuple[float, str] | None:
        """When and why an end that stopped hearing its peer at ``broken`` closes.

        The idle timeout counts from the silence clock; with slot traffic, loss
        detection from the first unacknowledged send (the next slot tick). The
        earlier wins; ``None`` when neither applies (jamixir without traffic).
        """
        sim = self.sim
        policy = sim.policy
        idle = policy.idle_timeout
        best: tuple[float, str] | None = None
        if idle is not None:
            best = (self._silence_clock(client, broken) + idle, "idle timeout")
        disconnect = policy.disconnect_timeout
        if sim.traffic and disconnect is not None:
            lost = self._slot_tick(broken) + disconnect
            if best is None or lost < best[0]:
                best = (lost, "disconnect timeout")
        return best

    def _schedule_idle(self, client: bool) -> None:
        broken = self.a_broken if client else self.b_broken
        if broken is None:
            return
        deadline = self._loss_deadline(client, broken)
        if deadline is None:
            return
        gen = self.a_gen if client else self.b_gen
        self.sim.call_for(self.a if client else self.b, gen,
                          max(0.0, deadline[0] - self.sim.env.now),
                          functools.partial(self._idle_check, client))

    def _idle_check(self, client: bool) -> None:
        broken = self.a_broken if client else self.b_broken
        if broken is None or not self._open(client):
            return
        deadline = self._loss_deadline(client, broken)
        if deadline is None or self.sim.env.now + 1e-9 < deadline[0]:
            return  # a newer break re-armed a later check
        reason = deadline[1]
        if client:
            self._client_gone(events.ConnectionLost(self.a_cid, reason, None))
        else:
            self._server_gone(events.ConnectionLost(self.b_cid, reason, None))
        self._orphaned(not client)

    def settle(self) -> None:
        """Bring a cut dial's manager up to date now (the path may still be cut)."""
        if not self.cut or self.a_phase != C_PENDING:
            return
        node = self._node_ok(True)
        if node is None:
            return
        self.parked = self.cut = False
        if self.sim.env.now < self.deadline:
            # Still this dial's own timeout: nothing to catch up. Keep it cut if the
            # path is, with its deadline armed from now on.
            self.resume()
            return
        # Its timeout passed: the manager applies it and every retry since, and asks
        # again for the dial in flight now (if any) with a Dial(started_at=...).
        self.a_phase = C_CLOSED
        node.ends.pop(self.a_cid, None)
        self._done()
        self.sim.feed(node, events.DialPathCut(self.a_cid), even_if_paused=True)

    def reassess(self) -> None:
        """Topology changed: start/cancel idle timers, arm stuck handshakes' deadlines."""
        if self.cut:
            if self.sim.network.blackholed(self.a, self.b):
                return  # still cut: nothing to do until the next change
            self.settle()
            return
        if self.parked:
            self._unpark()
        a_open = self.a_phase == C_ESTABLISHED
        b_open = self.b_phase == S_LIVE
        if self.a_phase == C_PENDING or self.b_phase == S_HANDSHAKING:
            self._arm_deadline()
        net = self.sim.network
        now = self.sim.env.now
        traffic = self.sim.traffic
        for client, open_, peer_open in ((True, a_open, b_open), (False, b_open, a_open)):
            if not open_:
                continue
            src, dst = (self.b, self.a) if client else (self.a, self.b)
            peer_alive = self._node_ok(not client) is not None
            hears = peer_open and peer_alive and net.path_open(src, dst)
            if traffic and hears and not net.path_open(dst, src):
                # Its data gets no ACK through a one-way cut: loss detection fires
                # even though the peer's packets still arrive (and, approximately,
                # the idle deadline is not told apart from the loss deadline here).
                hears = False
            broken = self.a_broken if client else self.b_broken
            if hears:
                if broken is not None and peer_open and peer_alive:
                    self._set_broken(client, None)
                continue
            if broken is None:
                self._set_broken(client, now)
                self._schedule_idle(client)
            if not peer_open and self._peer_restarted(client) and net.path_open(src, dst) \
                    and net.path_open(dst, src):
                self._schedule_reset(client)

    # ---------------------------------------------------------------- stateless reset

    def _peer_restarted(self, client: bool) -> bool:
        """Is the other end's node running a newer process than the one that held
        this connection (so it answers our packets with a stateless reset)?"""
        node = self.sim.nodes[self.b if client else self.a]
        gen = self.b_gen if client else self.a_gen
        return node.alive and node.generation != gen

    def peer_restarted(self, index: int) -> None:
        """Node ``index`` (one end) started a new process: the other end, if it
        still holds this connection, gets a stateless reset when it next sends."""
        client = index == self.b
        net = self.sim.network
        if self._open(client) and self._peer_restarted(client) and \
                net.path_open(self.a, self.b) and net.path_open(self.b, self.a):
            self._schedule_reset(client)

    def _schedule_reset(self, client: bool) -> None:
        """RFC 9000 section 10.3: the restarted peer answers our next packet (the
        next keep-alive, or slot data with traffic) with a stateless reset, which
        is back one RTT after we sent it. An end that never sends never learns."""
        now = self.sim.env.now
        broken = self.a_broken if client else self.b_broken
        sent = self._next_send(client, now, now if broken is None else broken)
        if sent is None:
            return
        self.sim.call_for(self.a if client else self.b, self.a_gen if client else self.b_gen,
                          sent - now + self.rtt, functools.partial(self._reset_arrives, client))

    def _reset_arrives(self, client: bool) -> None:
        if not self._open(client) or not self._peer_restarted(client):
            return
        net = self.sim.network
        if not (net.path_open(self.a, self.b) and net.path_open(self.b, self.a)):
            return  # lost on the way; the next topology change schedules another
        remote = self.sim.remote_side
        if client:
            self._client_gone(events.ConnectionLost(self.a_cid, "stateless reset", remote))
        else:
            self._server_gone(events.ConnectionLost(self.b_cid, "stateless reset", remote))

    def _report_silence(self, node: SimNode, peer_key: bytes) -> None:
        """Before an inbound handshake completes at ``node``: tell its manager
        whether the connection it already holds to that peer still hears from it.

        Only the acceptor needs it: a node dials a peer only while it holds no
        live connection to it, so a restarted peer's new connection always reaches
        the holder of the dead one as an inbound one (its own dial, or its
        fallback dial)."""
        manager = node.manager
        if manager is None:
            return
        cid = manager.live_connection(peer_key)
        if cid is None:
            return
        other = node.ends.get(cid)
        if other is None or other is self or not isinstance(other, ModelTransport):
            return
        since = other.a_broken if other.a == node.index else other.b_broken
        self.sim.feed(node, events.PeerSilence(cid, since))

    def _set_broken(self, client: bool, value: float | None) -> None:
        if client:
            self.a_broken = value
        else:
            self.b_broken = value

    def node_died(self, client: bool) -> None:
        """This end's process crashed: its state is gone, silently."""
        if client:
            if self.a_live:
                self._set_live(True, False)
            self.a_phase = C_CLOSED
        else:
            if self.b_live:
                self._set_live(False, False)
            self.b_phase = S_CLOSED
        self._orphaned(not client)
        self._done()

    def paused_too_long(self, client: bool, paused_for: float) -> bool:
        """On resume: did this end's own idle timer expire while the process slept?"""
        idle = self.sim.policy.idle_timeout
        return idle is not None and paused_for >= idle and self._open(client)

    def expire(self, client: bool) -> None:
        if client:
            self._client_gone(events.ConnectionLost(self.a_cid, "idle timeout", None))
        else:
            self._server_gone(events.ConnectionLost(self.b_cid, "idle timeout", None))
        self._orphaned(not client)


Callback = Callable[[], None]
