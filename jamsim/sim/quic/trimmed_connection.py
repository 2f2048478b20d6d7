"""A JamQuicConnection trimmed for thousands of simulated connections in one process.

The ``quic`` fidelity holds two real aioquic connections per validator pair (9,900
at V=100), and a full-mesh bootstrap runs all their handshakes at the same time.
Measured on aioquic 1.7.2 / cryptography 50 (benchmarks/bench_sim_quic.py): the
RSS a bootstrap leaves behind is set by the *peak* of all those simultaneous
handshakes, not by what each connection keeps afterwards, because the memory
freed after a handshake is scattered between long-lived objects and malloc and
pymalloc cannot return it. So a trim pays off if it avoids an allocation that
would be alive at the peak (the handshakes' state); freeing things once the
handshake is over mostly turns them into holes. The trims, in that order of value:

Never allocated, or freed before the peak:

* packet protection (:mod:`jamsim.sim.quic.packet_protection`): keys instead of OpenSSL cipher
  contexts (~2.5 KB per AES-GCM, ~1 KB per header-protection context, two of each
  per epoch, up to three epochs at once);
* client key shares (:mod:`jamsim.sim.quic.key_shares`): the ephemeral private
  keys are kept as numbers until the ServerHello, and all key shares are dropped
  once the handshake secret is derived (a JAM client offers only X25519 since
  2026-11-30; aioquic's four shares were ~5 KB of OpenSSL keys);
* Initial keys: aioquic derives them for every supported QUIC version (v1 and v2)
  for compatible version negotiation. Only the connection's own version's are kept;
  another version's are derived on first use (same keys), which JAMNP-S peers
  never need. Discarding the Initial epoch replaces the table by a shared one;
* TLS output buffers: aioquic gives every connection three 16 KiB buffers that
  hold one TLS flight until ``_push_crypto_data`` copies it into the crypto stream,
  right after every ``tls.handle_message`` call. They are empty between calls, so
  all connections of a thread share one set (stock size, so no flight can
  overflow them); they are rewound on entry to ``connect``/``receive_datagram`` so
  that a TLS alert mid-flight cannot leave bytes for the next connection;
* unused state: the 1-RTT crypto stream is a shared unused stand-in until a CRYPTO
  frame arrives or TLS writes post-handshake data; the 0-RTT keys are a retired
  pair when no session ticket makes 0-RTT possible; the TLS context's six
  negotiation lists are shared tuples; the key-logging callbacks are dropped when
  no QUIC logger is configured (they only log);
* deques (~760 bytes each, even empty) of events, pending datagrams and path
  challenges become list-backed queues as soon as they exist;
* the per-instance frame-handler table (~33 bound methods, ~12 KB per connection)
  is a tiny view over one class-level table that binds on lookup.

Retired after the handshake (smaller live set for long runs):

* epochs: when the Initial and Handshake epochs are discarded, their crypto pairs,
  packet spaces and crypto streams are replaced by shared stand-ins
  (:mod:`jamsim.sim.quic.handshake_stand_ins`) that behave like discarded ones and refuse to
  be modified, after ``receive_datagram`` returns (frames later in the confirming
  datagram may still touch the old objects);
* TLS context: :meth:`SimQuicConnection.release_tls` swaps it, once the caller has
  read the peer certificate and ALPN, for :class:`PostHandshakeTls`.

No trim adds an attribute to the connection: its instance dict holds 85 keys in
1,584 bytes, and an 86th key makes it 3,328 bytes (measured, CPython 3.11).

All of this touches aioquic private attributes; these modules are the only place
that does so for memory, and :func:`memory_trims_report` runs a real handshake to
check every trim still applies to the installed aioquic (a renamed attribute makes
the class silently behave like the stock one otherwise).
tests/sim/quic/test_memory_trims.py also runs faulty scenarios with this class and
with the stock one and requires identical event logs and datagram counts. The
asyncio node (jamsim/net) uses the stock JamQuicConnection and is unaffected.
"""

from __future__ import annotations

import threading
import types
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aioquic import tls
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.crypto import CryptoPair, NoCallback
from aioquic.quic.packet import QuicProtocolVersion, pull_quic_header
from aioquic.quic.stream import QuicStream

from jamsim.quic.tls_workaround import JamQuicConnection
from jamsim.sim.quic.handshake_stand_ins import (
    DISCARDED_SPACE,
    RETIRED_CRYPTO_PAIR,
    UNUSED_CRYPTO_STREAM,
    BoundedQueue,
    PostHandshakeTls,
    SmallQueue,
    is_unused_stream,
    retired_initial_keys,
)
from jamsim.sim.quic.key_shares import StashedRawKey, stash_key_shares
from jamsim.sim.quic.packet_protection import (
    KeyOnlyAead,
    KeyOnlyCryptoContext,
    KeyOnlyHeaderProtection,
    slim_context,
)

