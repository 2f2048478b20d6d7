"""JIP-3 telemetry over TCP: the collector (server) and the node-side client.

:class:`TelemetryCollector` is what a testnet run points every node's
``--telemetry HOST:PORT`` at. It accepts many connections, decodes each with a
:class:`~jamsim.telemetry.jip3.Jip3Session` and keeps the rows as
:class:`~jamsim.telemetry.records.EventRecord` (optionally handing each to a
callback, e.g. an ``EventTableWriter``). One misbehaving client (garbage, a
message over the size limit, a truncated stream) gets its connection closed and
the reason logged; it never affects the others or the server.

:class:`TelemetryClient` is the node side. ``emit`` never blocks and never
raises because of the network: events go into a bounded queue that a background
task drains; if the server is unreachable or the queue is full, events are
dropped and counted (and the wire ids are realigned with a JIP-3 "dropped"
event once the connection is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping

from jamsim.core.actions import EmitTelemetry
from jamsim.core.types import TelemetryKind
from jamsim.protocol.errors import PeerProtocolError, ProtocolUsageError
from jamsim.protocol.framing import MessageDecoder, encode_message
from jamsim.tcp_service import TcpService
from jamsim.telemetry.jip3 import (
    Jip3Encoder,
    Jip3Event,
    Jip3Session,
    NodeInfo,
    Status,
    encode_event,
    event_from_action,
    timestamp_from_unix,
)
from jamsim.telemetry.records import EventRecord

__all__ = ["ClientRejection", "TelemetryClient", "TelemetryCollector"]

log = logging.getLogger(__name__)

DEFAULT_MAX_TELEMETRY_MESSAGE = 1 << 20
"""1 MiB: the largest JIP-3 message (node info, status with 341 cores) is far smaller."""


class ClientRejection:
    """Why the collector closed one client connection."""

    __slots__ = ("peer", "reason", "records")

    def __init__(self, peer: str, reason: str, records: int) -> None:
        self.peer = peer
        self.reason = reason
        self.records = records

    def __repr__(self) -> str:
        return f"ClientRejection({self.peer!r}, {self.reason!r}, records={self.records})"


class TelemetryCollector(TcpService):
    """Asyncio TCP server collecting JIP-3 telemetry from many nodes.

    ``key_to_index`` maps Ed25519 keys to validator indices for the ``node`` and
    ``peer`` columns; ``run_start_unix`` is the wall-clock instant that becomes
    ``time == 0`` in the rows.
    """

    def __init__(
        self,
        key_to_index: Mapping[bytes, int],
        run_start_unix: float,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_message_size: int = DEFAULT_MAX_TELEMETRY_MESSAGE,
        on_record: Callable[[EventRecord], None] | None = None,
    ) -> None:
        super().__init__(host, port)
        self._keys = dict(key_to_index)
        self._start = timestamp_from_unix(run_start_unix)
        self._max = max_message_size
        self._on_record = on_record
        self._records: list[EventRecord] = []
        self.rejections: list[ClientRejection] = []
        self.node_infos: dict[bytes, NodeInfo] = {}
        self._changed = asyncio.Condition()
        self.connections_total = 0

    @property
    def port(self) -> int:
        return self.bound[1]

    @property
    def address(self) -> tuple[str, int]:
        return self._host, self.port

    @property
    def records(self) -> list[EventRecord]:
        """Rows collected and not yet taken (a copy, in arrival order)."""
        return list(self._records)

    def take(self) -> list[EventRecord]:
        """Rows collected since the last ``take``, in arrival order, forgotten here.

        A harness that streams rows to disk takes them at every sample, so the
        collector's memory stays bounded however long the run is."""
        rows, self._records = self._records, []
        return rows

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (bounded) until ``condition()`` holds; re-checked on every change."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(condition), timeout)
            except TimeoutError:
                return False
        return True

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        peer = str(writer.get_extra_info("peername"))
        session = Jip3Session(self._keys, self._start)
        decoder = MessageDecoder(self._max)
        count = 0
        reason = "closed by client"
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    decoder.end_of_stream()
                    break
                for content in decoder.feed(data):
                    row = session.handle(content)
                    if row is None:
                        assert session.node_info is not None
                        self.node_infos[session.node_info.peer_id] = session.node_info
                    else:
                        self._records.append(row)
                        count += 1
                        if self._on_record is not None:
                            self._on_record(row)
                decoder.check()
                await self._notify()
        except PeerProtocolError as exc:
            reason = exc.reason
            log.warning("telemetry client %s closed: %s", peer, reason)
            self.rejections.append(ClientRejection(peer, reason, count))
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection error: {exc}"
            log.info("telemetry client %s: %s", peer, reason)

    async def _closed(self) -> None:
        await self._notify()


