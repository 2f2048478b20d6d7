"""A real node against peers it did not write, over real sockets on 127.0.0.1.

Each test drives a raw aioquic client (tests/net/peers.py) through one case that
once broke the node, and checks the node answers as JAMNP-S says, raises nothing
and keeps serving. Every wait is on a condition with a bounded timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aioquic.quic import events
from cryptography import x509

from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import CloseReason
from jamsim.identity import ValidatorIdentity
from jamsim.net.node import Node
from jamsim.protocol.errors import PeerProtocolError
from jamsim.protocol.framing import encode_message
from jamsim.protocol.limits import MAX_BLOCK_SIZE
from jamsim.protocol.messages import BlockRequest, Final, Handshake, RequestDirection
from jamsim.protocol.stream_protocols import ResetCode
from jamsim.quic.verify import RejectReason
from tests.net.peers import RawPeer, client_config, raw_peer, wait_until
from tests.net.test_node import BLOCK, GENESIS, blocks_for, make_set, node
from tests.quic.cert_corpus import CORPUS, build

UP0_OPEN = bytes([0]) + encode_message(Handshake(Final(GENESIS, 0), ()).encode())
POISON = BlockRequest(bytes([0xEE]) * 32, RequestDirection.ASCENDING_EXCLUSIVE, 1)
REQUEST = BlockRequest(BLOCK.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 1)
"""A request the nodes' block source answers with ``(BLOCK,)``."""


def _no_errors(n: Node) -> None:
    assert not n.internal_errors, n.internal_errors


def _reset_codes(peer: RawPeer, sid: int) -> set[int]:
    """The error codes of every reset/stop the node sent on stream ``sid``."""
    return {e.error_code for e in peer.events
            if getattr(e, "stream_id", None) == sid and hasattr(e, "error_code")}


@contextlib.asynccontextmanager
async def running(*nodes: Node, clean: bool = True) -> AsyncIterator[None]:
    """Start ``nodes``, stop them all on the way out; with ``clean``, a body that
    ends normally also asserts that no node raised an internal error meanwhile."""
    started: list[Node] = []
    try:
        for n in nodes:
            await n.start()
            started.append(n)
        yield
        if clean:
            for n in nodes:
                _no_errors(n)
    finally:
        for n in started:
            await n.stop()


@contextlib.asynccontextmanager
async def live_peer(a: Node, identity: ValidatorIdentity, *,
                    builder: bool = False) -> AsyncIterator[RawPeer]:
    """A raw peer presenting ``identity``, connected and live at node ``a``."""
    async with raw_peer(a.port, client_config(identity=identity, builder=builder)) as peer:
        await wait_until(lambda: a.manager.live_connection(identity.public_key) is not None)
        yield peer


@dataclass
class NodeAndPeer:
    node: Node
    peer: RawPeer
    key: bytes
    """The raw peer's public key (validator 1's)."""


@contextlib.asynccontextmanager
async def node_and_peer(*, builder: bool = False, **options: object) -> AsyncIterator[NodeAndPeer]:
    """Validator 0 of a two-validator set running with ``options``, and a raw peer
    with validator 1's key live at it: the setup most cases below start from. The
    node must raise no internal error (checked when the body ends normally)."""
    vs, ids = make_set(2)
    a = node(vs, ids, 0, **options)
    async with running(a), live_peer(a, ids[1], builder=builder) as peer:
        yield NodeAndPeer(a, peer, ids[1].public_key)


def test_up0_lower_stream_id_arriving_second_is_reset_and_never_written() -> None:
    async def main() -> None:
        async with node_and_peer() as t:
            low, high = t.peer.new_stream(), t.peer.new_stream()
            t.peer.send(high, UP0_OPEN)  # reordered: the higher id arrives first
            await wait_until(lambda: high in t.peer.received)
            t.peer.send(low, UP0_OPEN)
            await wait_until(lambda: low in t.peer.resets())
            assert low not in t.peer.received, "the node wrote to a stream it reset"
            assert high not in t.peer.resets()
            assert t.node.manager.live_connection(t.key) is not None

    asyncio.run(main())


def _poisoned_source(request: BlockRequest) -> object:
    if request.hash == POISON.hash:
        raise RuntimeError("block store failed")
    return blocks_for(request)


