"""Two or three real nodes over loopback UDP: mutual TLS, UP 0, CE 128, rejections.

Every wait is on a condition with a bounded timeout; no fixed sleeps.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import TypeVar

from aioquic.asyncio.client import connect
from aioquic.quic.configuration import QuicConfiguration
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from jamsim.core.events import Event
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import (
    PeerAddress,
    ValidatorIdentity,
    ValidatorInfo,
    ValidatorSet,
    alpn_for_genesis,
    alt_name,
)
from jamsim.net.node import Node
from jamsim.protocol.framing import encode_message
from jamsim.protocol.messages import (
    Announcement,
    Block,
    BlockRequest,
    Final,
    Header,
    RequestDirection,
)
from jamsim.quic.certificates import NodeCertificate, build_certificate, certificate_for
from jamsim.quic.config import make_configuration
from jamsim.quic.verify import RejectReason

GENESIS = bytes(32)
SEED = 11


E = TypeVar("E", bound=Event)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free for UDP *and* TCP right now.

    Both, because callers use a port for a node's UDP socket or for a TCP control
    channel: a UDP-free port can still be taken on TCP, and a control server that
    cannot bind kills its node (a CI run once saw exactly that as "no peers").
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken on TCP: keep the UDP socket held so it is not reused
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def make_set(n: int) -> tuple[ValidatorSet, list[ValidatorIdentity]]:
    ids = [ValidatorIdentity.generate_dev(SEED, i) for i in range(n)]
    ports = free_ports(n)
    infos = [
        ValidatorInfo(i, ids[i].public_key, PeerAddress("127.0.0.1", ports[i])) for i in range(n)
    ]
    return ValidatorSet(infos), ids


BLOCK = Block(Header(GENESIS, 1, 0), b"xt")


def blocks_for(request: BlockRequest) -> Sequence[Block] | None:
    return [BLOCK] if request.hash == BLOCK.header.hash() else None


def node(vs: ValidatorSet, ids: list[ValidatorIdentity], i: int, **kw: object) -> Node:
    policy = kw.pop("policy", ConnectionPolicy.preset("jamnp-s"))
    return Node(
        ids[i],
        vs,
        GENESIS,
        port=vs[i].address.port,
        policy=policy,  # type: ignore[arg-type]
        block_source=blocks_for,
        **kw,  # type: ignore[arg-type]
    )


def manager_events(n: Node, kind: type[E]) -> list[E]:
    """Every event of type ``kind`` the node feeds its manager, in order; the
    manager still handles each (spies stack: call it once per kind)."""
    seen: list[E] = []
    handle = n.manager.handle

    def spy(event: Event, now: float) -> None:
        if isinstance(event, kind):
            seen.append(event)
        handle(event, now)

    n.manager.handle = spy  # type: ignore[method-assign]
    return seen


async def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def test_two_nodes_connect_announce_and_request() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        a, b = node(vs, ids, 0), node(vs, ids, 1)
        await a.start()
        await b.start()
        try:
            await _wait(lambda: b.key in a.connected_peers() and a.key in b.connected_peers())
            # UP 0 handshakes travel both ways once the initiator opens the stream.
            await _wait(lambda: all(c.peer_handshake is not None for c in a._conns.values()))
            ann = Announcement(BLOCK.header, Final(BLOCK.header.hash(), 1))
            assert a.announce(ann) == 1
            await _wait(lambda: len(b.announcements) == 1)
            assert b.announcements[0] == (a.key, ann)
            req = BlockRequest(BLOCK.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 4)
            assert await b.request_blocks(a.key, req) == (BLOCK,)
            assert a.status()["connected_count"] == 1
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def _bad_client_config(
    kind: str, ids: list[ValidatorIdentity], stranger: ValidatorIdentity
) -> QuicConfiguration:
    good = certificate_for(ids[1])
    alpns = None
    cert: NodeCertificate | None = good
    if kind == "no-cert":
        cert = None
    elif kind == "wrong-san":
        key = ed25519.Ed25519PrivateKey.from_private_bytes(ids[1].seed)
        cert = NodeCertificate(
            build_certificate(key, (alt_name(ids[0].public_key),)), key, good.public_key
        )
    elif kind == "unknown-key":
        cert = certificate_for(stranger)
    elif kind == "unknown-key-builder-alpn":
        # A builder-slot candidate on a node that takes validators only.
        cert = certificate_for(stranger)
        alpns = [alpn_for_genesis(GENESIS, builder=True)]
    elif kind == "ecdsa":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        cert = NodeCertificate(build_certificate(ec_key, ("e",)), ec_key, b"")  # type: ignore[arg-type]
    config = make_configuration(
        good, GENESIS, is_client=True, idle_timeout=5.0, alpn_protocols=alpns
    )
    if cert is None:
        config.certificate = None
        config.private_key = None
    else:
        config.certificate = cert.certificate
        config.private_key = cert.private_key
    return config


def test_bad_peers_are_rejected_while_a_good_peer_is_served() -> None:
    cases = {
        "no-cert": RejectReason.NO_CERTIFICATE,
        "wrong-san": RejectReason.BAD_SAN,
        "unknown-key": RejectReason.UNKNOWN_KEY,
        "unknown-key-builder-alpn": RejectReason.UNKNOWN_KEY,
        "ecdsa": RejectReason.NOT_ED25519,
    }

    async def main() -> None:
        vs, ids = make_set(3)
        a, good = node(vs, ids, 0, allow_non_validators=False), node(vs, ids, 2)
        await a.start()
        await good.start()
        stranger = ValidatorIdentity.generate_dev(999, 0)
        try:
            await _wait(lambda: good.key in a.connected_peers())
            for kind, reason in cases.items():
                config = _bad_client_config(kind, ids, stranger)
                # The server closes right after the handshake with the reason's code.
                async with connect("127.0.0.1", a.port, configuration=config) as client:
                    await _wait(lambda r=reason, k=kind: a.rejections[r.label] >= (  # type: ignore[misc]
                        2 if k == "unknown-key-builder-alpn" else 1
                    ))
                    await asyncio.wait_for(client.wait_closed(), 5)
                    assert client._quic._close_event is not None
                    assert client._quic._close_event.error_code == int(reason)
            # The good peer is still connected and served.
            req = BlockRequest(BLOCK.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 1)
            assert await good.request_blocks(a.key, req) == (BLOCK,)
            assert set(a.rejections) == {r.label for r in cases.values()}
        finally:
            await a.stop()
            await good.stop()

    asyncio.run(main())


def test_malformed_and_oversize_frames_reset_only_that_stream() -> None:
    async def main() -> None:
        vs, ids = make_set(2)
        a, b = node(vs, ids, 0), node(vs, ids, 1)
        await a.start()
        await b.start()
        try:
            await _wait(lambda: b.key in a.connected_peers() and a.key in b.connected_peers())
            conn = b._live_conn(a.key)
            assert conn is not None
            # CE 128 with a garbage request body, and one with a 1 MiB length prefix.
            conn.send_raw_stream(bytes([128]) + encode_message(b"\x01\x02"))
            conn.send_raw_stream(bytes([128]) + (1 << 20).to_bytes(4, "little") + b"x" * 64)
            b._transmit(conn)
            await _wait(lambda: sum(a.misbehaviours.values()) >= 2)
            # The connection survives: a proper request on the same peer still works.
            req = BlockRequest(BLOCK.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 1)
            assert await b.request_blocks(a.key, req) == (BLOCK,)
            assert any("large" in r or "exceeds" in r or "size" in r for r in a.misbehaviours)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_dead_peer_noticed_by_idle_timeout_and_shutdown_is_clean() -> None:
    policy = ConnectionPolicy.preset("jamnp-s", idle_timeout=1.0, keep_alive_interval=0.3)

    async def main() -> None:
        vs, ids = make_set(2)
        a, b = node(vs, ids, 0, policy=policy), node(vs, ids, 1, policy=policy)
        await a.start()
        await b.start()
        try:
            await _wait(lambda: b.key in a.connected_peers())
            # Keep-alives hold the connection past several idle timeouts.
            first = a.manager.live_connection(b.key)
            loop = asyncio.get_running_loop()
            until = loop.time() + 2.5
            await _wait(lambda: loop.time() >= until)
            assert a.manager.live_connection(b.key) == first
            assert not a.lost
            # Kill b silently (no CONNECTION_CLOSE): drop every datagram it would send.
            b.datagram_filter = lambda _d, _data, _addr: None
            await _wait(lambda: sum(a.lost.values()) >= 1, timeout=10)
            assert b.key not in a.connected_peers() or a.manager.live_connection(b.key) != first
            # Revive b: the manager retries and the peers reconnect.
            b.datagram_filter = None
            await _wait(lambda: b.key in a.connected_peers(), timeout=20)
        finally:
            await a.stop()
            await b.stop()
        assert a._transport is None and not a._conns
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current]
        assert leftover == []

    asyncio.run(main())
