"""The real node against a JAMNP-S stack it did not write: quinn + rustls.

``testnet/quinn-peer`` is written from the protocol text alone (its own alt-name
encoding, certificate checks, framing and codecs), so every exchange here is a
QUIC/TLS handshake between aioquic and quinn/rustls over real loopback sockets,
with ports from the OS. Keys come from the dev seeds, chosen by the preferred
initiator rule so that the side which dials is the one the rule asks to dial.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from jamsim.identity import (
    PeerAddress,
    ValidatorIdentity,
    ValidatorInfo,
    ValidatorSet,
    alpn_for_genesis,
    is_preferred_initiator,
)
from jamsim.net.node import Node
from jamsim.protocol.messages import Announcement, Final, Handshake
from jamsim.protocol.stream_protocols import ResetCode
from jamsim.quic.verify import RejectReason
from tests.net.quinn_peer import DEADLINE, QuinnPeer, quinn_peer_binary
from tests.net.test_node import BLOCK, blocks_for, free_ports

GENESIS = bytes(range(32))  # ALPN jamnp-s/0/00010203: the chain prefix must really match
ALPN = alpn_for_genesis(GENESIS)
SEED = 23
NODE_FINAL = Final(bytes([7]) * 32, 42)
# What the peer sends in its UP 0 handshake for --final-slot 9 (see its README).
PEER_HANDSHAKE = Handshake(Final(bytes(32), 9), (Final(bytes([0xAB]) * 32, 10),))


def _identities() -> tuple[ValidatorIdentity, ValidatorIdentity, ValidatorIdentity]:
    """The node, a peer the rule asks to dial the node, a peer the node must dial."""
    node = ValidatorIdentity.generate_dev(SEED, 0)
    others = [ValidatorIdentity.generate_dev(SEED, i) for i in range(1, 8)]
    dialler = next(o for o in others if is_preferred_initiator(o.public_key, node.public_key))
    waiter = next(o for o in others if is_preferred_initiator(node.public_key, o.public_key))
    return node, dialler, waiter


def _node(identity: ValidatorIdentity, peer: ValidatorIdentity, peer_address: PeerAddress) -> Node:
    port = free_ports(1)[0]
    vs = ValidatorSet([
        ValidatorInfo(0, identity.public_key, PeerAddress("127.0.0.1", port)),
        ValidatorInfo(1, peer.public_key, peer_address),
    ])
    node = Node(identity, vs, GENESIS, port=port, block_source=blocks_for)
    node.best = NODE_FINAL
    return node


@asynccontextmanager
async def running(node: Node) -> AsyncIterator[Node]:
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@asynccontextmanager
async def quinn(binary: Path, *args: str, alpn: str = ALPN) -> AsyncIterator[QuinnPeer]:
    peer = await QuinnPeer.start(binary, *args, "--alpn", alpn, "--final-slot", "9")
    try:
        yield peer
    finally:
        peer.kill()
        await peer.proc.wait()


async def _until(node: Node, cond: Callable[[], bool], what: str) -> None:
    try:
        await node.wait_for(cond, DEADLINE)
    except TimeoutError:
        pytest.fail(f"the node did not reach: {what} within {DEADLINE} s; "
                    f"status {node.status()}", pytrace=False)


def _dial_args(node: Node, peer: ValidatorIdentity, *extra: str) -> tuple[str, ...]:
    return ("dial", f"127.0.0.1:{node.port}", node.key.hex(), "--seed", peer.seed.hex(),
            "--wait-stdin", *extra)


async def _check_exchange(node: Node, peer: QuinnPeer, peer_key: bytes, *, outbound: bool) -> None:
    """Both ends verified each other, the manager holds the connection, UP 0 went
    both ways and each end decoded the other's handshake."""
    connected = await peer.event("connected")
    assert connected["peer_key"] == node.key.hex()
    assert connected["alpn"] == ALPN
    shake = await peer.event("up0_handshake")
    assert (shake["final_hash"], shake["final_slot"], shake["leaves"]) == (
        NODE_FINAL.hash.hex(), NODE_FINAL.slot, 0)
    await _until(node, lambda: node._live_conn(peer_key) is not None, "a live connection")
    conn = node._live_conn(peer_key)
    assert conn is not None and conn.outbound is outbound
    await _until(node, lambda: conn.peer_handshake is not None, "the peer's UP 0 handshake")
    assert conn.peer_handshake == PEER_HANDSHAKE
    assert peer_key in node.manager.live_peers()
    assert not node.rejections and not node.misbehaviours and not node.internal_errors


