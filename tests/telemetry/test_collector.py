"""Collector over real loopback TCP: good clients arrive, a garbage client is cut off."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

from jamsim.core.actions import EmitTelemetry
from jamsim.core.types import Direction, Side, TelemetryKind
from jamsim.identity import PeerAddress
from jamsim.protocol.framing import encode_message
from jamsim.telemetry.collector import TelemetryClient, TelemetryCollector
from jamsim.telemetry.jip3 import (
    JAM_COMMON_ERA_UNIX,
    Jip3Event,
    NodeInfo,
    encode_event,
)
from jamsim.telemetry.records import EventRecord

KEYS = [bytes([i]) * 32 for i in range(3)]
INDEX = {k: i for i, k in enumerate(KEYS)}
ADDR = PeerAddress("127.0.0.1", 9000)
START = JAM_COMMON_ERA_UNIX + 1000.0


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a scenario with a hard bound so a hang fails instead of stalling the suite."""
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_two_clients_one_sending_garbage() -> None:
    async def scenario() -> tuple[list[EventRecord], TelemetryCollector, TelemetryClient]:
        seen: list[EventRecord] = []
        async with TelemetryCollector(INDEX, START, on_record=seen.append) as collector:
            good = TelemetryClient(
                "127.0.0.1", collector.port, NodeInfo(KEYS[0], ADDR), clock=lambda: START + 2.0
            )
            good.start()
            # The bad client: valid node info, one good event, then a bogus discriminator
            # body that cannot parse (status with a short body), then more garbage.
            reader, writer = await asyncio.open_connection("127.0.0.1", collector.port)
            ok_event = encode_event(Jip3Event(5_000_000, 26, ref_event_id=0))
            writer.write(encode_message(NodeInfo(KEYS[1], ADDR).encode()))
            writer.write(encode_message(ok_event))
            writer.write(encode_message(b"\x00" * 8 + b"\x0a\x01") + b"\xff" * 64)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # collector closed it
            writer.close()

            good.emit_action(
                EmitTelemetry(TelemetryKind.CONNECTING_OUT, 0, KEYS[2], 1, Direction.OUTBOUND, ADDR)
            )
            good.emit_action(
                EmitTelemetry(
                    TelemetryKind.CONNECTED_OUT, 1, KEYS[2], 1, Direction.OUTBOUND, ref_event_id=0
                )
            )
            good.emit_action(
                EmitTelemetry(
                    TelemetryKind.DISCONNECTED,
                    2,
                    KEYS[2],
                    1,
                    reason="idle timeout",
                    side=Side.REMOTE,
                )
            )
            ok = await collector.wait_until(lambda: len(collector.records) >= 4, 10)
            assert ok, (collector.records, collector.rejections, good.sent, good.dropped)
            await good.close()
            return seen, collector, good

    seen, collector, good = run(scenario())
    rows = collector.records
    assert rows == seen
    from_good = [r for r in rows if r.node == 0]
    assert [r.event for r in from_good] == ["connecting_out", "connected_out", "disconnected"]
    assert all(r.peer == 2 and r.time == 2.0 for r in from_good)
    assert from_good[2].side == 1 and from_good[2].reason == "idle timeout"
    from_bad = [r for r in rows if r.node == 1]
    assert [r.event for r in from_bad] == ["connected_out"]  # rows before the garbage kept
    assert len(collector.rejections) == 1
    assert "JIP-3 event" in collector.rejections[0].reason
    assert good.dropped == 0 and good.sent == 3
    assert set(collector.node_infos) == {KEYS[0], KEYS[1]}


def test_oversized_message_closes_only_that_client() -> None:
    async def scenario() -> TelemetryCollector:
        async with TelemetryCollector(INDEX, START, max_message_size=1024) as collector:
            reader, writer = await asyncio.open_connection("127.0.0.1", collector.port)
            writer.write((10_000_000).to_bytes(4, "little"))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            return collector

    collector = run(scenario())
    assert "exceeds the 1024-byte limit" in collector.rejections[0].reason


