"""User-space datagram impairment for real nodes (tc netem is not available here).

The pure core, :class:`DatagramImpairment`, decides for each datagram whether it
is dropped and when it leaves: ``outgoing(data, addr, now)`` returns a list of
``(send_at, data, addr)``.  Rules are keyed by remote address and changeable at
run time (the control channel calls :meth:`set_link`, :meth:`block` ...).
Deterministic given ``seed``.  :class:`ImpairedSender` is the tiny asyncio side:
it wraps ``transport.sendto`` and schedules delayed datagrams with
``loop.call_at``.  A node that is not impaired never constructs either: zero cost.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

Addr = tuple[str, int]


def _norm(addr: tuple[object, ...] | Addr) -> Addr:
    """``(host, port)`` from a socket address (IPv6 tuples carry 4 fields)."""
    return (str(addr[0]), int(addr[1]))  # type: ignore[call-overload]


@dataclass(frozen=True)
class LinkRule:
    """Impairment of one direction of one link.

    ``latency`` is the median one-way delay (s) and ``jitter`` its standard
    deviation: ``normal`` adds a normal draw clipped at zero, ``lognormal`` draws
    from the lognormal with that median and deviation (the heavy right tail of
    measured WAN latency), as the simulator does.  Loss is Bernoulli(``loss``)
    unless ``burst_loss`` = ``(p_good_to_bad, p_bad_to_good, loss_in_bad)``
    selects Gilbert-Elliott.  ``bandwidth_bps`` serialises datagrams on the link
    (``len * 8 / bandwidth`` each, first in first out), so a burst spreads out.
    """

    latency: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    burst_loss: tuple[float, float, float] | None = None
    distribution: str = "normal"
    bandwidth_bps: float | None = None

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must be >= 0")
        if self.distribution not in ("normal", "lognormal"):
            raise ValueError("distribution must be 'normal' or 'lognormal'")
        if self.bandwidth_bps is not None and self.bandwidth_bps <= 0:
            raise ValueError("bandwidth_bps must be > 0 (or null for unlimited)")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss must be within [0, 1]")
        burst = self.burst_loss
        if burst is not None and (len(burst) != 3 or not all(0.0 <= p <= 1.0 for p in burst)):
            raise ValueError("burst_loss is (p_good_to_bad, p_bad_to_good, loss_in_bad) in [0, 1]")


class _GilbertElliott:
    """Two-state burst-loss chain; state advances once per datagram."""

    __slots__ = ("bad", "loss_bad", "p_bad", "p_good")

    def __init__(self, params: tuple[float, float, float]) -> None:
        self.p_bad, self.p_good, self.loss_bad = params
        self.bad = False

    def lost(self, rng: random.Random) -> bool:
        if self.bad:
            if rng.random() < self.p_good:
                self.bad = False
        elif rng.random() < self.p_bad:
            self.bad = True
        return self.bad and rng.random() < self.loss_bad


class DatagramImpairment:
    """Per-address link rules and partition blocks; pure, no clock, no loop.

    ``outgoing`` is for the send path (rules keyed by destination),
    ``incoming`` for the receive path (rules keyed by source).  Blocks are
    directional: ``block_out`` drops what we send to an address, ``block_in``
    what we receive from it, so one-way partitions are two calls on two nodes
    or one call on one node.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._out: dict[Addr, LinkRule] = {}
        self._in: dict[Addr, LinkRule] = {}
        self._chains: dict[tuple[str, Addr], _GilbertElliott] = {}
        self._busy_until: dict[tuple[str, Addr], float] = {}  # bandwidth queues
        self.blocked_out: set[Addr] = set()
        self.blocked_in: set[Addr] = set()
        self.dropped = 0
        self.passed = 0

    # ----------------------------------------------------------------- rule changes

    def set_link(self, addr: Addr, rule: LinkRule | None, *, direction: str = "out") -> None:
        """Set (or clear, with None) the rule for datagrams to ("out") / from ("in") ``addr``."""
        table = self._table(direction)
        key = _norm(addr)
        self._chains.pop((direction, key), None)
        self._busy_until.pop((direction, key), None)
        if rule is None or rule == LinkRule():
            table.pop(key, None)
        else:
            table[key] = rule

    def block(self, addrs: Iterable[Addr], *, outgoing: bool = True, incoming: bool = True) -> None:
        """Drop everything to and/or from ``addrs`` (a partition, possibly one-way)."""
        for addr in addrs:
            if outgoing:
                self.blocked_out.add(_norm(addr))
            if incoming:
                self.blocked_in.add(_norm(addr))

    def heal(self) -> None:
        """Remove every block (link rules stay)."""
        self.blocked_out.clear()
        self.blocked_in.clear()

    def clear(self) -> None:
        """Remove every block and link rule."""
        self.heal()
        self._out.clear()
        self._in.clear()
        self._chains.clear()
        self._busy_until.clear()

    def rules(self, direction: str = "out") -> dict[Addr, LinkRule]:
        return dict(self._table(direction))

    @property
    def active(self) -> bool:
        """False when nothing is configured (callers may bypass the impairment entirely)."""
        return bool(self._out or self._in or self.blocked_out or self.blocked_in)

    # ----------------------------------------------------------------------- decisions

    def outgoing(self, data: bytes, addr: Addr, now: float) -> list[tuple[float, bytes, Addr]]:
        """Datagrams to send and when: ``[]`` if dropped, else ``[(send_at, data, addr)]``."""
        return self._decide("out", self.blocked_out, data, addr, now)

    def incoming(self, data: bytes, addr: Addr, now: float) -> list[tuple[float, bytes, Addr]]:
        """Datagrams to deliver and when (receive path; rules keyed by source)."""
        return self._decide("in", self.blocked_in, data, addr, now)

    def _decide(
        self, direction: str, blocked: set[Addr], data: bytes, addr: Addr, now: float
    ) -> list[tuple[float, bytes, Addr]]:
        key = _norm(addr)
        if key in blocked:
            self.dropped += 1
            return []
        rule = self._table(direction).get(key)
        if rule is None:
            self.passed += 1
            return [(now, data, addr)]
        if rule.burst_loss is not None:
            chain = self._chains.get((direction, key))
            if chain is None:
                chain = self._chains[(direction, key)] = _GilbertElliott(rule.burst_loss)
            lost = chain.lost(self._rng)
        else:
            lost = rule.loss > 0.0 and self._rng.random() < rule.loss
        if lost:
            self.dropped += 1
            return []
        delay = self._latency(rule)
        if rule.bandwidth_bps is not None:
            queue = (direction, key)
            start = max(now, self._busy_until.get(queue, now))
            done = start + len(data) * 8 / rule.bandwidth_bps
            self._busy_until[queue] = done
            delay += done - now
        self.passed += 1
        return [(now + delay, data, addr)]

    def _latency(self, rule: LinkRule) -> float:
        if rule.jitter <= 0.0 or (rule.latency <= 0.0 and rule.distribution == "lognormal"):
            return rule.latency
        if rule.distribution == "lognormal":
            # Median m = exp(mu); variance m^2 x (x - 1) with x = exp(sigma^2).
            x = (1 + math.sqrt(1 + 4 * (rule.jitter / rule.latency) ** 2)) / 2
            return self._rng.lognormvariate(math.log(rule.latency), math.sqrt(math.log(x)))
        return max(0.0, rule.latency + self._rng.gauss(0.0, rule.jitter))

    def _table(self, direction: str) -> dict[Addr, LinkRule]:
        if direction == "out":
            return self._out
        if direction == "in":
            return self._in
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")


