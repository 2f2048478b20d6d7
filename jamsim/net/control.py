"""Local control channel: the harness changes a running node's impairment and asks its status.

JSON lines over TCP on 127.0.0.1 (one request object per line, one response per
line).  Why TCP-on-loopback and not signals/files: requests need answers
(status), and the same channel works from docker (published on the container's
loopback-only port) and from a local harness.

Requests (``op`` selects)::

    {"op": "ping"}
    {"op": "status"}                                  -> {"ok": true, "status": {...}}
    {"op": "set_link", "addrs": [["h", p], ...], "latency": s, "jitter": s,
     "loss": p, "burst_loss": [g2b, b2g, loss_bad(, loss_good)] | null,
     "direction": "out"|"in", "distribution": "constant"|"normal"|"lognormal",
     "bandwidth": bits/s | null, "minimum": s}
                                    (a jamsim.links.LinkSpec: LinkSpec.to_json)
    {"op": "partition", "addrs": [...], "outgoing": true, "incoming": true}
    {"op": "isolate", "addrs": [...]}                  (both directions)
    {"op": "heal"}                                     (blocks removed, link rules stay)
    {"op": "clear"}                                    (everything removed)

Every response has ``ok``; failures carry ``error`` and never stop the server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from typing import Any

from jamsim.core.errors import UsageError
from jamsim.links import LinkSpec, check_direction
from jamsim.net.impairment import Addr, DatagramImpairment
from jamsim.tcp_service import TcpService

StatusCallback = Callable[[], dict[str, Any]]
MAX_LINE = 1 << 20


class ControlError(RuntimeError):
    """A control request failed (bad request, node answered an error, or unreachable)."""


def _addrs(request: dict[str, Any]) -> list[Addr]:
    raw = request.get("addrs")
    if not isinstance(raw, list):
        raise ControlError("'addrs' must be a list of [host, port]")
    out: list[Addr] = []
    for item in raw:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
        ):
            raise ControlError(f"bad address {item!r}: expected [host, port]")
        out.append((item[0], item[1]))
    return out


def handle_request(
    request: object, impairment: DatagramImpairment, status: StatusCallback | None
) -> dict[str, Any]:
    """Apply one decoded request; pure apart from mutating ``impairment`` (testable without I/O)."""
    try:
        if not isinstance(request, dict):
            raise ControlError("request must be a JSON object")
        op = request.get("op")
        if op == "ping":
            return {"ok": True}
        if op == "status":
            body = status() if status is not None else {}
            body = dict(body)
            body["blocked_out"] = sorted(list(a) for a in impairment.blocked_out)
            body["blocked_in"] = sorted(list(a) for a in impairment.blocked_in)
            body["dropped"] = impairment.dropped
            return {"ok": True, "status": body}
        if op == "set_link":
            try:
                direction = check_direction(request.get("direction", "out"))
                rule = LinkSpec.from_json(request)
            except UsageError as exc:
                raise ControlError(str(exc)) from exc
            for addr in _addrs(request):
                impairment.set_link(addr, rule, direction=direction)
            return {"ok": True}
        if op == "partition":
            outgoing = request.get("outgoing", True)
            incoming = request.get("incoming", True)
            if not isinstance(outgoing, bool) or not isinstance(incoming, bool):
                raise ControlError("'outgoing'/'incoming' must be booleans")
            impairment.block(_addrs(request), outgoing=outgoing, incoming=incoming)
            return {"ok": True}
        if op == "isolate":
            impairment.block(_addrs(request))
            return {"ok": True}
        if op == "heal":
            impairment.heal()
            return {"ok": True}
        if op == "clear":
            impairment.clear()
            return {"ok": True}
        raise ControlError(f"unknown op {op!r}")
    except (ControlError, ValueError, TypeError) as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


class ControlServer(TcpService):
    """Runs inside the node process (asyncio); serves :func:`handle_request` on loopback.

    Stopping waits at most 2 s for clients to leave: the node is going down anyway.
    """

    def __init__(
        self,
        impairment: DatagramImpairment,
        status: StatusCallback | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port, stop_timeout=2.0, limit=MAX_LINE)
        self.impairment = impairment
        self.status = status

    @property
    def address(self) -> Addr:
        return self.bound

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b'{"ok": false, "error": "request line too long"}\n')
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    response: dict[str, Any] = {"ok": False, "error": f"malformed JSON: {exc}"}
                else:
                    response = handle_request(request, self.impairment, self.status)
                writer.write(json.dumps(response).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass


def control_request(addr: Addr, request: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Harness side (blocking): send one request, return the response; raise on failure.

    Raises :class:`ControlError` if the node is unreachable, answers garbage or
    answers ``ok: false``.
    """
    try:
        with socket.create_connection(addr, timeout=timeout) as sock:
            if sock.getsockname()[:2] == sock.getpeername()[:2]:
                _abort(sock)
                raise ControlError(f"control channel {addr[0]}:{addr[1]} unreachable: "
                                   "nothing listens (the connection reached itself)")
            sock.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise ControlError(f"control channel {addr[0]}:{addr[1]} unreachable: {exc}") from exc
    return _parse_response(addr, request, buf)


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with a reset, leaving no TIME_WAIT entry on its port.

    Why: a connect to a loopback port nobody listens on can get that very port
    as its ephemeral source (TCP simultaneous open: the socket connects to
    itself). Polling a killed node's control port in the ephemeral range can do
    that; closed normally, the socket would then hold the port in TIME_WAIT for a
    minute and the restarted node could not bind it.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _parse_response(addr: Addr, request: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """One reply line -> the response dict; a node's error or garbage -> ControlError."""
    try:
        response = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlError(f"control channel {addr[0]}:{addr[1]} answered garbage") from exc
    if not isinstance(response, dict) or not response.get("ok"):
        error = response.get("error") if isinstance(response, dict) else response
        raise ControlError(f"control request {request.get('op')!r} failed: {error}")
    return response


async def control_request_async(
    addr: Addr, request: dict[str, Any], timeout: float = 2.0
) -> dict[str, Any]:
    """Async twin of :func:`control_request` for asyncio harnesses."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), timeout)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"control channel {addr[0]}:{addr[1]} unreachable: {exc}") from exc
    return _parse_response(addr, request, line)
