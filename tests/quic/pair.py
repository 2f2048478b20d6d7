"""One real client/server QUIC pair in memory, datagrams passed by hand.

Shared by the aioquic-internals tests (tests/quic/test_tls_workaround.py) and the
simulator's memory-trim tests (tests/sim/quic/test_memory_trims.py).
"""

from __future__ import annotations

from typing import Any

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header

from jamsim.identity import ValidatorIdentity
from jamsim.quic.certificates import certificate_for
from jamsim.quic.config import make_configuration

GENESIS = bytes(32)
CLIENT_ADDR, SERVER_ADDR = ("10.0.0.1", 1), ("10.0.0.2", 1)


def configuration(index: int, is_client: bool) -> Any:
    """A JAM configuration for dev validator ``index`` (0: client, 1: server)."""
    cert = certificate_for(ValidatorIdentity.generate_dev("quic-pair", index))
    return make_configuration(cert, GENESIS, is_client=is_client, idle_timeout=15.0)


def exchange(client: Any, server: Any, now: float, to_server: list[Any] | None = None) -> float:
    """Deliver datagrams both ways, 50 ms each way, until both ends are quiet."""
    if to_server is None:
        to_server = client.datagrams_to_send(now=now)
    # A server that has not heard from its client yet has no path to send on.
    to_client = server.datagrams_to_send(now=now) if server._network_paths else []
    while to_server or to_client:
        now += 0.05
        for data, _ in to_server:
            server.receive_datagram(data, CLIENT_ADDR, now=now)
        for data, _ in to_client:
            client.receive_datagram(data, SERVER_ADDR, now=now)
        to_client = server.datagrams_to_send(now=now)
        to_server = client.datagrams_to_send(now=now)
    return now


def connect_pair(client_cls: type[QuicConnection],
                 server_cls: type[QuicConnection]) -> tuple[Any, Any]:
    """A client of ``client_cls`` handshaken with a server of ``server_cls``."""
    client = client_cls(configuration=configuration(0, True))
    client.connect(SERVER_ADDR, now=0.0)
    to_server = client.datagrams_to_send(now=0.0)
    header = pull_quic_header(Buffer(data=to_server[0][0]), host_cid_length=8)
    server = server_cls(configuration=configuration(1, False),
                        original_destination_connection_id=header.destination_cid)
    exchange(client, server, 0.0, to_server)
    return client, server
