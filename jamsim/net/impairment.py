"""User-space datagram impairment for real nodes (tc netem is not available here).

The pure core, :class:`DatagramImpairment`, decides for each datagram whether it
is dropped and when it leaves: ``outgoing(data, addr, now)`` returns a list of
``(send_at, data, addr)``.  Rules are :class:`jamsim.links.LinkSpec`, the link
type the simulator uses, drawn with the same samplers; they are keyed by remote
address and direction and changeable at run time (the control channel calls
:meth:`set_link`, :meth:`block` ...).
Deterministic given ``seed``.  :class:`ImpairedSender` is the tiny asyncio side:
it wraps ``transport.sendto`` and schedules delayed datagrams with
``loop.call_at``.  A node that is not impaired never constructs either: zero cost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from jamsim.links import LinkDirection, LinkSpec, check_direction

Addr = tuple[str, int]


def _norm(addr: tuple[object, ...] | Addr) -> Addr:
    """``(host, port)`` from a socket address (IPv6 tuples carry 4 fields)."""
    return (str(addr[0]), int(addr[1]))  # type: ignore[call-overload]


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
        self._out: dict[Addr, LinkSpec] = {}
        self._in: dict[Addr, LinkSpec] = {}
        self._bad: dict[tuple[str, Addr], bool] = {}  # Gilbert-Elliott state per path
        self._busy_until: dict[tuple[str, Addr], float] = {}  # bandwidth queues
        self.blocked_out: set[Addr] = set()
        self.blocked_in: set[Addr] = set()
        self.dropped = 0
        self.passed = 0

    # ----------------------------------------------------------------- rule changes

    def set_link(self, addr: Addr, rule: LinkSpec | None, *, direction: str = "out") -> None:
        """Set (or clear, with None) the rule for datagrams to ("out") / from ("in") ``addr``."""
        table = self._table(direction)
        key = _norm(addr)
        self._bad.pop((direction, key), None)
        self._busy_until.pop((direction, key), None)
        if rule is None or rule.is_unimpaired:
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
        self._bad.clear()
        self._busy_until.clear()

    def rules(self, direction: str = "out") -> dict[Addr, LinkSpec]:
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
        loss = rule.loss
        if loss.bursty:
            path = (direction, key)
            lost, self._bad[path] = loss.lost(self._rng, self._bad.get(path, False))
        else:
            lost = loss.lost(self._rng)[0]
        if lost:
            self.dropped += 1
            return []
        delay = rule.latency.sample(self._rng)
        if rule.bandwidth_bps is not None:
            queue = (direction, key)
            start = max(now, self._busy_until.get(queue, now))
            done = start + len(data) * 8 / rule.bandwidth_bps
            self._busy_until[queue] = done
            delay += done - now
        self.passed += 1
        return [(now + delay, data, addr)]

    def _table(self, direction: str) -> dict[Addr, LinkSpec]:
        side: LinkDirection = check_direction(direction)
        return self._out if side == "out" else self._in


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
