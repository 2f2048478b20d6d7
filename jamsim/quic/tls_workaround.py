"""The ONLY module that touches aioquic private attributes.

aioquic (bounded >=1.2,<1.8 in pyproject) has no public API to (a) make a server
request a client certificate, (b) read the peer certificate after the handshake,
(c) choose the key shares a client offers, (d) lower the connection-id limit
it advertises or (e) read an RTT sample. All five exist as private attributes:

* ``Context._request_client_certificate`` (server: send CertificateRequest);
* ``Context._peer_certificate`` (the parsed peer leaf certificate);
* ``Context._supported_groups`` (client: one key share per listed group);
* ``QuicConnection._local_active_connection_id_limit`` (how many connection ids
  the peer may issue us; see :data:`ACTIVE_CONNECTION_ID_LIMIT`);
* ``QuicConnection._loss._rtt_latest`` (read-only: how long a dial's first answer
  took, for the adaptive dial limit; :func:`latest_rtt_sample`).

(c) is about cost, not correctness: aioquic's client offers a key share for each
of P-256, P-384, X25519 and X448, generating four ephemeral key pairs per dial
(P-384 alone costs more than the rest together), and its server takes the first,
P-256. rustls, which the Rust JAM nodes' QUIC stacks use, offers a single X25519
share. JAM clients here do the same: ``supported_groups`` is X25519, which every
TLS 1.3 stack supports (RFC 8446, 9.1); servers keep accepting every group.
In the simulator's ``quic`` fidelity, where all handshakes of a 100-validator
mesh run in one process, this was 12% of the CPU time (py-spy).

A server's TLS context only exists once ``QuicConnection._initialize`` runs on the
first Initial datagram, so :class:`JamQuicConnection` overrides that hook to set the
flag before any TLS message is processed. tests/quic/test_tls_workaround.py fails
loudly if a future aioquic renames any of these.
"""

from __future__ import annotations

from typing import Any

from aioquic import tls
from aioquic.quic.connection import QuicConnection
from cryptography import x509


class AioquicIncompatible(RuntimeError):
    """The installed aioquic lacks an internal this workaround relies on."""


ACTIVE_CONNECTION_ID_LIMIT = 2
"""The ``active_connection_id_limit`` transport parameter JAM nodes send.

JAMNP-S connections never migrate (validators publish fixed addresses), so a peer
needs no spare connection ids beyond RFC 9000's minimum of 2. aioquic's default of
8 (``QuicConnection._local_active_connection_id_limit``) made each end build,
send, parse and keep seven NEW_CONNECTION_ID frames' worth of ids per
connection: measured in the simulator's ``quic`` fidelity at V=100, 3% of the
time and 5.4 of the 54 KB per connection pair."""


class JamQuicConnection(QuicConnection):
    """QuicConnection whose server side requests (and thus receives) a client cert."""

    def _initialize(self, peer_cid: bytes) -> None:
        # Before super(): the limit goes out in our transport parameters.
        self._local_active_connection_id_limit = ACTIVE_CONNECTION_ID_LIMIT
        super()._initialize(peer_cid)
        if self._is_client:
            offer_x25519_only(self)
        else:
            request_client_certificate(self)


def request_client_certificate(conn: QuicConnection) -> None:
    """Make the server TLS context send a CertificateRequest (mutual TLS)."""
    tls_ctx: Any = getattr(conn, "tls", None)
    if tls_ctx is None or not hasattr(tls_ctx, "_request_client_certificate"):
        raise AioquicIncompatible("aioquic tls.Context has no _request_client_certificate")
    tls_ctx._request_client_certificate = True


def offer_x25519_only(conn: QuicConnection) -> None:
    """Make a client TLS context offer one key share, X25519 (see the module notes)."""
    tls_ctx: Any = getattr(conn, "tls", None)
    if tls_ctx is None or not isinstance(getattr(tls_ctx, "_supported_groups", None), list):
        raise AioquicIncompatible("aioquic tls.Context has no _supported_groups list")
    tls_ctx._supported_groups = [tls.Group.X25519]


def peer_certificate(conn: QuicConnection) -> x509.Certificate | None:
    """The peer's leaf certificate after HandshakeCompleted (None if it sent none)."""
    tls_ctx: Any = getattr(conn, "tls", None)
    if tls_ctx is None or not hasattr(tls_ctx, "_peer_certificate"):
        raise AioquicIncompatible("aioquic tls.Context has no _peer_certificate")
    cert = tls_ctx._peer_certificate
    if cert is not None and not isinstance(cert, x509.Certificate):
        raise AioquicIncompatible(f"unexpected peer certificate type {type(cert)!r}")
    return cert


def latest_rtt_sample(conn: QuicConnection) -> float | None:
    """aioquic's latest RTT sample (``QuicPacketRecovery._rtt_latest``), None before
    the first. Read when a dial's handshake completes it is the peer's first
    answer: sent-to-acknowledged time of the packet it acknowledged, so probe
    retransmissions do not inflate it, and a peer's queueing delay does."""
    loss: Any = getattr(conn, "_loss", None)
    if loss is None or not hasattr(loss, "_rtt_latest") or not hasattr(loss, "_rtt_initialized"):
        raise AioquicIncompatible("aioquic QuicConnection has no _loss._rtt_latest")
    return float(loss._rtt_latest) if loss._rtt_initialized else None
