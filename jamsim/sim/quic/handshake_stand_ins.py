"""Stand-ins for the handshake state an established simulated QUIC connection retires.

A full-mesh bootstrap in the ``quic`` fidelity runs every handshake at once, then
keeps thousands of connections open. After the handshake each aioquic connection
still holds everything it needed to get there: the TLS context (key schedule,
transcript hash, up to four ephemeral private keys, the parsed peer certificate,
per-instance copies of the cipher/group/signature lists), the Initial keys of every
supported QUIC version, crypto pairs, packet spaces and crypto streams of the
discarded Initial/Handshake epochs, and empty ``deque``\\ s of ~760 bytes each.

This module provides the small, shared, read-only objects that take their places
(:mod:`jamsim.sim.quic.trimmed_connection` decides when). Each one behaves exactly like what
it replaces does in that state, and the shared ones refuse mutation loudly instead of
leaking state from one connection into another:

* :data:`RETIRED_CRYPTO_PAIR`: keys that were torn down (decrypt raises
  ``KeyUnavailableError``, ``send.is_valid()`` is False), like a discarded epoch's;
* :func:`retired_initial_keys`: the per-version Initial key table after the Initial
  epoch is discarded (every supported version maps to the retired pair);
* :data:`DISCARDED_SPACE`: a discarded packet space (nothing in flight, no loss
  time, no ACK due), which is all loss recovery ever reads from one;
* :data:`UNUSED_CRYPTO_STREAM`: the 1-RTT crypto stream while nothing was ever sent
  or received on it;
* :class:`PostHandshakeTls`: the part of a TLS context a connection still uses in
  the post-handshake state (negotiated ALPN and its reaction to a post-handshake
  message);
* :class:`SmallQueue` / :class:`BoundedQueue`: list-backed replacements for the
  ``deque`` operations aioquic uses on its event and challenge queues.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from aioquic import tls
from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]
from aioquic.quic.crypto import CryptoContext, CryptoPair
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream, QuicStreamReceiver, QuicStreamSender

__all__ = [
    "DISCARDED_SPACE",
    "RETIRED_CRYPTO_PAIR",
    "UNUSED_CRYPTO_STREAM",
    "BoundedQueue",
    "PostHandshakeTls",
    "RetiredStateError",
    "SmallQueue",
    "is_unused_stream",
    "retired_initial_keys",
]

T = TypeVar("T")


class RetiredStateError(RuntimeError):
    """Something tried to modify a shared stand-in for retired handshake state.

    aioquic never does so for a discarded epoch; if a future version did, sharing
    would be wrong, so this stops the run instead of corrupting other connections.
    """


class _RetiredCryptoContext(CryptoContext):
    """A CryptoContext whose keys are gone and can never be installed again."""

    def setup(self, *, cipher_suite: tls.CipherSuite, secret: bytes, version: int) -> None:
        raise RetiredStateError("keys of a discarded epoch cannot be set up again")


class _RetiredCryptoPair(CryptoPair):
    def __init__(self) -> None:
        super().__init__()
        self.recv = _RetiredCryptoContext()
        self.send = _RetiredCryptoContext()

    def setup_initial(self, cid: bytes, is_client: bool, version: int) -> None:
        raise RetiredStateError("Initial keys of a discarded epoch cannot be set up again")

    def update_key(self) -> None:
        raise RetiredStateError("a discarded epoch has no key phase")


RETIRED_CRYPTO_PAIR: CryptoPair = _RetiredCryptoPair()
"""Shared by every connection for every epoch whose keys were discarded."""

_RETIRED_INITIAL_KEYS: dict[tuple[int, ...], Mapping[int, CryptoPair]] = {}


def retired_initial_keys(versions: Iterable[int]) -> Mapping[int, CryptoPair]:
    """Read-only ``version -> RETIRED_CRYPTO_PAIR`` for the supported versions (shared)."""
    key = tuple(versions)
    table = _RETIRED_INITIAL_KEYS.get(key)
    if table is None:
        table = types.MappingProxyType(dict.fromkeys(key, RETIRED_CRYPTO_PAIR))
        _RETIRED_INITIAL_KEYS[key] = table
    return table


class _DiscardedSpace(QuicPacketSpace):
    """A discarded packet space; frozen once built, its containers read-only."""

    def __init__(self) -> None:
        super().__init__()
        self.discarded = True
        self.sent_packets = types.MappingProxyType({})  # type: ignore[assignment]
        self.received_packets = frozenset()  # type: ignore[assignment]
        self._frozen = True

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise RetiredStateError(f"discarded packet space is shared: cannot set {name}")
        super().__setattr__(name, value)


DISCARDED_SPACE: QuicPacketSpace = _DiscardedSpace()
"""Shared by every connection for its discarded Initial and Handshake spaces."""


class _FrozenStreamPart:
    """Mixin: no attribute may change once ``_frozen`` is set."""

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise RetiredStateError(f"unused crypto stream is shared: cannot set {name}")
        super().__setattr__(name, value)


class _UnusedSender(_FrozenStreamPart, QuicStreamSender):
    def write(self, data: bytes, end_stream: bool = False) -> None:
        if data or end_stream:
            raise RetiredStateError("unused crypto stream is shared: cannot write to it")


class _UnusedReceiver(_FrozenStreamPart, QuicStreamReceiver):
    def handle_frame(self, frame: Any) -> Any:
        raise RetiredStateError("unused crypto stream is shared: replace it before use")


class _UnusedCryptoStream(_FrozenStreamPart, QuicStream):
    def __init__(self) -> None:
        super().__init__()
        self.receiver = _UnusedReceiver(stream_id=None, readable=True)
        self.sender = _UnusedSender(stream_id=None, writable=True)
        for part in (self.receiver, self.sender, self):
            part._frozen = True


UNUSED_CRYPTO_STREAM: QuicStream = _UnusedCryptoStream()
"""Shared 1-RTT crypto stream of connections that never used theirs.