def test_internal_error_closes_only_that_connection_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        vs, ids = make_set(3)
        a = Node(ids[0], vs, GENESIS, port=vs[0].address.port,
                 block_source=_poisoned_source)  # type: ignore[arg-type]
        good = node(vs, ids, 2)
        async with running(a, good, clean=False):
            await wait_until(lambda: good.key in a.connected_peers())
            async with live_peer(a, ids[1]) as peer:
                sid = peer.new_stream()
                peer.send(sid, bytes([128]) + encode_message(POISON.encode()), end=True)
                await wait_until(lambda: peer.close_event() is not None)
                closed = peer.close_event()
                assert closed is not None and closed.error_code == 0x1  # INTERNAL_ERROR
                assert "internal error" in closed.reason_phrase
            assert a.internal_errors == {"RuntimeError": 1}
            assert await good.request_blocks(a.key, REQUEST) == (BLOCK,)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "RuntimeError: block store failed" in errors[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records), "a traceback reached the log"


def test_ce128_request_never_finished_is_reset_after_the_timeout() -> None:
    async def main() -> None:
        async with node_and_peer(request_timeout=0.4) as t:
            peer = t.peer
            loop = asyncio.get_running_loop()
            sid = peer.new_stream()
            started = loop.time()
            peer.send(sid, bytes([128]) + encode_message(POISON.encode())[:20])
            await wait_until(lambda: sid in peer.resets(), timeout=5)
            assert loop.time() - started >= 0.4
            assert t.node.misbehaviours["request timeout"] == 1
            # A finished request on the same connection is still served.
            ok = peer.new_stream()
            peer.send(ok, bytes([128]) + encode_message(REQUEST.encode()), end=True)
            await wait_until(lambda: bytes(peer.received.get(ok, b"")).endswith(
                encode_message(BLOCK.encode())))

    asyncio.run(main())


def test_validator_dialling_with_the_builder_alpn_is_accepted() -> None:
    async def main() -> None:
        async with node_and_peer(builder=True) as t:
            assert t.peer.close_event() is None
            assert not t.node.rejections

    asyncio.run(main())


def test_non_validators_take_builder_slots_and_are_refused_when_full() -> None:
    policy = ConnectionPolicy.preset("jamnp-s", non_validator_slots=2)

    async def main() -> None:
        vs, ids = make_set(1)
        a = node(vs, ids, 0, policy=policy)
        strangers = [ValidatorIdentity.generate_dev("builder", i) for i in range(3)]
        async with running(a):
            async with (
                raw_peer(a.port, client_config(identity=strangers[0], builder=True)),
                raw_peer(a.port, client_config(identity=strangers[1])),
            ):
                await wait_until(lambda: len(a.manager.live_peers()) == 2)
                config = client_config(identity=strangers[2], builder=True)
                async with raw_peer(a.port, config) as third:
                    await wait_until(lambda: third.close_event() is not None)
                    closed = third.close_event()
                    assert closed is not None
                    assert closed.error_code == RejectReason.NO_SLOT
                    assert closed.reason_phrase == CloseReason.NO_SLOT.value
                assert len(a.manager.live_peers()) == 2
            # Slots free up when their holders leave.
            await wait_until(lambda: not a.manager.live_peers())
            async with live_peer(a, strangers[2]) as admitted:
                assert admitted.close_event() is None

    asyncio.run(main())


HANDSHAKE_CORPUS = [
    "jam-impl-style",
    "san-critical",
    "san-not-first",
    "serial-32-bytes",
    "rsa",
    "ecdsa",
    "base32-alt-name",
    "two-sans",
]


def test_certificate_corpus_over_a_real_handshake() -> None:
    """A representative subset of tests/quic/cert_corpus.py against a live node."""

    async def main() -> None:
        vs, ids = make_set(1)
        a = node(vs, ids, 0)
        async with running(a):
            for name in HANDSHAKE_CORPUS:
                spec, verdict = CORPUS[name]
                der, key = build(spec)
                config = client_config(x509.load_der_x509_certificate(der), key)
                async with raw_peer(a.port, config) as peer:
                    if verdict is None:
                        await wait_until(lambda: len(a.manager.live_peers()) == 1)
                        assert peer.close_event() is None, name
                    else:
                        await wait_until(lambda: peer.close_event() is not None)
                        closed = peer.close_event()
                        assert closed is not None and closed.error_code == verdict, name
                await wait_until(lambda: not a.manager.live_peers())

    asyncio.run(main())


def test_block_response_past_the_cap_is_refused_with_a_reset() -> None:
    async def main() -> None:
        async with node_and_peer() as t:
            peer = t.peer
            task = asyncio.ensure_future(t.node.request_blocks(t.key, REQUEST))
            await peer.wait_for(lambda: any(s % 4 == 1 for s in peer.received))
            sid = next(s for s in peer.received if s % 4 == 1)
            peer.send(sid, (MAX_BLOCK_SIZE + 1).to_bytes(4, "little") + b"x" * 64)
            with pytest.raises(PeerProtocolError, match="exceeds"):
                await task
            await peer.wait_for(lambda: sid in peer.resets())
            assert _reset_codes(peer, sid) == {ResetCode.PROTOCOL_ERROR}

    asyncio.run(main())


