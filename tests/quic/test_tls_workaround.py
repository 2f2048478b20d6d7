"""Fail loudly if aioquic changes the private internals tls_workaround relies on."""

from __future__ import annotations

import inspect

from aioquic import tls
from aioquic.quic.connection import QuicConnection

from jamsim.quic import tls_workaround


def test_tls_context_still_has_private_attributes() -> None:
    src = inspect.getsource(tls.Context.__init__)
    assert "self._request_client_certificate" in src
    assert "self._peer_certificate" in src


def test_connection_still_initialises_tls_in_initialize() -> None:
    assert hasattr(QuicConnection, "_initialize")
    assert "self.tls = tls.Context(" in inspect.getsource(QuicConnection._initialize)
    assert "_is_client" in inspect.getsource(QuicConnection.__init__)


def test_peer_certificate_requires_tls_context() -> None:
    class Bare:
        tls = object()

    try:
        tls_workaround.peer_certificate(Bare())  # type: ignore[arg-type]
    except tls_workaround.AioquicIncompatible:
        pass
    else:
        raise AssertionError("missing _peer_certificate must raise AioquicIncompatible")