JAMNP-S sends nothing after the handshake on the 1-RTT crypto stream (no session
tickets), yet aioquic keeps a QuicStream with two buffers and three range sets
(~850 bytes) per connection for it. Reading it (``buffer_is_empty``) and writing
nothing to it are all aioquic does with an unused one; the connection swaps in a
fresh QuicStream before the first CRYPTO frame is handled."""


def is_unused_stream(stream: QuicStream) -> bool:
    """Whether ``stream`` is indistinguishable from a freshly built ``QuicStream()``."""
    fresh = QuicStream()

    def fields(obj: object) -> dict[str, Any]:
        return {k: v for k, v in vars(obj).items() if k not in ("receiver", "sender")}

    return fields(stream) == fields(fresh) and vars(stream.sender) == vars(fresh.sender) \
        and vars(stream.receiver) == vars(fresh.receiver)


_POST_HANDSHAKE_STATES = frozenset({tls.State.CLIENT_POST_HANDSHAKE,
                                    tls.State.SERVER_POST_HANDSHAKE})


class PostHandshakeTls:
    """What a QuicConnection still uses of its ``tls.Context`` after the handshake.

    aioquic reads ``state``, ``alpn_negotiated``, ``early_data_accepted`` and
    ``session_resumed`` after the handshake, and hands any further CRYPTO data of
    the 1-RTT epoch to ``handle_message``. In the post-handshake state a TLS 1.3
    context accepts exactly one message: a NewSessionTicket at a client, which it
    parses and, with no ticket handler installed, drops. Anything else is an
    unexpected message. That is all this class does; keys, transcript, certificates
    and the negotiation lists are not kept. Only built for contexts without a
    ticket handler (see :meth:`replacing`).
    """

    __slots__ = ("_is_client", "_receive_buffer", "alpn_negotiated",
                 "early_data_accepted", "session_resumed", "state")

    def __init__(self, *, state: tls.State, alpn_negotiated: str | None,
                 early_data_accepted: bool, session_resumed: bool,
                 pending: bytes = b"") -> None:
        self.state = state
        self.alpn_negotiated = alpn_negotiated
        self.early_data_accepted = early_data_accepted
        self.session_resumed = session_resumed
        self._is_client = state is tls.State.CLIENT_POST_HANDSHAKE
        self._receive_buffer = pending

    @classmethod
    def replacing(cls, context: Any) -> PostHandshakeTls | None:
        """The stand-in for ``context``, or None if it still needs its full state.

        Needs a context in a post-handshake state that would drop session tickets
        (no ``new_session_ticket_cb``: building a ticket needs the key schedule).
        """
        if isinstance(context, PostHandshakeTls):
            return context
        if not isinstance(context, tls.Context) or context.state not in _POST_HANDSHAKE_STATES \
                or context.new_session_ticket_cb is not None:
            return None
        return cls(state=context.state, alpn_negotiated=context.alpn_negotiated,
                   early_data_accepted=context.early_data_accepted,
                   session_resumed=context.session_resumed,
                   pending=context._receive_buffer)

    def handle_message(self, input_data: bytes, output_buf: Mapping[tls.Epoch, Buffer]) -> None:
        """Reassemble handshake messages; accept (and drop) only a client's tickets."""
        self._receive_buffer += input_data
        while len(self._receive_buffer) >= 4:
            length = 4 + int.from_bytes(self._receive_buffer[1:4], "big")
            if len(self._receive_buffer) < length:
                return
            message = self._receive_buffer[:length]
            self._receive_buffer = self._receive_buffer[length:]
            if not self._is_client or message[0] != tls.HandshakeType.NEW_SESSION_TICKET:
                raise tls.AlertUnexpectedMessage
            reader = Buffer(data=message)
            try:
                tls.pull_new_session_ticket(reader)
            except BufferReadError as exc:
                raise tls.AlertDecodeError("Could not parse TLS message") from exc
            # A message with trailing bytes trips the same assertion in tls.Context.
            assert reader.eof()


class SmallQueue(list[T], Generic[T]):
    """The ``deque`` subset aioquic uses on its queues, backed by a list.

    An empty ``deque`` preallocates a 64-slot block (~760 bytes); these queues hold
    a handful of items at most, and an empty list subclass costs ~72 bytes.
    ``popleft`` on an empty queue raises IndexError, as ``deque.popleft`` does.
    """

    __slots__ = ()

    def popleft(self) -> T:
        return self.pop(0)


class BoundedQueue(SmallQueue[T]):
    """SmallQueue with ``deque(maxlen=...)``'s append: the oldest item falls out."""

    __slots__ = ("maxlen",)

    def __init__(self, items: Iterable[T] = (), maxlen: int | None = None) -> None:
        super().__init__()
        self.maxlen = maxlen
        for item in items:
            self.append(item)

    def append(self, item: T) -> None:
        if self.maxlen is not None and len(self) >= self.maxlen:
            if self.maxlen == 0:
                return
            del self[0]
        super().append(item)