class TelemetryClient:
    """Node-side JIP-3 sender that never blocks the node.

    Call :meth:`start` inside the node's event loop, then :meth:`emit` /
    :meth:`emit_action` from anywhere in that loop. ``dropped`` counts events
    that never reached the socket (queue full, server unreachable, write failed).
    """

    def __init__(
        self,
        host: str,
        port: int,
        node_info: NodeInfo,
        *,
        max_queue: int = 10_000,
        reconnect_interval: float | None = 2.0,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.node_info = node_info
        self.max_queue = max_queue
        self.reconnect_interval = reconnect_interval
        self.connect_timeout = connect_timeout
        self._clock = clock
        self._queue: deque[tuple[bytes, int, int, int]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_id = 0
        self._closing = False
        self.connected = False
        self.dropped = 0
        self.sent = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def emit(self, event: Jip3Event, event_id: int | None = None) -> None:
        """Queue ``event``; ``event_id`` defaults to the next id after the last one."""
        if event_id is None:
            event_id = self._next_id
        self._next_id = max(self._next_id, event_id + event.id_span)
        if len(self._queue) >= self.max_queue or self._closing:
            self.dropped += 1
            return
        try:  # encode now: a bad event is our bug, reported here, not in the sender task
            content = encode_event(event, self.node_info.params.core_count)
        except ProtocolUsageError as exc:
            log.error("telemetry event %s not encodable, dropped: %s", event.kind, exc)
            self.dropped += 1
            return
        self._queue.append((content, event_id, event.id_span, event.timestamp))
        self._wake.set()

    def emit_action(self, action: EmitTelemetry, unix_time: float | None = None) -> None:
        """Queue the JIP-3 event for a manager :class:`EmitTelemetry` action."""
        now = self._clock() if unix_time is None else unix_time
        self.emit(event_from_action(action, timestamp_from_unix(now)), action.event_id)

    def emit_status(
        self, status: Status, event_id: int | None = None, unix_time: float | None = None
    ) -> None:
        """Queue a JIP-3 status event (10) with the node-side ``event_id``."""
        now = self._clock() if unix_time is None else unix_time
        event = Jip3Event(timestamp_from_unix(now), int(TelemetryKind.STATUS), status=status)
        self.emit(event, event_id)

    async def flush(self, timeout: float) -> bool:
        """Wait (bounded) until the queue is empty; True if it emptied."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def close(self, timeout: float = 1.0) -> None:
        """Try to deliver what is queued within ``timeout``, then stop."""
        if self.connected:
            await self.flush(timeout)
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.dropped += len(self._queue)
        self._queue.clear()

    async def _run(self) -> None:
        while not self._closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout
                )
            except (OSError, TimeoutError) as exc:
                log.debug("telemetry connect to %s:%s failed: %s", self.host, self.port, exc)
                self._drop_queued()
                if self.reconnect_interval is None:
                    return
                await asyncio.sleep(self.reconnect_interval)
                continue
            try:
                await self._pump(writer)
            except OSError as exc:
                log.info("telemetry connection lost: %s", exc)
            finally:
                self.connected = False
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                del reader
            self._drop_queued()
            if self.reconnect_interval is None:
                return
            await asyncio.sleep(self.reconnect_interval)

    def _drop_queued(self) -> None:
        self.dropped += len(self._queue)
        self._queue.clear()

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        encoder = Jip3Encoder(self.node_info.params.core_count)
        writer.write(encode_message(self.node_info.encode()))
        await writer.drain()
        self.connected = True
        while not self._closing:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[bytes] = []
            n = 0
            while self._queue and n < 512:
                content, event_id, span, timestamp = self._queue.popleft()
                for part in encoder.sequence(content, span, timestamp, event_id):
                    batch.append(encode_message(part))
                n += 1
            try:
                writer.write(b"".join(batch))
                await writer.drain()
            except OSError:
                self.dropped += n
                raise
            self.sent += n
