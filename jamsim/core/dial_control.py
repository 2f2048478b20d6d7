"""DialControl: how many outbound dials a node keeps in flight, adapted to what
its handshakes achieve (``policy.adaptive_dials``).

Why it exists: a node dials its whole validator set at once. On a host whose CPU
cannot run that many TLS handshakes within the connect timeout (64 nodes on two
cores), every handshake is abandoned at the timeout, every abandoned one is
retried, and the retries keep the CPU saturated: the storm never ends. A fixed
``max_parallel_dials`` fixes the host it was tuned for and slows every other one;
this controller finds the number itself.

The choice: AIMD on overload signals, opened only once overload is seen.

* **Overload signals.** A dial that reached its connect timeout after the peer
  had answered (``DialFailed.stalled``) was a handshake under way that could not
  finish in time; a handshake whose first answer took longer than a quarter of
  the connect timeout (``ConnectionEstablished.answer_rtt``: QUIC's RTT sample,
  measured from the packet that was answered, so loss recovery and partitions
  do not inflate it) sat in a queue, the peer's or ours. Both mean the CPU is
  the bottleneck: the limit shrinks.
* **The host's own evidence.** Datagrams the node's socket dropped because its
  receive buffer was full (``on_host_overload``): the process cannot keep up
  with what arrives. On a crowded host this comes first and hides the other
  signals: the dropped packets are Initials and handshake flights, so dials
  time out *unanswered*, which alone looks like a partition. A partition never
  fills a receive buffer (nothing arrives), so it still never throttles.
  Acted upon at most once per window, and only while dials are in flight (a
  node that is not dialling has nothing to slow down).
* **Not signals.** A dial that timed out with no answer at all says only that
  the peer is unreachable (partition, dead node, wrong address): it frees its
  slot and changes nothing, so a partition never throttles the reconnection
  after it heals. Nor does a handshake's total duration: it contains loss
  recovery (QUIC's probe timeouts of 1 s, 2 s, ...) and any part of a partition
  the dial waited through; it only holds growth.
* **Growth.** A completed handshake grows the limit by ``1/limit`` (one per full
  window of successes, TCP's congestion avoidance), unless it took more than
  half the connect timeout: handshakes are already queueing, so the limit holds.
* **At rest, open.** Once the node is connected to every validator it wants,
  with no dial in flight or waiting, the limit opens (``open``): the crowding
  that engaged it is over, and a reconnection storm later, after a partition
  heals, must not start from a limit that additive growth alone would take
  hundreds of handshakes to lift.
* **Open until overloaded.** The limit starts open (no limit): an idle host dials
  its whole set at once, as before. The first overload signal engages it at the
  smaller of half the dials in flight and the handshakes the node completed in
  the last connect timeout (what the host actually achieved: by Little's law,
  that many in flight finish within one timeout), clamped to
  ``[minimum, maximum]``. Once engaged it shrinks by half at most once per
  window: an overloaded dial that started before the last decrease was sent under
  the old limit and says nothing new (TCP's once-per-RTT rule). When additive
  growth brings it back to ``maximum`` with no dial waiting for a slot, it opens
  again.
* **The simulator.** The ``model`` fidelity never reports a stalled dial (a
  dialer is established by the first packet that comes back) nor an answer RTT
  (it has no CPU to queue on), so there the limit never engages: runs are
  unchanged and ``DialPathCut`` stays valid.

Pure and deterministic: no randomness, no clock (``now`` is passed in).
"""

from __future__ import annotations

from jamsim.core.errors import UsageError

__all__ = ["DialControl"]


class DialControl:
    """The adaptive dial limit of one manager.

    ``limit`` is meaningful only while ``engaged``; an open controller allows any
    number of dials. ``window`` is the connect timeout: the unit of time in which
    a dial's fate is known.
    """

    __slots__ = ("_credit", "_decreased_at", "engaged", "limit", "maximum", "minimum",
                 "slow_answer", "window")

    def __init__(self, minimum: int, maximum: int, window: float) -> None:
        if minimum < 1 or maximum < minimum:
            raise UsageError(f"dial limit bounds must satisfy 1 <= minimum <= maximum, "
                             f"got {minimum}..{maximum}")
        if window <= 0:
            raise UsageError("the dial control window (connect timeout) must be > 0")
        self.minimum = minimum
        self.maximum = maximum
        self.window = window
        self.slow_answer = window / 4
        """An answer RTT above this is overload: no path on Earth is that slow,
        and a handshake that needs 1.5 of them would barely fit its timeout."""
        self.engaged = False
        self.limit = maximum
        self._credit = 0.0
        self._decreased_at = float("-inf")

    def allows(self, in_flight: int) -> bool:
        """Whether one more dial may start while ``in_flight`` are unanswered."""
        return not self.engaged or in_flight < self.limit

    def on_overload(self, started_at: float, now: float, in_flight: int,
                    recent_completions: int) -> bool:
        """A dial started at ``started_at`` ran into overload at ``now``: it timed
        out after the peer answered, or was answered only after ``slow_answer``.

        ``in_flight`` counts the node's dials still in flight (this one excluded),
        ``recent_completions`` the handshakes it completed in the last ``window``.
        Returns whether the limit changed.
        """
        if self.engaged and started_at < self._decreased_at:
            return False  # sent under the previous limit: already acted upon
        return self._decrease(now, in_flight, recent_completions)

    def on_host_overload(self, now: float, in_flight: int, recent_completions: int) -> bool:
        """The node's socket dropped datagrams for want of buffer space at ``now``
        while ``in_flight`` dials were in flight (``recent_completions`` as in
        :meth:`on_overload`). Acted upon at most once per window: the drops that
        follow a decrease are the backlog from before it. Returns whether the
        limit changed."""
        if in_flight <= 0 or (self.engaged and now - self._decreased_at < self.window):
            return False
        return self._decrease(now, in_flight - 1, recent_completions)

    def _decrease(self, now: float, in_flight: int, recent_completions: int) -> bool:
        """Engage at what the host achieved, or halve an engaged limit."""
        target = (self.limit // 2 if self.engaged
                  else min((in_flight + 1) // 2, recent_completions))
        self.engaged = True
        self.limit = min(self.maximum, max(self.minimum, target))
        self._credit = 0.0
        self._decreased_at = now
        return True

    def open(self) -> bool:
        """The node is at rest (connected to everyone, nothing to dial): lift the
        limit. Returns whether it was engaged."""
        if not self.engaged:
            return False
        self.engaged = False
        self._credit = 0.0
        return True

    def on_completed(self, duration: float, waiting: bool) -> bool:
        """An outbound handshake completed after ``duration`` seconds; ``waiting``
        says whether dials wait for a slot. Returns whether the limit changed
        (grew, or opened)."""
        if not self.engaged:
            return False
        if duration > self.window / 2:
            return False  # handshakes already queue: hold
        if self.limit >= self.maximum:
            if waiting:
                return False
            self.engaged = False
            self._credit = 0.0
            return True
        self._credit += 1.0 / self.limit
        if self._credit < 1.0:
            return False
        self._credit -= 1.0
        self.limit += 1
        return True