SendTo = Callable[[bytes, Addr], None]


class ImpairedSender:
    """asyncio side: ``sender.sendto(data, addr)`` in place of ``transport.sendto``.

    Plug-in is one line in the node: ``transport.sendto = ImpairedSender(imp,
    transport.sendto).sendto`` (or call it from the datagram send loop).  With no
    rules configured it forwards immediately.  Note that jitter can reorder
    datagrams, as real networks do.
    """

    def __init__(
        self,
        impairment: DatagramImpairment,
        sendto: SendTo,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.impairment = impairment
        self._sendto = sendto
        self._loop = loop

    def sendto(self, data: bytes, addr: Addr) -> None:
        imp = self.impairment
        if not imp.active:
            self._sendto(data, addr)
            return
        loop = self._loop or asyncio.get_running_loop()
        now = loop.time()
        for send_at, payload, dest in imp.outgoing(data, addr, now):
            if send_at <= now:
                self._sendto(payload, dest)
            else:
                loop.call_at(send_at, self._sendto, payload, dest)


class _Receiver(Protocol):
    def datagram_received(self, data: bytes, addr: Any) -> None: ...


def impair_datagram_endpoint(
    transport: asyncio.DatagramTransport,
    protocol: _Receiver,
    impairment: DatagramImpairment,
) -> None:
    """Plug ``impairment`` into an existing UDP endpoint: the node's one line.

    Replaces ``transport.sendto`` (send path, rules by destination) and
    ``protocol.datagram_received`` (receive path, rules by source) on these
    instances only, so aioquic's ``QuicConnectionProtocol`` (or any protocol)
    works unchanged.  While no rule is configured each call costs one attribute
    check.
    """
    loop = asyncio.get_running_loop()
    sender = ImpairedSender(impairment, transport.sendto, loop)
    receive = protocol.datagram_received

    def impaired_receive(data: bytes, addr: Any) -> None:
        if not impairment.active:
            receive(data, addr)
            return
        now = loop.time()
        for deliver_at, payload, _src in impairment.incoming(data, _norm(addr), now):
            if deliver_at <= now:
                receive(payload, addr)
            else:
                loop.call_at(deliver_at, receive, payload, addr)

    transport.sendto = sender.sendto  # type: ignore[method-assign, assignment]
    protocol.datagram_received = impaired_receive  # type: ignore[method-assign]