__all__ = ["CRYPTO_BUFFER_CAPACITY", "SimQuicConnection", "memory_trims_report"]

CRYPTO_BUFFER_CAPACITY = 16384
"""Bytes per shared TLS output buffer: aioquic's own size (largest JAMNP-S flight:
582 bytes), affordable because there is one set per thread, not per connection."""

_HANDLERS_ATTR = "_QuicConnection__frame_handlers"
_HANDSHAKE_EPOCHS = (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE)

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


class _CryptoBuffers(threading.local):
    """One set of TLS output buffers per thread, shared by its connections."""

    def __init__(self) -> None:
        buffers = {epoch: Buffer(capacity=CRYPTO_BUFFER_CAPACITY)
                   for epoch in (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE, tls.Epoch.ONE_RTT)}
        self.buffers = buffers
        self.handshake: Mapping[tls.Epoch, Buffer] = types.MappingProxyType(buffers)
        self.established: Mapping[tls.Epoch, Buffer] = types.MappingProxyType(
            {tls.Epoch.ONE_RTT: buffers[tls.Epoch.ONE_RTT]})

    def rewind(self) -> None:
        for buffer in self.buffers.values():
            buffer.seek(0)


_CRYPTO_BUFFERS = _CryptoBuffers()


def _slim_pair(pair: CryptoPair) -> None:
    """Key-only ciphers for a pair: built at setup if it has no keys yet."""
    for name in ("recv", "send"):
        context = getattr(pair, name)
        if context.aead is None:
            setattr(pair, name, KeyOnlyCryptoContext.replacing(context))
        else:
            slim_context(context)


def _compact_paths(paths: list[Any]) -> None:
    """Swap the challenge deques of network paths for list-backed queues."""
    for path in paths:
        if isinstance(path.local_challenges, deque):
            path.local_challenges = BoundedQueue(path.local_challenges,
                                                 path.local_challenges.maxlen)
        if isinstance(path.remote_challenges, deque):
            path.remote_challenges = SmallQueue(path.remote_challenges)


_TLS_LISTS = ("_cipher_suites", "_legacy_compression_methods", "_psk_key_exchange_modes",
              "_signature_algorithms", "_supported_groups", "_supported_versions")
_SHARED_TUPLES: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _share_tls_lists(context: Any) -> None:
    """Swap a TLS context's per-instance negotiation lists for shared tuples.

    ``tls.Context`` builds six small lists per connection (cipher suites, groups,
    signature algorithms...) that it only ever reads; equal tuples, one per
    content, serve every connection (and a stray mutation would fail loudly).
    """
    for name in _TLS_LISTS:
        value = getattr(context, name, None)
        if isinstance(value, list):
            items = tuple(value)
            setattr(context, name, _SHARED_TUPLES.setdefault(items, items))


def _forget_key_shares(context: Any) -> None:
    """Drop the (EC)DHE private keys once the handshake secret is derived from them.

    TLS uses them for exactly one key exchange (a client offers four groups, ~5 KB
    of OpenSSL keys; aioquic implements no HelloRetryRequest, which would be the
    only reason to keep them), yet ``tls.Context`` holds them for its lifetime.
    """
    if isinstance(context, tls.Context) and context.key_schedule is not None:
        context._ec_private_keys = []
        context._x25519_private_key = None
        context._x448_private_key = None


class _LazyInitialKeys(dict[int, CryptoPair]):
    """Initial keys per QUIC version; versions other than the connection's on demand."""

    __slots__ = ("_cid", "_is_client", "_versions")

    def __init__(self, cid: bytes, is_client: bool, versions: list[int]) -> None:
        super().__init__()
        self._cid = cid
        self._is_client = is_client
        self._versions = versions

    def __missing__(self, version: int) -> CryptoPair:
        if version not in self._versions:
            raise KeyError(version)
        pair = CryptoPair()
        _slim_pair(pair)
        pair.setup_initial(cid=self._cid, is_client=self._is_client, version=version)
        self[version] = pair
        return pair


