"""Fail loudly if aioquic changes the private internals tls_workaround relies on."""

from __future__ import annotations

import inspect

import pytest
from aioquic import tls
from aioquic.quic.connection import QuicConnection

from jamsim.quic import tls_workaround
from tests.quic.pair import connect_pair

JAM = tls_workaround.JamQuicConnection


def test_tls_context_still_has_private_attributes() -> None:
    src = inspect.getsource(tls.Context.__init__)
    assert "self._request_client_certificate" in src
    assert "self._peer_certificate" in src
    assert "self._supported_groups" in src


def test_connection_id_limit_is_still_an_attribute_sent_in_transport_parameters() -> None:
    assert "self._local_active_connection_id_limit = " in inspect.getsource(
        QuicConnection.__init__)
    assert "self._local_active_connection_id_limit" in inspect.getsource(
        QuicConnection._serialize_transport_parameters)


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


# ---------------------------------------------------------------- key shares

def test_jam_client_offers_one_x25519_share_and_the_handshake_uses_it() -> None:
    client, server = connect_pair(JAM, JAM)
    assert client.tls._supported_groups == [tls.Group.X25519]
    assert not client.tls._ec_private_keys and client.tls._x448_private_key is None
    assert client.tls.state is tls.State.CLIENT_POST_HANDSHAKE
    assert server.tls.state is tls.State.SERVER_POST_HANDSHAKE
    # The server answered with an X25519 share of its own, no EC key.
    assert server.tls._x25519_private_key is not None and not server.tls._ec_private_keys


def test_jam_server_still_accepts_a_client_offering_every_group() -> None:
    """Servers keep aioquic's groups: a stock client (P-256 first) still connects."""
    client, server = connect_pair(QuicConnection, JAM)
    assert len(client.tls._supported_groups) >= 2
    assert server.tls.state is tls.State.SERVER_POST_HANDSHAKE
    assert len(server.tls._ec_private_keys) == 1  # the server took P-256, listed first


def test_offer_x25519_only_requires_the_groups_list() -> None:
    class Bare:
        tls = object()

    with pytest.raises(tls_workaround.AioquicIncompatible):
        tls_workaround.offer_x25519_only(Bare())  # type: ignore[arg-type]


def test_jam_ends_advertise_two_connection_ids_and_each_peer_issues_two() -> None:
    client, server = connect_pair(JAM, JAM)
    for conn in (client, server):
        assert conn._remote_active_connection_id_limit == 2
        assert len(conn._host_cids) == 2  # the one in use and one spare
    # A stock client still gets its default from a JAM server.
    stock, _ = connect_pair(QuicConnection, JAM)
    assert stock._local_active_connection_id_limit == 8
