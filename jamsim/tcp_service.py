"""TcpService: the lifecycle shared by jamsim's small asyncio TCP servers.

Why: the node's control server (:mod:`jamsim.net.control`) and the harness's
telemetry collector (:mod:`jamsim.telemetry.collector`) both serve clients that
come and go, and both must stop the same careful way: close the listening
socket, close every client's transport so each handler's read loop ends
normally (cancelling handler tasks instead makes asyncio log the cancellation
at loop close), then wait until the handlers have finished. This class keeps
that bookkeeping in one place; a subclass says only how it talks to one client
(:meth:`_handle`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

__all__ = ["TcpService"]


class TcpService:
    """An asyncio TCP server on ``host:port`` (0: any free port) that tracks its clients.

    ``stop_timeout`` bounds the wait for client handlers to finish at :meth:`stop`
    (``None``: wait as long as they take); ``limit`` is the stream reader's buffer
    limit (``None``: asyncio's default).
    """

    def __init__(self, host: str, port: int, *, stop_timeout: float | None = None,
                 limit: int | None = None) -> None:
        self._host = host
        self._port = port
        self._stop_timeout = stop_timeout
        self._limit = limit
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        if self._limit is None:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        else:
            self._server = await asyncio.start_server(
                self._serve, self._host, self._port, limit=self._limit)

    @property
    def bound(self) -> tuple[str, int]:
        """The (host, port) the server listens on (the port it got, for port 0)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._stop_timeout is None:
            await self._idle.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._stop_timeout)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._idle.clear()
        try:
            await self._handle(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._writers.discard(writer)
            if not self._writers:
                self._idle.set()
            await self._closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Talk to one client until it leaves; the transport is closed afterwards."""
        raise NotImplementedError

    async def _closed(self) -> None:
        """A client's transport is closed and forgotten (a hook; nothing by default)."""