class SimQuicConnection(JamQuicConnection):
    """JamQuicConnection that retires its handshake state (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        handlers = getattr(self, _HANDLERS_ATTR, None)
        if isinstance(handlers, dict):
            table = _shared_table(handlers)
            if table is not None and table.keys() == handlers.keys():
                setattr(self, _HANDLERS_ATTR, _BoundHandlers(self, table))
        if isinstance(getattr(self, "_events", None), deque):
            self._events = SmallQueue(self._events)  # type: ignore[assignment]
        if isinstance(getattr(self, "_datagrams_pending", None), deque):
            self._datagrams_pending = SmallQueue(  # type: ignore[assignment]
                self._datagrams_pending)

    # ------------------------------------------------------------ handshake

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if isinstance(getattr(self, "_crypto_buffers", None), dict):
            self._crypto_buffers = _CRYPTO_BUFFERS.handshake  # type: ignore[assignment]
        initial = getattr(self, "_cryptos_initial", None)
        version = self._version
        if isinstance(initial, dict) and version is not None and version in initial:
            lazy = _LazyInitialKeys(peer_cid, self._is_client,
                                    self._configuration.supported_versions)
            lazy[version] = initial[version]
            self._cryptos_initial = lazy
        context: Any = self.tls
        _share_tls_lists(context)
        if context.session_ticket is None and context.get_session_ticket_cb is None:
            # 0-RTT keys need a session ticket; without one TLS never installs them.
            self._cryptos[tls.Epoch.ZERO_RTT] = RETIRED_CRYPTO_PAIR
        streams = self._crypto_streams
        if is_unused_stream(streams[tls.Epoch.ONE_RTT]):
            streams[tls.Epoch.ONE_RTT] = UNUSED_CRYPTO_STREAM  # until first used
        for pair in self._cryptos.values():
            if pair is RETIRED_CRYPTO_PAIR:
                continue
            if self._quic_logger is None:
                # The pairs' callbacks only log key changes to the QUIC logger.
                for context in (pair.recv, pair.send):
                    context._setup_cb = NoCallback
                    context._teardown_cb = NoCallback
            _slim_pair(pair)

    def _update_traffic_key(self, direction: tls.Direction, epoch: tls.Epoch,
                            cipher_suite: tls.CipherSuite, secret: bytes) -> None:
        super()._update_traffic_key(direction, epoch, cipher_suite, secret)
        pair = self._cryptos[epoch]
        slim_context(pair.send if direction == tls.Direction.ENCRYPT else pair.recv)
        if epoch is tls.Epoch.HANDSHAKE:
            _forget_key_shares(self.tls)

    def connect(self, addr: Any, now: float) -> None:
        _CRYPTO_BUFFERS.rewind()
        super().connect(addr, now)
        _compact_paths(self._network_paths)
        stash_key_shares(self.tls)

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        _CRYPTO_BUFFERS.rewind()
        super().receive_datagram(data, addr, now)
        _compact_paths(self._network_paths)
        if self._is_client:
            stash_key_shares(self.tls)  # a Retry or version negotiation starts over
        if self._handshake_confirmed and self._spaces.get(tls.Epoch.INITIAL) is not \
                DISCARDED_SPACE:
            self._retire_handshake_epochs()

    def _discard_epoch(self, epoch: tls.Epoch) -> None:
        super()._discard_epoch(epoch)
        if epoch in _HANDSHAKE_EPOCHS and self._spaces[epoch].discarded:
            self._cryptos[epoch] = RETIRED_CRYPTO_PAIR
            if epoch is tls.Epoch.INITIAL:
                self._cryptos_initial = retired_initial_keys(  # type: ignore[assignment]
                    self._configuration.supported_versions)

    # ------------------------------------------------------------ established

    def _retire_handshake_epochs(self) -> None:
        """Handshake confirmed: share the discarded epochs' state, shrink the rest."""
        spaces = self._spaces
        if not all(epoch in spaces and spaces[epoch].discarded for epoch in _HANDSHAKE_EPOCHS):
            return
        for epoch in _HANDSHAKE_EPOCHS:
            spaces[epoch] = DISCARDED_SPACE
            self._cryptos[epoch] = RETIRED_CRYPTO_PAIR
            self._crypto_streams.pop(epoch, None)
        self._loss.spaces = list(spaces.values())
        zero_rtt = self._cryptos.get(tls.Epoch.ZERO_RTT)
        if zero_rtt is not None and not zero_rtt.recv.is_valid() and \
                not zero_rtt.send.is_valid():
            self._cryptos[tls.Epoch.ZERO_RTT] = RETIRED_CRYPTO_PAIR
        self._crypto_buffers = _CRYPTO_BUFFERS.established  # type: ignore[assignment]

    def _handle_crypto_frame(self, context: Any, frame_type: int, buf: Buffer) -> None:
        if self._crypto_streams.get(context.epoch) is UNUSED_CRYPTO_STREAM:
            self._crypto_streams[context.epoch] = QuicStream()  # as aioquic built it
        super()._handle_crypto_frame(context, frame_type, buf)

    def _push_crypto_data(self) -> None:
        for epoch, buffer in self._crypto_buffers.items():
            if buffer.tell() and self._crypto_streams.get(epoch) is UNUSED_CRYPTO_STREAM:
                self._crypto_streams[epoch] = QuicStream()  # TLS wrote post-handshake data
        super()._push_crypto_data()

    def release_tls(self) -> bool:
        """After HandshakeCompleted was consumed: keep only post-handshake TLS state.

        Call once the peer certificate and ALPN have been read (they go with the
        context). Returns whether the context was replaced (it is kept if it is
        not in a post-handshake state or would build session tickets).
        """
        stand_in = PostHandshakeTls.replacing(getattr(self, "tls", None))
        if stand_in is None:
            return False
        self.tls = stand_in  # type: ignore[assignment]
        return True