def test_udp_garbage_and_bogus_initials_are_dropped() -> None:
    """Datagrams no QUIC stack would send: the node drops them and keeps serving."""
    rng = random.Random(14)
    garbage = [rng.randbytes(rng.randint(1, 1300)) for _ in range(300)]
    # Long-header Initial, QUIC v1, 8-byte connection ids, then hostile bytes.
    initials = [bytes([0xC0]) + (1).to_bytes(4, "big") + b"\x08" + rng.randbytes(8) + b"\x08"
                + rng.randbytes(8) + rng.randbytes(rng.randint(0, 1200)) for _ in range(100)]

    async def main() -> None:
        vs, ids = make_set(3)
        a, good = node(vs, ids, 0), node(vs, ids, 2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            async with running(a, good):
                await wait_until(lambda: good.key in a.connected_peers())
                for i, datagram in enumerate([*garbage, *initials]):
                    sock.sendto(datagram, ("127.0.0.1", a.port))
                    if i % 50 == 0:
                        await asyncio.sleep(0.005)  # let the node drain its socket
                assert await good.request_blocks(a.key, REQUEST) == (BLOCK,)
                # No stray inbound connection is kept (outbound: the dial to absent v1).
                await wait_until(lambda: all(c.outbound or c.peer_key is not None
                                             for c in a._conns.values()))

    asyncio.run(main())


def test_our_request_a_peer_never_answers_is_cancelled_on_the_wire() -> None:
    async def main() -> None:
        async with node_and_peer() as t:
            peer = t.peer
            with pytest.raises(TimeoutError):
                await t.node.request_blocks(t.key, REQUEST, timeout=0.3)
            sid = next(s for s in peer.received if s % 4 == 1)
            await peer.wait_for(lambda: sid in peer.resets())
            assert _reset_codes(peer, sid) == {ResetCode.CANCELLED}
            conn = t.node._live_conn(t.key)
            assert conn is not None and conn.open_streams() == 0

    asyncio.run(main())


def test_stop_sending_on_up0_ends_the_stream_on_both_halves() -> None:
    async def main() -> None:
        async with node_and_peer() as t:
            peer = t.peer
            sid = peer.new_stream()
            peer.send(sid, UP0_OPEN)
            await peer.wait_for(lambda: sid in peer.received)  # the node's handshake
            conn = t.node._live_conn(t.key)
            assert conn is not None and conn.up0 == sid
            peer._quic.stop_stream(sid, 5)  # STOP_SENDING: we will not read any more
            peer.transmit()
            await peer.wait_for(lambda: any(
                isinstance(e, events.StreamReset) and e.stream_id == sid for e in peer.events))
            await wait_until(lambda: conn.up0 is None and conn.open_streams() == 0)

    asyncio.run(main())


def test_data_sent_with_a_stop_sending_ahead_of_it_is_still_read() -> None:
    """A peer's last message and its STOP_SENDING in one packet, the STOP_SENDING
    frame first (aioquic and quinn both write it before the stream's data): the
    node reads the message before ending the stream, whatever the frame order.
    quinn-peer met this when it dropped its UP 0 halves after the handshake: the
    node lost its handshake."""
    async def main() -> None:
        async with node_and_peer() as t:
            peer = t.peer
            sid = peer.new_stream()
            shake = Handshake(Final(bytes([3]) * 32, 17), ())
            peer._quic.send_stream_data(sid, bytes([0]) + encode_message(shake.encode()))
            peer._quic.stop_stream(sid, 5)
            peer.transmit()  # one datagram: STOP_SENDING, then STREAM
            await peer.wait_for(lambda: sid in peer.resets())
            conn = t.node._live_conn(t.key)
            assert conn is not None and conn.peer_handshake == shake
            await wait_until(lambda: conn.up0 is None and conn.open_streams() == 0)
            assert sid not in peer.received, "the node wrote to a stream it was told to stop"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("overrides", "admitted"),
    [({}, True), ({"validators_only": True}, False), ({"non_validator_slots": 0}, False)],
)
def test_the_policy_decides_whether_non_validator_keys_get_past_verification(
    overrides: dict[str, object], admitted: bool
) -> None:
    vs, ids = make_set(1)
    n = node(vs, ids, 0, policy=ConnectionPolicy.preset("jamnp-s", **overrides))
    assert n.verifier.allow_non_validators is admitted
