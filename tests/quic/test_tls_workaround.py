"""Fail loudly if aioquic changes the private internals tls_workaround relies on."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from aioquic import tls
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header

from jamsim.identity import ValidatorIdentity
from jamsim.quic import tls_workaround
from jamsim.quic.certificates import certificate_for
from jamsim.quic.config import make_configuration


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

GENESIS = bytes(32)
CLIENT_ADDR, SERVER_ADDR = ("10.0.0.1", 40000), ("10.0.0.2", 40000)


def _config(index: int, is_client: bool) -> Any:
    cert = certificate_for(ValidatorIdentity.generate_dev("key-share-test", index))
    return make_configuration(cert, GENESIS, is_client=is_client, idle_timeout=15.0)


def _handshake(client_cls: type[QuicConnection]) -> tuple[Any, Any]:
    """A client of ``client_cls`` against a JAM server, datagrams passed in memory."""
    client = client_cls(configuration=_config(0, True))
    client.connect(SERVER_ADDR, now=0.0)
    to_server = client.datagrams_to_send(now=0.0)
    header = pull_quic_header(Buffer(data=to_server[0][0]), host_cid_length=8)
    server = tls_workaround.JamQuicConnection(
        configuration=_config(1, False), original_destination_connection_id=header.destination_cid)
    now = 0.0
    to_client: list[tuple[bytes, Any]] = []
    while to_server or to_client:
        now += 0.05
        for data, _ in to_server:
            server.receive_datagram(data, CLIENT_ADDR, now=now)
        for data, _ in to_client:
            client.receive_datagram(data, SERVER_ADDR, now=now)
        to_client = server.datagrams_to_send(now=now)
        to_server = client.datagrams_to_send(now=now)
    return client, server


def test_jam_client_offers_one_x25519_share_and_the_handshake_uses_it() -> None:
    client, server = _handshake(tls_workaround.JamQuicConnection)
    assert client.tls._supported_groups == [tls.Group.X25519]
    assert not client.tls._ec_private_keys and client.tls._x448_private_key is None
    assert client.tls.state is tls.State.CLIENT_POST_HANDSHAKE
    assert server.tls.state is tls.State.SERVER_POST_HANDSHAKE
    # The server answered with an X25519 share of its own, no EC key.
    assert server.tls._x25519_private_key is not None and not server.tls._ec_private_keys


def test_jam_server_still_accepts_a_client_offering_every_group() -> None:
    """Servers keep aioquic's groups: a stock client (P-256 first) still connects."""
    client, server = _handshake(QuicConnection)
    assert len(client.tls._supported_groups) >= 2
    assert server.tls.state is tls.State.SERVER_POST_HANDSHAKE
    assert len(server.tls._ec_private_keys) == 1  # the server took P-256, listed first


def test_offer_x25519_only_requires_the_groups_list() -> None:
    class Bare:
        tls = object()

    with pytest.raises(tls_workaround.AioquicIncompatible):
        tls_workaround.offer_x25519_only(Bare())  # type: ignore[arg-type]


def test_jam_ends_advertise_two_connection_ids_and_each_peer_issues_two() -> None:
    client, server = _handshake(tls_workaround.JamQuicConnection)
    for conn in (client, server):
        assert conn._remote_active_connection_id_limit == 2
        assert len(conn._host_cids) == 2  # the one in use and one spare
    # A stock client still gets its default from a JAM server.
    stock, _ = _handshake(QuicConnection)
    assert stock._local_active_connection_id_limit == 8
