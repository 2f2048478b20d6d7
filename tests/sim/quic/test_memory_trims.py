"""The ``quic`` fidelity's memory trims: they apply, and nothing observable changes.

The strongest check runs the same faulty scenarios with the trimmed connection class
and with the stock one and requires identical event logs and datagram counts. The
other tests pin down the stand-ins one by one against what they replace.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from aioquic import tls
from aioquic._crypto import CryptoError
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.crypto import CryptoContext, CryptoPair, KeyUnavailableError
from aioquic.quic.packet import QuicProtocolVersion
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.net.connection import ConnState, JamConnection
from jamsim.quic.tls_workaround import JamQuicConnection
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.quic.handshake_stand_ins import (
    DISCARDED_SPACE,
    RETIRED_CRYPTO_PAIR,
    UNUSED_CRYPTO_STREAM,
    BoundedQueue,
    PostHandshakeTls,
    RetiredStateError,
    SmallQueue,
)
from jamsim.sim.quic.key_shares import StashedEcKey, StashedRawKey, stash_key_shares
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.quic.packet_protection import (
    KeyOnlyAead,
    KeyOnlyCryptoContext,
    KeyOnlyHeaderProtection,
    slim_context,
)
from jamsim.sim.quic.transport import QuicTransport
from jamsim.sim.quic.trimmed_connection import _CRYPTO_BUFFERS, SimQuicConnection
from jamsim.sim.simulation import Simulation, event_log_digest
from jamsim.telemetry.records import EventRecord
from tests.quic.pair import SERVER_ADDR, configuration, connect_pair, exchange

SET_SEED = 5


def build(v: int, network: NetworkConfig, seed: int,
          connection_class: type[JamQuicConnection] = SimQuicConnection,
          ) -> tuple[Simulation, list[EventRecord]]:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(v, seed=SET_SEED), network,
                     ConnectionPolicy.preset("jamnp-s"), fidelity="quic", seed=seed,
                     on_event=records.append, sample_interval=0.05,
                     identities=DevKeyring([SET_SEED], v))
    assert sim.quic is not None
    sim.quic.connection_class = connection_class
    return sim, records


def retired(quic: Any) -> bool:
    """Whether a connection runs on the stand-ins for its handshake state."""
    return isinstance(quic.tls, PostHandshakeTls) and all(
        quic._spaces[e] is DISCARDED_SPACE and quic._cryptos[e] is RETIRED_CRYPTO_PAIR
        for e in (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE))


def live_connections(sim: Simulation) -> list[JamConnection]:
    conns = []
    for transport in sim.transports.values():
        assert isinstance(transport, QuicTransport)
        for end in (transport.client, transport.server):
            if end.conn is not None and end.conn.state is ConnState.VERIFIED:
                conns.append(end.conn)
    return conns


# ------------------------------------------------------------- whole simulations

def lossy_partition(sim: Simulation) -> None:
    sim.at(3.0, lambda: sim.partition([[0, 1, 2], [3, 4, 5]]))
    sim.at(25.0, sim.heal)
    sim.run(50.0)


def crash_and_pauses(sim: Simulation) -> None:
    sim.at(2.0, lambda: sim.crash(2))
    sim.at(25.0, lambda: sim.restart(2))
    sim.at(5.0, lambda: sim.pause(4))
    sim.at(30.0, lambda: sim.resume(4))
    sim.at(40.0, lambda: sim.pause(5))
    sim.at(44.0, lambda: sim.resume(5))
    sim.run(60.0)


@pytest.mark.parametrize(("scenario", "loss", "seed"), [
    (lossy_partition, 0.05, 1),
    (crash_and_pauses, 0.02, 2),
])
def test_trimmed_connections_behave_exactly_like_stock_ones(
        scenario: Callable[[Simulation], None], loss: float, seed: int) -> None:
    network = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.02, "lognormal"),
                                             LossSpec.bernoulli(loss)))
    outcomes = []
    for cls in (SimQuicConnection, JamQuicConnection):
        sim, records = build(6, network, seed, cls)
        scenario(sim)
        fabric = sim.quic
        assert fabric is not None
        outcomes.append((event_log_digest(records), fabric.datagrams, fabric.datagram_bytes,
                         dict(fabric.terminations), fabric.up0_handshakes))
        conns = live_connections(sim)
        assert conns
        # The trims did apply in the trimmed run (and not in the stock one).
        assert all(retired(c.quic) for c in conns) == (cls is SimQuicConnection)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][3]  # the scenarios did lose and close connections


def test_retired_connections_reopen_up0_and_close_cleanly() -> None:
    sim, records = build(3, NetworkConfig(default=LinkSpec(LatencySpec(0.05))), 1)
    sim.run(1.0)
    assert sim.is_full_mesh()
    transports = [t for t in sim.transports.values() if isinstance(t, QuicTransport)]
    assert all(retired(c.quic) for c in live_connections(sim))
    # UP 0 after retirement: the initiator re-opens it, both ends handshake again.
    transport = transports[0]
    client, server = transport.client.conn, transport.server.conn
    assert client is not None and server is not None
    client.peer_handshake = server.peer_handshake = None
    client.open_up0()
    transport._transmit(transport.client)
    sim.run(1.5)
    assert client.peer_handshake is not None and server.peer_handshake is not None
    # Close after retirement: the peer sees our CONNECTION_CLOSE with our reason
    # once its draining period (3 PTO) is over.
    node_a = sim.nodes[transport.a]
    transport.close(node_a, "test close")
    sim.run(3.0)
    lost = [r for r in records if r.event == "disconnected" and r.reason == "test close"]
    assert len(lost) == 1 and lost[0].peer == transport.a
    assert transport.server.conn is None and transport.client.conn is None


# ------------------------------------------------------------- one connection pair

def handshake(cls: type[JamQuicConnection] = SimQuicConnection, release: bool = True,
              server_cls: type[JamQuicConnection] | None = None) -> tuple[Any, Any]:
    """A real client/server handshake in memory; events drained."""
    client, server = connect_pair(cls, server_cls or cls)
    for conn in (client, server):
        while conn.next_event() is not None:
            pass
        if release and isinstance(conn, SimQuicConnection):
            assert conn.release_tls()
    return client, server


def test_leftover_tls_output_cannot_leak_into_the_next_connection() -> None:
    # As if a TLS alert had interrupted a flight: bytes left in the shared buffers.
    for buffer in _CRYPTO_BUFFERS.buffers.values():
        buffer.push_bytes(b"\x16stale flight")
    client, server = handshake()
    assert retired(client) and retired(server)
    assert client._handshake_confirmed and server._handshake_confirmed


def test_initial_keys_of_other_versions_are_derived_on_demand_and_retired() -> None:
    client = SimQuicConnection(configuration=configuration(0, True))
    client.connect(SERVER_ADDR, now=0.0)
    keys = client._cryptos_initial
    assert QuicProtocolVersion.VERSION_2 not in keys  # not derived up front
    stock = CryptoPair()
    stock.setup_initial(cid=client._peer_cid.cid, is_client=True,
                        version=QuicProtocolVersion.VERSION_2)
    lazy = keys[QuicProtocolVersion.VERSION_2]
    assert (lazy.send.secret, lazy.recv.secret) == (stock.send.secret, stock.recv.secret)
    with pytest.raises(KeyError):
        keys[0x0A0A0A0A]  # unsupported: no entry, as in aioquic's table
    client, _ = handshake()
    for version in (QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2):
        with pytest.raises(KeyUnavailableError):
            client._cryptos_initial[version].decrypt_packet(bytes(64), 20, 0)


def test_shared_stand_ins_refuse_modification() -> None:
    with pytest.raises(RetiredStateError):
        DISCARDED_SPACE.ack_at = 1.0
    with pytest.raises(AttributeError):
        DISCARDED_SPACE.sent_packets.clear()
    with pytest.raises(RetiredStateError):
        RETIRED_CRYPTO_PAIR.send.setup(cipher_suite=tls.CipherSuite.AES_128_GCM_SHA256,
                                       secret=bytes(32), version=1)
    with pytest.raises(RetiredStateError):
        RETIRED_CRYPTO_PAIR.update_key()
    assert not RETIRED_CRYPTO_PAIR.send.is_valid()


def _ticket(trailing: bytes = b"") -> bytes:
    buf = Buffer(capacity=256)
    tls.push_new_session_ticket(buf, tls.NewSessionTicket(
        ticket_lifetime=60, ticket_age_add=7, ticket_nonce=b"n", ticket=b"t" * 16))
    message = buf.data
    if trailing:
        length = int.from_bytes(message[1:4], "big") + len(trailing)
        message = message[:1] + length.to_bytes(3, "big") + message[4:] + trailing
    return message


KEY_UPDATE = bytes([24, 0, 0, 1, 0])
POST_HANDSHAKE_INPUTS = {
    "ticket": [_ticket()],
    "ticket in two pieces": [_ticket()[:7], _ticket()[7:]],
    "two tickets": [_ticket() + _ticket()],
    "partial header": [_ticket()[:3]],
    "ticket with trailing bytes": [_ticket(b"xx")],
    "truncated ticket body": [bytes([4, 0, 0, 3, 0, 0, 0])],
    "key update": [KEY_UPDATE],
    "ticket then key update": [_ticket(), KEY_UPDATE],
}


def _outcome(context: Any, pieces: list[bytes]) -> tuple[str, bytes]:
    try:
        for piece in pieces:
            context.handle_message(piece, {})
    except (tls.Alert, AssertionError) as exc:
        return type(exc).__name__, context._receive_buffer
    return "ok", context._receive_buffer


@pytest.mark.parametrize("name", sorted(POST_HANDSHAKE_INPUTS))
def test_post_handshake_tls_reacts_like_the_real_context(name: str) -> None:
    client, server = handshake(release=False)
    for conn in (client, server):
        stand_in = PostHandshakeTls.replacing(conn.tls)
        assert stand_in is not None
        assert (stand_in.state, stand_in.alpn_negotiated, stand_in.session_resumed,
                stand_in.early_data_accepted) == (
            conn.tls.state, conn.tls.alpn_negotiated, conn.tls.session_resumed,
            conn.tls.early_data_accepted)
        pieces = POST_HANDSHAKE_INPUTS[name]
        assert _outcome(stand_in, pieces) == _outcome(copy.copy(conn.tls), pieces)


def test_tls_is_kept_when_it_could_still_build_session_tickets() -> None:
    client, _ = handshake(release=False)
    client.tls.new_session_ticket_cb = lambda ticket: None
    assert not client.release_tls()
    assert isinstance(client.tls, tls.Context)


def test_small_queues_match_deque_semantics() -> None:
    rng = random.Random(3)
    for maxlen in (None, 0, 1, 5):
        ours: SmallQueue[int] = BoundedQueue(maxlen=maxlen) if maxlen is not None \
            else SmallQueue()
        theirs: deque[int] = deque(maxlen=maxlen)
        for step in range(400):
            op = rng.choice(("append", "append", "popleft", "clear", "check"))
            if op == "append":
                ours.append(step)
                theirs.append(step)
            elif op == "popleft":
                got = [ours.popleft()] if ours else []
                want = [theirs.popleft()] if theirs else []
                assert got == want
                if not theirs:
                    with pytest.raises(IndexError):
                        ours.popleft()
            elif op == "clear":
                ours.clear()
                theirs.clear()
            assert list(ours) == list(theirs) and bool(ours) == bool(theirs)
            assert (step - 1 in ours) == (step - 1 in theirs)
            if theirs:
                assert ours[0] == theirs[0]


@pytest.mark.parametrize("suite", [tls.CipherSuite.AES_128_GCM_SHA256,
                                   tls.CipherSuite.AES_256_GCM_SHA384,
                                   tls.CipherSuite.CHACHA20_POLY1305_SHA256])
def test_key_only_ciphers_protect_packets_bit_identically(suite: tls.CipherSuite) -> None:
    secret = bytes(range(tls.cipher_suite_hash(suite).digest_size))
    stock, slimmed, slim = CryptoContext(), CryptoContext(), KeyOnlyCryptoContext()
    for context in (stock, slimmed, slim):
        context.setup(cipher_suite=suite, secret=secret, version=QuicProtocolVersion.VERSION_1)
    assert slim_context(slimmed) and not slim_context(slimmed) and not slim_context(slim)
    for context in (slimmed, slim):
        assert isinstance(context.aead, KeyOnlyAead)
        assert isinstance(context.hp, KeyOnlyHeaderProtection)
        assert (context.secret, context.cipher_suite, context.version) == (
            stock.secret, stock.cipher_suite, stock.version)
    payload = bytes(range(256)) * 4
    for packet_number in (7, 0x1234):
        # Short header: flags (2-byte packet number), 8-byte connection id, number.
        header = bytes([0x41]) + bytes(range(8)) + packet_number.to_bytes(2, "big")
        sealed = stock.encrypt_packet(header, payload, packet_number)
        assert slim.encrypt_packet(header, payload, packet_number) == sealed
        assert slimmed.encrypt_packet(header, payload, packet_number) == sealed
        for opener in (stock, slimmed, slim):
            assert opener.decrypt_packet(sealed, len(header) - 2, packet_number)[1] == payload
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        for opener in (stock, slimmed, slim):
            with pytest.raises(CryptoError):
                opener.decrypt_packet(tampered, len(header) - 2, packet_number)


@pytest.mark.parametrize("to_client", [True, False])
def test_post_handshake_crypto_data_is_handled_like_stock(to_client: bool) -> None:
    """A NewSessionTicket to a client is accepted, anything to a server closes it."""
    outcomes = []
    for cls in (SimQuicConnection, JamQuicConnection):
        # The end under test is ``cls``; its stock peer can write CRYPTO data.
        client, server = handshake(cls if to_client else JamQuicConnection,
                                   server_cls=JamQuicConnection if to_client else cls)
        sender, receiver = (server, client) if to_client else (client, server)
        if cls is SimQuicConnection:
            assert receiver._crypto_streams[tls.Epoch.ONE_RTT] is UNUSED_CRYPTO_STREAM
        sender._crypto_streams[tls.Epoch.ONE_RTT].sender.write(
            _ticket() if to_client else KEY_UPDATE)
        exchange(client, server, 1.0)
        close = receiver._close_event
        outcomes.append((receiver._state, close and (close.error_code, close.reason_phrase),
                         receiver._crypto_streams[tls.Epoch.ONE_RTT].receiver.highest_offset))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0][1] is None) == to_client and outcomes[0][2] > 0


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    x25519.X25519PrivateKey.generate,
    x448.X448PrivateKey.generate,
])
def test_stashed_key_shares_derive_the_same_secret(make: Callable[[], Any]) -> None:
    key, peer = make(), make()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        stashed_ec = StashedEcKey(key)
        assert stashed_ec.public_key().curve.__class__ is key.curve.__class__
        assert stashed_ec.exchange(ec.ECDH(), peer.public_key()) == \
            key.exchange(ec.ECDH(), peer.public_key())
    else:
        assert StashedRawKey(key).exchange(peer.public_key()) == key.exchange(peer.public_key())


def test_key_shares_are_stashed_only_while_waiting_for_the_server_hello() -> None:
    client = SimQuicConnection(configuration=configuration(0, True))
    client.connect(SERVER_ADDR, now=0.0)
    context: Any = client.tls
    # A JAM client offers one share, X25519 (jamsim/quic/tls_workaround.py).
    assert not context._ec_private_keys and context._x448_private_key is None
    assert isinstance(context._x25519_private_key, StashedRawKey)
    assert not stash_key_shares(context)  # idempotent
    client, _ = handshake(release=False)
    assert client.tls._x25519_private_key is None and not client.tls._ec_private_keys


def test_key_update_still_works_on_key_only_contexts() -> None:
    """aioquic derives the next key phase from the context's secret and suite."""
    outcomes = []
    for cls in (SimQuicConnection, JamQuicConnection):
        client, server = handshake(cls)
        client.request_key_update()
        client.send_ping(1)
        exchange(client, server, 1.0)
        outcomes.append([(conn._state, conn._close_event,
                          conn._cryptos[tls.Epoch.ONE_RTT].key_phase)
                         for conn in (client, server)])
    assert outcomes[0] == outcomes[1]
    assert [phase for _, close, phase in outcomes[0] if close is None] == [1, 1]
