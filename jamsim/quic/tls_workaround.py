"""The ONLY module that touches aioquic private attributes.

aioquic (bounded >=1.2,<1.8 in pyproject) has no public API to (a) make a server
request a client certificate or (b) read the peer certificate after the handshake.
Both exist as private attributes of ``aioquic.tls.Context``:

* ``Context._request_client_certificate`` (server: send CertificateRequest);
* ``Context._peer_certificate`` (the parsed peer leaf certificate).

A server's TLS context only exists once ``QuicConnection._initialize`` runs on the
first Initial datagram, so :class:`JamQuicConnection` overrides that hook to set the
flag before any TLS message is processed. tests/quic/test_tls_workaround.py fails
loudly if a future aioquic renames any of these.
"""

from __future__ import annotations

from typing import Any

from aioquic.quic.connection import QuicConnection
from cryptography import x509


class AioquicIncompatible(RuntimeError):
    """The installed aioquic lacks an internal this workaround relies on."""


class JamQuicConnection(QuicConnection):
    """QuicConnection whose server side requests (and thus receives) a client cert."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if not self._is_client:
            request_client_certificate(self)


def request_client_certificate(conn: QuicConnection) -> None:
    """Make the server TLS context send a CertificateRequest (mutual TLS)."""
    tls_ctx: Any = getattr(conn, "tls", None)
    if tls_ctx is None or not hasattr(tls_ctx, "_request_client_certificate"):
        raise AioquicIncompatible("aioquic tls.Context has no _request_client_certificate")
    tls_ctx._request_client_certificate = True


def peer_certificate(conn: QuicConnection) -> x509.Certificate | None:
    """The peer's leaf certificate after HandshakeCompleted (None if it sent none)."""
    tls_ctx: Any = getattr(conn, "tls", None)
    if tls_ctx is None or not hasattr(tls_ctx, "_peer_certificate"):
        raise AioquicIncompatible("aioquic tls.Context has no _peer_certificate")
    cert = tls_ctx._peer_certificate
    if cert is not None and not isinstance(cert, x509.Certificate):
        raise AioquicIncompatible(f"unexpected peer certificate type {type(cert)!r}")
    return cert
