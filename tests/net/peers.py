"""Peers jamsim did not write: a raw aioquic client that sends whatever a test says.

:class:`RawPeer` speaks QUIC + TLS correctly but nothing of JAMNP-S on its own:
a test opens streams, writes arbitrary bytes, FINs and resets them in any order,
and reads back every event the node caused (stream data, resets, the close).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509

from jamsim.identity import ValidatorIdentity, alpn_for_genesis
from jamsim.quic.certificates import certificate_for

GENESIS = bytes(32)


class RawPeer(QuicConnectionProtocol):
    """An aioquic client protocol that records events and writes raw stream bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[events.QuicEvent] = []
        self.received: dict[int, bytearray] = {}
        self.changed = asyncio.Event()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        self.events.append(event)
        self.changed.set()
        if isinstance(event, events.StreamDataReceived):
            self.received.setdefault(event.stream_id, bytearray()).extend(event.data)

    def new_stream(self) -> int:
        """Create the next bidirectional stream (nothing is sent until data is)."""
        sid = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(sid, b"")
        return sid

    def send(self, sid: int, data: bytes, end: bool = False) -> None:
        self._quic.send_stream_data(sid, data, end_stream=end)
        self.transmit()

    def reset(self, sid: int, code: int = 0) -> None:
        self._quic.reset_stream(sid, code)
        self.transmit()

    async def wait_for(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (bounded) until ``cond()`` holds, re-checked on every event received."""
        async with asyncio.timeout(timeout):
            while not cond():
                self.changed.clear()
                await self.changed.wait()

    def resets(self) -> set[int]:
        """Streams the node reset (RESET_STREAM) or asked us to stop (STOP_SENDING)."""
        kinds = events.StreamReset | events.StopSendingReceived
        return {e.stream_id for e in self.events if isinstance(e, kinds)}

    def close_event(self) -> events.ConnectionTerminated | None:
        for event in self.events:
            if isinstance(event, events.ConnectionTerminated):
                return event
        return None


def client_config(
    certificate: x509.Certificate | None = None,
    private_key: Any = None,
    *,
    identity: ValidatorIdentity | None = None,
    builder: bool = False,
    genesis: bytes = GENESIS,
) -> QuicConfiguration:
    """A client configuration presenting ``identity``'s certificate or the one given."""
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=[alpn_for_genesis(genesis, builder=builder)],
        verify_mode=ssl.CERT_NONE,
        idle_timeout=10.0,
    )
    if identity is not None:
        cert = certificate_for(identity)
        certificate, private_key = cert.certificate, cert.private_key
    config.certificate = certificate
    config.private_key = private_key
    return config


@asynccontextmanager
async def raw_peer(port: int, config: QuicConfiguration) -> AsyncIterator[RawPeer]:
    """Connect a :class:`RawPeer` to the node on 127.0.0.1:``port``."""
    async with connect(
        "127.0.0.1", port, configuration=config, create_protocol=RawPeer,
        wait_connected=True,
    ) as client:
        assert isinstance(client, RawPeer)
        yield client


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``cond`` every 10 ms, failing the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)