def test_quinn_peer_dials_the_node() -> None:
    node_id, peer_id, _ = _identities()

    async def main(binary: Path) -> None:
        # The peer is the preferred initiator; its listed address is never used.
        node = _node(node_id, peer_id, PeerAddress("127.0.0.1", free_ports(1)[0]))
        dial = _dial_args(node, peer_id, "--announcements", "1")
        async with running(node), quinn(binary, *dial) as peer:
            await _check_exchange(node, peer, peer_id.public_key, outbound=False)
            # An announcement on the UP 0 stream the peer opened: header ++ final.
            announcement = Announcement(BLOCK.header, Final(BLOCK.header.hash(), 1))
            assert node.announce(announcement) == 1
            seen = await peer.event("announcement")
            assert (seen["parent"], seen["slot"]) == (BLOCK.header.parent.hex(), BLOCK.header.slot)
            assert (seen["final_hash"], seen["final_slot"]) == (BLOCK.header.hash().hex(), 1)
            await peer.event("done")
            assert await peer.finish() == 0, peer.events
            # Its CONNECTION_CLOSE (code 0, "done") reaches the node as a remote close.
            await _until(node, lambda: node.lost["done"] == 1, "the peer's close")
            assert node.manager.live_connection(peer_id.public_key) is None

    asyncio.run(main(quinn_peer_binary()))


def test_node_dials_a_listening_quinn_peer() -> None:
    node_id, _, peer_id = _identities()

    async def main(binary: Path) -> None:
        listen = ("listen", "127.0.0.1:0", "--expect", node_id.public_key.hex(),
                  "--seed", peer_id.seed.hex(), "--wait-stdin")
        async with quinn(binary, *listen) as peer:
            bound = await peer.event("listening")
            assert bound["key"] == peer_id.public_key.hex()
            assert bound["alt_name"] == peer_id.alt_name  # two base32 encoders agree
            host, port = bound["addr"].rsplit(":", 1)
            node = _node(node_id, peer_id, PeerAddress(host, int(port)))
            async with running(node):
                await _check_exchange(node, peer, peer_id.public_key, outbound=True)
                await peer.event("done")
                assert await peer.finish() == 0, peer.events

    asyncio.run(main(quinn_peer_binary()))


def test_wrong_alt_name_is_refused_and_the_node_keeps_serving() -> None:
    node_id, peer_id, _ = _identities()
    stranger = ValidatorIdentity.generate_dev(SEED, 99)

    async def main(binary: Path) -> None:
        node = _node(node_id, peer_id, PeerAddress("127.0.0.1", free_ports(1)[0]))
        async with running(node):
            # The peer's own key, but the alt-name of another key in its SAN.
            bad = _dial_args(node, peer_id, "--san", stranger.alt_name)
            async with quinn(binary, *bad) as peer:
                closed = await peer.event("closed")
                assert closed["code"] == RejectReason.BAD_SAN
                assert closed["reason"].startswith("bad-san")
                assert await peer.finish() == 1
            assert node.rejections == {"bad-san": 1}
            assert node.manager.live_connection(peer_id.public_key) is None
            async with quinn(binary, *_dial_args(node, peer_id)) as peer:
                await _check_exchange_after_refusal(node, peer, peer_id.public_key)

    asyncio.run(main(quinn_peer_binary()))


async def _check_exchange_after_refusal(node: Node, peer: QuinnPeer, key: bytes) -> None:
    await peer.event("up0_handshake")
    await _until(node, lambda: node._live_conn(key) is not None, "a live connection")
    assert await peer.finish() == 0, peer.events


def test_quinn_peer_refuses_a_node_with_another_key_and_the_node_stays_clean() -> None:
    node_id, peer_id, _ = _identities()
    other = ValidatorIdentity.generate_dev(SEED, 98)

    async def main(binary: Path) -> None:
        node = _node(node_id, peer_id, PeerAddress("127.0.0.1", free_ports(1)[0]))
        async with running(node):
            args = ("dial", f"127.0.0.1:{node.port}", other.public_key.hex(),
                    "--seed", peer_id.seed.hex())
            async with quinn(binary, *args) as peer:
                error = await peer.event("error")
                assert "handshake" in error["reason"] and "expected" in error["reason"]
                assert await peer.finish() == 1
            # rustls aborts with a TLS alert: an inbound failure, not a node fault.
            assert not node.internal_errors
            assert node.manager.live_connection(peer_id.public_key) is None

    asyncio.run(main(quinn_peer_binary()))