def memory_trims_report() -> dict[str, bool]:
    """Run one real client/server handshake in memory; which trims took effect.

    The test suite asserts every value is True, so a future aioquic that renames a
    private attribute fails loudly instead of silently costing memory again.
    """
    from jamsim.identity import ValidatorIdentity
    from jamsim.quic.certificates import certificate_for
    from jamsim.quic.config import make_configuration

    genesis = bytes(32)
    client = SimQuicConnection(configuration=make_configuration(
        certificate_for(ValidatorIdentity.generate_dev("trims", 0)), genesis,
        is_client=True, idle_timeout=15.0))
    server_address, client_address = ("10.0.0.2", 1), ("10.0.0.1", 1)
    client.connect(server_address, now=0.0)
    first = client.datagrams_to_send(now=0.0)
    header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=8)
    server = SimQuicConnection(
        configuration=make_configuration(
            certificate_for(ValidatorIdentity.generate_dev("trims", 1)), genesis,
            is_client=False, idle_timeout=15.0),
        original_destination_connection_id=header.destination_cid)
    context: Any = client.tls
    before = {"x25519_share_only": tuple(context._supported_groups) == (tls.Group.X25519,)
              and not context._ec_private_keys and context._x448_private_key is None,
              "key_shares_stashed": isinstance(context._x25519_private_key, StashedRawKey),
              "initial_keys_lazy": isinstance(client._cryptos_initial, _LazyInitialKeys)
              and QuicProtocolVersion.VERSION_2 not in client._cryptos_initial,
              "crypto_buffers_shared": client._crypto_buffers is _CRYPTO_BUFFERS.handshake}
    now, to_server = 0.0, first
    for _ in range(10):
        now += 0.05
        for data, _addr in to_server:
            server.receive_datagram(data, client_address, now=now)
        to_client = server.datagrams_to_send(now=now)
        now += 0.05
        for data, _addr in to_client:
            client.receive_datagram(data, server_address, now=now)
        to_server = client.datagrams_to_send(now=now)
        if not to_server and not to_client:
            break
    report = dict(before)
    report["tls_lists_shared"] = all(
        isinstance(getattr(conn.tls, name), tuple)
        for name in _TLS_LISTS for conn in (client, server)) and \
        client.tls._cipher_suites is server.tls._cipher_suites
    report["key_shares_forgotten"] = all(
        not conn.tls._ec_private_keys and conn.tls._x25519_private_key is None
        and conn.tls._x448_private_key is None for conn in (client, server))
    released = [conn.release_tls() for conn in (client, server)]
    for name, conn in (("client", client), ("server", server)):
        report[f"{name}_epochs_retired"] = all(
            conn._spaces[e] is DISCARDED_SPACE and conn._cryptos[e] is RETIRED_CRYPTO_PAIR
            for e in _HANDSHAKE_EPOCHS) and \
            conn._crypto_streams == {tls.Epoch.ONE_RTT: UNUSED_CRYPTO_STREAM}
        report[f"{name}_queues_small"] = isinstance(conn._events, SmallQueue) and all(
            isinstance(p.remote_challenges, SmallQueue) for p in conn._network_paths)
        report[f"{name}_frame_table_shared"] = isinstance(getattr(conn, _HANDLERS_ATTR),
                                                          _BoundHandlers)
    report["tls_released"] = all(released)
    report["ciphers_key_only_from_setup"] = all(
        isinstance(context, KeyOnlyCryptoContext) and
        isinstance(context.aead, KeyOnlyAead) and
        isinstance(context.hp, KeyOnlyHeaderProtection)
        for conn in (client, server) for context in (conn._cryptos[tls.Epoch.ONE_RTT].send,
                                                     conn._cryptos[tls.Epoch.ONE_RTT].recv))
    report["key_log_callbacks_dropped"] = all(
        conn._cryptos[tls.Epoch.ONE_RTT].send._setup_cb is NoCallback
        for conn in (client, server))
    return report
