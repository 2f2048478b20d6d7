"""Keep-alive policy: how often a node PINGs a verified connection, and which end does.

Every runtime follows these rules: the asyncio node (``jamsim/net/node.py``), the
``quic`` simulator fidelity (real aioquic, ``jamsim/sim/quic/transport.py``) and the
``model`` fidelity (``jamsim/sim/model/transport.py``), so a simulation notices a dead
peer when a real network would. Pure like the rest of the core: every time is passed
in (float seconds), nothing reads a clock.

**How often.** A node has one keep-alive tick every :func:`keepalive_interval`
seconds: the policy's ``keep_alive_interval``, but never fewer than three per idle
timeout. With an idle timeout and no (or a slower) keep-alive, every quiet
connection between two healthy nodes would be closed and redialled forever; the
idle timeout is meant to detect dead peers.

**Who PINGs** (:func:`pings`). At its tick a node PINGs every connection it
*dialled*; on a connection it *accepted* it PINGs only when the peer has been silent
for at least :data:`ACCEPTOR_SILENCE` intervals. One PING per connection and interval
keeps both ends' QUIC idle timers running (the pinged end hears the PING, the
pinging end its ACK), so PINGs from both ends would double the datagrams for
nothing. The margin of half an interval keeps the acceptor quiet when the dialler's
tick drifts against its own; a dialler that sends no keep-alives at all is still
PINGed within two and a half intervals, before the idle timeout (at least three).

What it costs (RFC 9000 section 10.1: the idle timer restarts at the first
ack-eliciting packet an end sends after it last heard its peer): the dialler notices
a silent peer at most one interval plus the idle timeout after the silence began,
the acceptor at most two and a half intervals plus the idle timeout.
:func:`first_ping` gives the instant of that first PING in closed form, for a
runtime that does not simulate every tick.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "ACCEPTOR_SILENCE", "first_ping", "keepalive_interval", "pings", "tick_at_or_after",
    "tick_at_or_before",
]

ACCEPTOR_SILENCE: Final = 1.5
"""Intervals of silence after which an accepting end PINGs its peer."""

TICK_EPSILON: Final = 1e-9
"""Relative slack when placing an instant on the tick grid: an instant within
``1e-9`` intervals after a tick counts as that tick (float rounding of sums of
intervals must not skip a whole interval)."""


def keepalive_interval(idle_timeout: float | None, keep_alive: float | None) -> float | None:
    """PING interval: the policy's ``keep_alive``, but at least three per idle timeout.

    ``None`` (no keep-alives) only when neither is set.
    """
    interval = keep_alive
    if idle_timeout is not None:
        interval = min(interval if interval is not None else idle_timeout, idle_timeout / 3)
    return interval


def pings(dialled: bool, now: float, heard_at: float, interval: float) -> bool:
    """Does an end PING at its keep-alive tick ``now``?

    ``dialled``: this end opened the connection. ``heard_at``: when the last datagram
    from the peer reached this end. A dialling end always PINGs; an accepting end
    only when the peer has been silent for ``ACCEPTOR_SILENCE`` intervals or more.
    """
    return dialled or now - heard_at >= ACCEPTOR_SILENCE * interval


def tick_at_or_after(phase: float, interval: float, now: float) -> float:
    """The first keep-alive tick at or after ``now`` of a node whose ticks fall at
    ``phase + k * interval`` (``k >= 0``; ``phase`` is when its loop started)."""
    ticks = math.ceil((now - phase) / interval - TICK_EPSILON)
    return phase + max(0, ticks) * interval


def tick_at_or_before(phase: float, interval: float, now: float) -> float | None:
    """The last keep-alive tick at or before ``now`` (same grid as
    :func:`tick_at_or_after`); ``None`` if the loop had not started by then."""
    ticks = math.floor((now - phase) / interval + TICK_EPSILON)
    return phase + ticks * interval if ticks >= 0 else None


def first_ping(dialled: bool, after: float, heard_at: float, phase: float,
               interval: float) -> float:
    """The first tick at or after ``after`` at which the end PINGs (see :func:`pings`).

    The ticks are ``phase + k * interval``; the peer was last heard at ``heard_at``
    and not since. A dialling end PINGs at its next tick; an accepting end at its
    first tick at least ``ACCEPTOR_SILENCE`` intervals after ``heard_at``.
    """
    tick = tick_at_or_after(phase, interval, after)
    if dialled:
        return tick
    quiet = heard_at + ACCEPTOR_SILENCE * interval
    if tick < quiet:
        tick = tick_at_or_after(phase, interval, quiet)
        if not pings(False, tick, heard_at, interval):
            tick += interval  # ``quiet`` fell a rounding error after this tick
    return tick
