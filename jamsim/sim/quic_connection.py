"""A JamQuicConnection trimmed for thousands of simulated connections in one process.

The ``quic`` fidelity holds two real aioquic connections per validator pair (9,900
at V=100). Measured with tracemalloc on aioquic 1.7 (tests/sim/test_quic_fidelity.py
keeps the measurement honest), a stock connection pair costs ~184 KB, dominated by:

* ``_crypto_buffers``: three ``Buffer(capacity=16384)`` per connection (INITIAL,
  HANDSHAKE, ONE_RTT), ~96 KB per pair. They hold one TLS flight before it is
  copied into the crypto stream; a JAMNP-S flight is < 1.5 KB (one ~330-byte Ed25519
  certificate, no chain, no session tickets: at most 582 bytes measured), so 2 KiB is
  ample, and after the
  handshake they shrink to 256 bytes. An overflow would raise aioquic's
  BufferWriteError and fail the connection loudly, never silently.
* the per-instance frame-handler table: ~33 ``(bound method, frozenset)`` entries,
  each with its own freshly built frozenset, ~12 KB per connection. The table is
  replaced by a tiny per-instance view over one class-level table of plain
  functions and shared frozensets (binding on lookup, which happens once per frame).

Both trims touch aioquic private attributes; this module is the only place that
does so for memory, and :func:`trims_available` lets the test suite fail loudly if a
future aioquic renames them (the class then silently behaves like the stock one).
Behaviour on the wire is unchanged.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aioquic.buffer import Buffer  # type: ignore[attr-defined]

from jamsim.quic.tls_workaround import JamQuicConnection

__all__ = ["CRYPTO_BUFFER_CAPACITY", "SimQuicConnection", "trims_available"]

CRYPTO_BUFFER_CAPACITY = 2048
"""Bytes per TLS epoch output buffer during the handshake (aioquic's default is 16384).

Measured JAMNP-S flights: ClientHello 466 B (INITIAL), server HANDSHAKE flight 582 B,
client HANDSHAKE flight 419 B; 2048 leaves a 3.5x margin (512 already overflows)."""

POST_HANDSHAKE_CAPACITY = 256
"""Bytes per TLS epoch output buffer once the handshake is complete."""

_HANDLERS_ATTR = "_QuicConnection__frame_handlers"

FrameEntry = tuple[Callable[..., Any], frozenset[Any]]


class _BoundHandlers(Mapping[int, FrameEntry]):
    """Per-connection view of the shared frame table: binds the handler on lookup."""

    __slots__ = ("_owner", "_table")

    def __init__(self, owner: object, table: dict[int, tuple[Callable[..., Any], frozenset[Any]]]
                 ) -> None:
        self._owner = owner
        self._table = table

    def __getitem__(self, frame_type: int) -> FrameEntry:
        function, epochs = self._table[frame_type]
        return types.MethodType(function, self._owner), epochs

    def __iter__(self) -> Iterator[int]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


_SHARED_TABLE: dict[int, tuple[Callable[..., Any], frozenset[Any]]] | None = None


def _shared_table(handlers: dict[int, FrameEntry]
                  ) -> dict[int, tuple[Callable[..., Any], frozenset[Any]]] | None:
    """Class-level (function, epochs) table built from the first instance's table."""
    global _SHARED_TABLE
    if _SHARED_TABLE is None:
        interned: dict[frozenset[Any], frozenset[Any]] = {}
        table: dict[int, tuple[Callable[..., Any], frozenset[Any]]] = {}
        for frame_type, (handler, epochs) in handlers.items():
            function = getattr(handler, "__func__", None)
            if function is None:
                return None  # not a bound method: aioquic changed, keep its table
            table[frame_type] = (function, interned.setdefault(epochs, epochs))
        _SHARED_TABLE = table
    return _SHARED_TABLE


class SimQuicConnection(JamQuicConnection):
    """JamQuicConnection with smaller TLS buffers and a shared frame table."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        handlers = getattr(self, _HANDLERS_ATTR, None)
        if isinstance(handlers, dict):
            table = _shared_table(handlers)
            if table is not None and table.keys() == handlers.keys():
                setattr(self, _HANDLERS_ATTR, _BoundHandlers(self, table))

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        buffers = getattr(self, "_crypto_buffers", None)
        if isinstance(buffers, dict):
            self._crypto_buffers = {epoch: Buffer(capacity=CRYPTO_BUFFER_CAPACITY)
                                    for epoch in buffers}

    def release_handshake_buffers(self) -> None:
        """After HandshakeCompleted: shrink the TLS output buffers to a few bytes.

        Once the handshake is complete TLS writes nothing more here unless a
        post-handshake message is sent (JAMNP-S configures no session tickets), so
        holding 3 x 4 KiB per connection for the rest of its life is waste.
        """
        buffers = getattr(self, "_crypto_buffers", None)
        if isinstance(buffers, dict):
            self._crypto_buffers = {epoch: Buffer(capacity=POST_HANDSHAKE_CAPACITY)
                                    for epoch in buffers}


def trims_available() -> bool:
    """Whether the installed aioquic still has both attributes the trims replace."""
    from aioquic.quic.configuration import QuicConfiguration

    conn = SimQuicConnection(configuration=QuicConfiguration(is_client=True))
    conn.connect(("127.0.0.1", 1), now=0.0)
    buffers = getattr(conn, "_crypto_buffers", None)
    return isinstance(getattr(conn, _HANDLERS_ATTR, None), _BoundHandlers) and \
        isinstance(buffers, dict) and len(buffers) == 3