def test_client_never_blocks_and_counts_drops_when_server_is_gone() -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]

    async def scenario() -> TelemetryClient:
        client = TelemetryClient(
            "127.0.0.1",
            dead_port,
            NodeInfo(KEYS[0], ADDR),
            max_queue=5,
            reconnect_interval=None,
            connect_timeout=1.0,
        )
        client.start()
        for i in range(20):
            client.emit(Jip3Event(i, 26, ref_event_id=0))  # returns at once
        await client.close(timeout=0.1)
        return client

    client = run(scenario())
    assert client.dropped == 20 and client.sent == 0


def test_unencodable_event_is_dropped_at_emit_not_in_the_sender() -> None:
    async def scenario() -> tuple[TelemetryCollector, TelemetryClient]:
        async with TelemetryCollector(INDEX, START) as collector:
            client = TelemetryClient("127.0.0.1", collector.port, NodeInfo(KEYS[0], ADDR))
            client.start()
            client.emit(Jip3Event(0, 23, ref_event_id=None, peer=KEYS[1]))  # id 0: no ref
            client.emit(Jip3Event(0, 26, ref_event_id=0))  # id 1
            assert await collector.wait_until(lambda: len(collector.records) >= 2, 10)
            await client.close()
            return collector, client

    collector, client = run(scenario())
    assert client.dropped == 1
    # The bad event's id 0 becomes a JIP-3 "dropped" event, so id 1 stays id 1.
    assert [(r.event, r.event_id) for r in collector.records] == [
        ("dropped", 0),
        ("connected_out", 1),
    ]


def test_client_reconnects_and_realigns_ids_with_a_dropped_event() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario() -> tuple[TelemetryCollector, TelemetryClient]:
        client = TelemetryClient(
            "127.0.0.1", port, NodeInfo(KEYS[0], ADDR), reconnect_interval=0.05, connect_timeout=1.0
        )
        client.start()
        for _ in range(3):  # server not up yet: these are dropped (ids 0..2)
            client.emit(Jip3Event(1, 26, ref_event_id=0))
        await asyncio.sleep(0)  # let the sender try (and fail) to connect
        deadline = asyncio.get_running_loop().time() + 5
        while client.dropped < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        collector = TelemetryCollector(INDEX, START, port=port)
        await collector.start()
        try:
            while not client.connected and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            client.emit(Jip3Event(2, 26, ref_event_id=0))  # id 3
            assert await collector.wait_until(lambda: len(collector.records) >= 2, 5)
            await client.close()
        finally:
            await collector.stop()
        return collector, client

    collector, client = run(scenario())
    assert client.dropped == 3
    assert [(r.event, r.event_id) for r in collector.records] == [
        ("dropped", 0),
        ("connected_out", 3),
    ]


def test_take_hands_each_row_once_and_forgets_it() -> None:
    """The streaming path: every row is taken exactly once, in arrival order, and
    the collector keeps none it has handed on (its memory stays bounded)."""

    async def scenario() -> tuple[list[list[EventRecord]], list[EventRecord], list[EventRecord]]:
        seen: list[EventRecord] = []
        async with TelemetryCollector(INDEX, START, on_record=seen.append) as collector:
            client = TelemetryClient("127.0.0.1", collector.port, NodeInfo(KEYS[0], ADDR),
                                     clock=lambda: START + 1.0)
            client.start()
            takes: list[list[EventRecord]] = []
            for round_ in range(3):
                for i in range(4):
                    event_id = round_ * 4 + i
                    client.emit_action(EmitTelemetry(
                        TelemetryKind.CONNECTING_OUT, event_id, KEYS[1], event_id + 1,
                        Direction.OUTBOUND, ADDR))
                ok = await collector.wait_until(lambda: len(collector.records) >= 4, 10)
                assert ok, (collector.records, client.sent, client.dropped)
                takes.append(collector.take())
                assert collector.records == []  # forgotten once taken
            await client.close()
            return takes, seen, collector.take()

    takes, seen, rest = run(scenario())
    assert [len(t) for t in takes] == [4, 4, 4] and rest == []
    assert [row for t in takes for row in t] == seen  # each row once, in arrival order
    assert [r.event_id for t in takes for r in t] == list(range(12))
