"""Control channel over real loopback TCP: good and malformed requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jamsim.net.control import (
    ControlError,
    ControlServer,
    control_request,
    control_request_async,
)
from jamsim.net.impairment import DatagramImpairment
from tests.net.rules import rule

A = ("127.0.0.1", 40001)


async def _raw(addr: tuple[str, int], payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(payload)
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 2.0)
    writer.close()
    return line


def test_commands_change_rules_and_status_reports() -> None:
    async def main() -> None:
        imp = DatagramImpairment(seed=1)
        server = ControlServer(imp, status=lambda: {"connected": ["v1", "v2"]})
        async with server:
            addr = server.address
            await control_request_async(addr, {"op": "ping"})
            await control_request_async(
                addr, {"op": "set_link", "addrs": [list(A)], "latency": 0.1, "jitter": 0.0}
            )
            assert imp.rules()[A] == rule(latency=0.1)
            await control_request_async(
                addr, {"op": "partition", "addrs": [list(A)], "incoming": False}
            )
            assert imp.blocked_out == {A} and not imp.blocked_in
            await control_request_async(addr, {"op": "isolate", "addrs": [["127.0.0.1", 9]]})
            reply = await control_request_async(addr, {"op": "status"})
            status: dict[str, Any] = reply["status"]
            assert status["connected"] == ["v1", "v2"]
            assert ["127.0.0.1", 9] in status["blocked_in"]
            await control_request_async(addr, {"op": "heal"})
            assert not imp.blocked_out and not imp.blocked_in and imp.rules()
            await control_request_async(addr, {"op": "clear"})
            assert not imp.active
            # the blocking client used by the harness, from a thread
            reply = await asyncio.to_thread(control_request, addr, {"op": "status"})
            assert reply["ok"]

    asyncio.run(main())


@pytest.mark.parametrize(
    "payload",
    [
        b"not json\n",
        b"[1, 2]\n",
        b'{"op": "explode"}\n',
        b'{"op": "set_link", "addrs": "nope"}\n',
        b'{"op": "set_link", "addrs": [["h", "port"]]}\n',
        b'{"op": "set_link", "addrs": [], "loss": 2}\n',
        b'{"op": "set_link", "addrs": [], "latency": "fast"}\n',
        b'{"op": "partition", "addrs": [], "outgoing": "yes"}\n',
        b"\xff\xfe\n",
    ],
)
def test_malformed_requests_answer_error_and_server_survives(payload: bytes) -> None:
    async def main() -> None:
        imp = DatagramImpairment()
        async with ControlServer(imp) as server:
            import json

            reply = json.loads(await _raw(server.address, payload))
            assert reply["ok"] is False and reply["error"]
            assert not imp.active
            await control_request_async(server.address, {"op": "ping"})

    asyncio.run(main())


def test_status_callback_failure_is_an_error_reply() -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("boom")

    async def main() -> None:
        async with ControlServer(DatagramImpairment(), status=broken) as server:
            with pytest.raises(ControlError, match="internal error"):
                await control_request_async(server.address, {"op": "status"})
            await control_request_async(server.address, {"op": "ping"})

    asyncio.run(main())


def test_unreachable_node_raises_control_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ControlError, match="unreachable"):
        control_request(("127.0.0.1", port), {"op": "ping"}, timeout=0.5)


def test_stop_closes_idle_client_connections() -> None:
    """A harness that keeps a connection open must not block or break node shutdown."""

    async def main() -> None:
        server = ControlServer(DatagramImpairment())
        await server.start()
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b'{"op": "ping"}\n')
        assert b'"ok": true' in await reader.readline()
        await asyncio.wait_for(server.stop(), 3.0)
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        writer.close()

    asyncio.run(main())


def test_a_poll_that_reaches_itself_leaves_the_port_bindable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Polling a dead node's control port can connect the socket to itself (TCP
    simultaneous open, when the kernel picks that very port as the source, as it may
    in the ephemeral range). Forced here by choosing the source port; afterwards the
    restarted node must still be able to listen on its port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = s.getsockname()
    real_connect = socket.create_connection

    def from_same_port(address: tuple[str, int], timeout: float) -> socket.socket:
        return real_connect(address, timeout, source_address=address)

    monkeypatch.setattr(socket, "create_connection", from_same_port)
    with pytest.raises(ControlError) as failed:
        control_request(addr, {"op": "ping"}, timeout=0.5)
    monkeypatch.undo()

    async def restarted_node_listens() -> None:
        server = ControlServer(DatagramImpairment(), port=addr[1])
        await server.start()  # EADDRINUSE while the port sits in TIME_WAIT
        await server.stop()

    asyncio.run(restarted_node_listens())
    assert "reached itself" in str(failed.value)