def test_node_refuses_a_listening_quinn_peer_with_a_wrong_alt_name() -> None:
    """The node as the client checks a foreign server's certificate the same way.

    The peer learns only that the dialler closed during the handshake: the node's
    close goes out with its Finished, while the peer still reads Handshake
    packets, where RFC 9000 (10.2.3) replaces an application close by a bare
    APPLICATION_ERROR, so the refusal code travels in the 1-RTT copy quinn never
    reads."""
    node_id, _, peer_id = _identities()
    stranger = ValidatorIdentity.generate_dev(SEED, 99)

    async def main(binary: Path) -> None:
        listen = ("listen", "127.0.0.1:0", "--seed", peer_id.seed.hex(),
                  "--san", stranger.alt_name)
        async with quinn(binary, *listen) as peer:
            host, port = (await peer.event("listening"))["addr"].rsplit(":", 1)
            node = _node(node_id, peer_id, PeerAddress(host, int(port)))
            async with running(node):
                assert "handshake" in (await peer.event("error"))["reason"]
                await _until(node, lambda: node.rejections["bad-san"] == 1, "the refusal")
                assert await peer.finish() == 1
                assert node.manager.live_connection(peer_id.public_key) is None
                assert not node.internal_errors

    asyncio.run(main(quinn_peer_binary()))


def test_a_quinn_server_refusing_the_nodes_certificate_ends_the_connection() -> None:
    """TLS 1.3 has the client finish before the server checks the client's
    certificate: the node sees its dial established, then rustls's alert (a
    CONNECTION_CLOSE with a crypto error) ends it once the draining period is
    over; no internal error, and no live connection is left."""
    node_id, _, peer_id = _identities()
    other = ValidatorIdentity.generate_dev(SEED, 98)

    async def main(binary: Path) -> None:
        listen = ("listen", "127.0.0.1:0", "--seed", peer_id.seed.hex(),
                  "--expect", other.public_key.hex())
        async with quinn(binary, *listen) as peer:
            host, port = (await peer.event("listening"))["addr"].rsplit(":", 1)
            node = _node(node_id, peer_id, PeerAddress(host, int(port)))
            async with running(node):
                assert "not the expected" in (await peer.event("error"))["reason"]
                await _until(node, lambda: any("not the expected" in r for r in node.lost),
                             "the peer's refusal, as a lost connection")
                assert node.manager.live_connection(peer_id.public_key) is None
                assert not node.internal_errors
                assert await peer.finish() == 1

    asyncio.run(main(quinn_peer_binary()))


def test_non_validator_quinn_peer_with_the_builder_alpn_takes_a_builder_slot() -> None:
    node_id, peer_id, _ = _identities()
    builder = ValidatorIdentity.generate_dev(SEED, 97)  # in no validator set

    async def main(binary: Path) -> None:
        node = _node(node_id, peer_id, PeerAddress("127.0.0.1", free_ports(1)[0]))
        args = ("dial", f"127.0.0.1:{node.port}", node.key.hex(), "--seed", builder.seed.hex(),
                "--wait-stdin")
        async with running(node), quinn(binary, *args, alpn=ALPN + "/builder") as peer:
            assert (await peer.event("connected"))["alpn"] == ALPN + "/builder"
            await peer.event("up0_handshake")
            await _until(node, lambda: node._live_conn(builder.public_key) is not None,
                         "a live builder connection")
            assert await peer.finish() == 0, peer.events

    asyncio.run(main(quinn_peer_binary()))


@pytest.mark.parametrize("known", [True, False], ids=["known-block", "unknown-block"])
def test_quinn_peer_requests_a_block_with_ce128(known: bool) -> None:
    """A block the node's chain holds comes back as one message then FIN; a request
    it cannot satisfy is answered, as JAMNP-S says, by resetting the stream."""
    node_id, peer_id, _ = _identities()

    async def main(binary: Path) -> None:
        node = _node(node_id, peer_id, PeerAddress("127.0.0.1", free_ports(1)[0]))
        wanted = BLOCK.header.hash() if known else bytes([0xEE]) * 32
        request = ("--request", wanted.hex())
        async with running(node), quinn(binary, *_dial_args(node, peer_id, *request)) as peer:
            if known:
                block = await peer.event("block")
                assert block["parent"] == BLOCK.header.parent.hex()
                assert block["slot"] == BLOCK.header.slot
                assert block["size"] == len(BLOCK.encode())
            else:
                assert (await peer.event("reset"))["code"] == ResetCode.REJECTED
            assert (await peer.event("ce128_done"))["blocks"] == int(known)
            assert await peer.finish() == 0, peer.events

    asyncio.run(main(quinn_peer_binary()))
