"""Mutual-TLS handshakes between two in-memory aioquic connections (no sockets).

Each failure mode JAMNP-S cares about is produced with a real certificate and a real
TLS handshake, then checked by the same PeerVerifier the simulator and node use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aioquic.quic import events
from aioquic.quic.connection import QuicConnection
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from jamsim.identity import ValidatorIdentity, alpn_for_genesis, alt_name
from jamsim.quic.certificates import NodeCertificate, build_certificate, certificate_for
from jamsim.quic.config import make_configuration
from jamsim.quic.tls_workaround import JamQuicConnection, peer_certificate
from jamsim.quic.verify import PeerVerificationError, PeerVerifier, RejectReason

GENESIS = bytes(range(32))
ADDR_C = ("127.0.0.1", 1001)
ADDR_S = ("127.0.0.1", 1002)


@dataclass
class Outcome:
    client: QuicConnection
    server: QuicConnection
    client_alpn: str | None
    server_alpn: str | None
    server_closed: events.ConnectionTerminated | None
    client_closed: events.ConnectionTerminated | None


def _pump(
    client: QuicConnection, server: QuicConnection, now: float, *, settle: bool = False
) -> Outcome:
    client.connect(ADDR_S, now=now)
    client_alpn = server_alpn = None
    closed: events.ConnectionTerminated | None = None
    client_closed: events.ConnectionTerminated | None = None
    for _ in range(60):
        moved = False
        for data, _addr in client.datagrams_to_send(now=now):
            server.receive_datagram(data, ADDR_C, now=now)
            moved = True
        for data, _addr in server.datagrams_to_send(now=now):
            client.receive_datagram(data, ADDR_S, now=now)
            moved = True
        for conn, is_server in ((client, False), (server, True)):
            while (ev := conn.next_event()) is not None:
                if isinstance(ev, events.HandshakeCompleted):
                    if is_server:
                        server_alpn = ev.alpn_protocol
                    else:
                        client_alpn = ev.alpn_protocol
                elif isinstance(ev, events.ConnectionTerminated):
                    if is_server:
                        closed = ev
                    else:
                        client_closed = ev
        if not moved:
            if not settle:
                break
            # Let closing connections finish draining (virtual time: jump to timers).
            timers = [t for t in (client.get_timer(), server.get_timer()) if t is not None]
            if not timers or (closed is not None and client_closed is not None):
                break
            now = max(now, min(timers))
            for conn in (client, server):
                timer = conn.get_timer()
                if timer is not None and timer <= now:
                    conn.handle_timer(now=now)
            continue
        now += 0.001
    return Outcome(client, server, client_alpn, server_alpn, closed, client_closed)


def _handshake(
    client_cert: NodeCertificate | None,
    server_cert: NodeCertificate,
    *,
    client_alpns: list[str] | None = None,
    server_alpns: list[str] | None = None,
    settle: bool = False,
) -> Outcome:
    if client_cert is None:
        cconf = make_configuration(server_cert, GENESIS, is_client=True, idle_timeout=10)
        cconf.certificate = None
        cconf.private_key = None
    else:
        cconf = make_configuration(
            client_cert, GENESIS, is_client=True, idle_timeout=10, alpn_protocols=client_alpns
        )
    sconf = make_configuration(
        server_cert, GENESIS, is_client=False, idle_timeout=10, alpn_protocols=server_alpns
    )
    client = JamQuicConnection(configuration=cconf)
    server = JamQuicConnection(
        configuration=sconf,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    return _pump(client, server, now=100.0, settle=settle)


ALICE = ValidatorIdentity.generate_dev(1, 0)
BOB = ValidatorIdentity.generate_dev(1, 1)
MALLORY = ValidatorIdentity.generate_dev(2, 0)


def _verifier(*keys: bytes) -> PeerVerifier:
    return PeerVerifier(GENESIS, frozenset(keys))


def _server_check(out: Outcome, verifier: PeerVerifier) -> bytes:
    return verifier.verify(peer_certificate(out.server), out.server_alpn)


def test_mutual_tls_success_both_sides_learn_the_key() -> None:
    out = _handshake(certificate_for(ALICE), certificate_for(BOB))
    assert out.server_alpn == out.client_alpn == alpn_for_genesis(GENESIS)
    assert _server_check(out, _verifier(ALICE.public_key)) == ALICE.public_key
    client_key = _verifier(BOB.public_key).verify(peer_certificate(out.client), out.client_alpn)
    assert client_key == BOB.public_key


def test_certificate_is_cached_and_carries_alt_name() -> None:
    cert = certificate_for(ALICE)
    assert certificate_for(ALICE) is cert
    assert cert.public_key == ALICE.public_key
    assert cert.certificate.public_key().public_bytes_raw() == ALICE.public_key  # type: ignore[union-attr]


def _expect(reason: RejectReason, fn: object) -> None:
    assert callable(fn)
    with pytest.raises(PeerVerificationError) as info:
        fn()
    assert info.value.reason is reason
    assert info.value.error_code == int(reason)


def test_no_client_certificate_rejected() -> None:
    out = _handshake(None, certificate_for(BOB))
    assert out.server_alpn is not None, "aioquic lets the handshake finish without a cert"
    assert peer_certificate(out.server) is None
    _expect(RejectReason.NO_CERTIFICATE, lambda: _server_check(out, _verifier(ALICE.public_key)))


def test_wrong_san_rejected() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(ALICE.seed)
    wrong = build_certificate(key, (alt_name(BOB.public_key),))
    out = _handshake(NodeCertificate(wrong, key, ALICE.public_key), certificate_for(BOB))
    _expect(RejectReason.BAD_SAN, lambda: _server_check(out, _verifier(ALICE.public_key)))


def test_two_sans_rejected() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(ALICE.seed)
    two = build_certificate(key, (alt_name(ALICE.public_key), "example.org"))
    out = _handshake(NodeCertificate(two, key, ALICE.public_key), certificate_for(BOB))
    _expect(RejectReason.BAD_SAN, lambda: _server_check(out, _verifier(ALICE.public_key)))


def test_unknown_key_rejected_unless_non_validators_allowed() -> None:
    out = _handshake(certificate_for(MALLORY), certificate_for(BOB))
    _expect(RejectReason.UNKNOWN_KEY, lambda: _server_check(out, _verifier(ALICE.public_key)))
    open_verifier = PeerVerifier(GENESIS, frozenset({ALICE.public_key}), allow_non_validators=True)
    assert _server_check(out, open_verifier) == MALLORY.public_key


def test_non_ed25519_key_rejected() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cert = build_certificate(ec_key, ("eabc",))
    bogus = NodeCertificate(cert, ec_key, b"")  # type: ignore[arg-type]
    out = _handshake(bogus, certificate_for(BOB))
    assert out.server_alpn is not None
    _expect(RejectReason.NOT_ED25519, lambda: _server_check(out, _verifier(ALICE.public_key)))


def test_other_chain_alpn_fails_tls_handshake() -> None:
    other = alpn_for_genesis(b"\xff" * 32)
    out = _handshake(
        certificate_for(ALICE), certificate_for(BOB), client_alpns=[other], settle=True
    )
    assert out.server_alpn is None
    # The server aborts with TLS alert no_application_protocol (0x100 + 120).
    assert out.client_closed is not None
    assert out.client_closed.error_code == 0x178


def test_builder_alpn_is_always_permitted_by_the_acceptor() -> None:
    """JAMNP-S: the acceptor permits the ``/builder`` suffix whoever dials with it."""
    builder = alpn_for_genesis(GENESIS, builder=True)
    out = _handshake(certificate_for(ALICE), certificate_for(BOB), client_alpns=[builder])
    assert out.server_alpn == builder
    assert _server_check(out, _verifier(ALICE.public_key)) == ALICE.public_key
