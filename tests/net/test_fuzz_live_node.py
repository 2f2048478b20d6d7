"""Property-based fuzzing of every stream handler and the framing, against a LIVE node.

One node and one raw aioquic peer (a validator key, so the node serves it) run
in an event loop on a background thread for the whole module; hypothesis drives
the peer from the test thread. Each example opens a batch of streams in a shuffled
order (lower ids may go first or last), each with a random kind (UP 0, CE 128,
unassigned UP and CE kinds, none at all) and a random body (valid messages,
garbage, truncated messages, size prefixes past the caps), split at random points,
then ended by FIN, by a reset at a random chunk, or left open. The node also
asks the peer for blocks and gets hostile answers (its CE 128 client side). One
stream is one hostile input.

After every example the same connection must still serve a proper CE 128
request (a barrier: the node has processed everything before it). At the end:
no exception escaped (the node's internal-error counter and the loop's exception
handler are empty, the log has no ERROR and no traceback), the connection's
buffers and open streams stay under their caps, and an honest second node is
served. The summary line quotes how many hostile inputs ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from aioquic.asyncio import serve
from aioquic.quic.configuration import QuicConfiguration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jamsim.identity import alpn_for_genesis, preferred_initiator
from jamsim.net.node import Node
from jamsim.protocol.errors import PeerProtocolError
from jamsim.protocol.framing import encode_message
from jamsim.protocol.limits import MAX_STREAMS_PER_CONNECTION, MAX_UP0_MESSAGE
from jamsim.protocol.messages import (
    Announcement,
    Block,
    BlockRequest,
    Final,
    Handshake,
    RequestDirection,
)
from jamsim.quic.certificates import certificate_for
from tests.net.peers import RawPeer, client_config, raw_peer, wait_until
from tests.net.test_node import BLOCK, GENESIS, make_set, node

pytestmark = [pytest.mark.real, pytest.mark.slow]

T = TypeVar("T")
EXAMPLES = 700
GOOD_REQUEST = BlockRequest(BLOCK.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 1)
GOOD_RESPONSE = encode_message(BLOCK.encode())
VALID_BODIES = [
    encode_message(Handshake(Final(GENESIS, 0), ()).encode()),
    encode_message(Announcement(BLOCK.header, Final(GENESIS, 0)).encode()),
    encode_message(GOOD_REQUEST.encode()),
    encode_message(BlockRequest(bytes(32), RequestDirection.ASCENDING_EXCLUSIVE, 9).encode()),
]


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    node: Node
    good: Node
    peer: RawPeer
    peer_key: bytes
    loop_errors: list[dict[str, Any]]
    log: list[logging.LogRecord]
    inputs: int = 0
    examples: int = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coro, timeout), self.loop
        ).result()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    vs, ids = make_set(3)
    stack = contextlib.AsyncExitStack()
    records: list[logging.LogRecord] = []
    handler = _Recorder(records)
    logging.getLogger().addHandler(handler)

    async def up() -> Harness:
        a = node(vs, ids, 0, request_timeout=1.0)
        good = node(vs, ids, 2)
        await a.start()
        await good.start()
        peer = await stack.enter_async_context(
            raw_peer(a.port, client_config(identity=ids[1]))
        )
        await wait_until(lambda: a.manager.live_connection(ids[1].public_key) is not None)
        return Harness(loop, a, good, peer, ids[1].public_key, errors, records)

    h = asyncio.run_coroutine_threadsafe(up(), loop).result(30)
    try:
        yield h
    finally:
        async def down() -> None:
            await stack.aclose()
            await h.node.stop()
            await h.good.stop()

        asyncio.run_coroutine_threadsafe(down(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        logging.getLogger().removeHandler(handler)


class _Recorder(logging.Handler):
    """Keeps every WARNING-or-worse record the node logs during the module."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


kinds = st.one_of(
    st.sampled_from([0, 128]),
    st.integers(1, 127),
    st.integers(129, 255),
    st.none(),  # no kind byte at all
)
bodies = st.one_of(
    st.sampled_from(VALID_BODIES),
    st.binary(max_size=96),
    st.sampled_from(VALID_BODIES).flatmap(
        lambda b: st.integers(0, len(b) - 1).map(lambda n: b[:n])  # truncated
    ),
    st.integers(MAX_UP0_MESSAGE - 4, 0xFFFFFFFF).map(
        lambda n: n.to_bytes(4, "little") + b"x" * 16  # size prefix past every cap
    ),
    st.lists(st.sampled_from(VALID_BODIES), min_size=2, max_size=3).map(b"".join),
)


@dataclass(frozen=True)
class StreamScript:
    data: bytes
    cuts: tuple[int, ...]
    ending: str  # "fin" | "reset" | "open"
    reset_at: int


@st.composite
def stream_scripts(draw: st.DrawFn) -> StreamScript:
    kind = draw(kinds)
    data = (b"" if kind is None else bytes([kind])) + draw(bodies)
    cuts = tuple(sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=4)))))
    ending = draw(st.sampled_from(["fin", "fin", "reset", "open"]))
    return StreamScript(data, cuts, ending, draw(st.integers(0, len(cuts) + 1)))


@st.composite
def responses(draw: st.DrawFn) -> StreamScript:
    """A CE 128 response: blocks (valid, garbage, truncated, oversized), FIN or reset."""
    data = draw(st.one_of(
        st.just(encode_message(BLOCK.encode())),
        bodies,
        st.lists(st.just(encode_message(BLOCK.encode())), min_size=2, max_size=3).map(b"".join),
    ))
    cuts = tuple(sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=3)))))
    ending = draw(st.sampled_from(["fin", "fin", "reset"]))
    return StreamScript(data, cuts, ending, draw(st.integers(0, len(cuts) + 1)))


def _chunks(script: StreamScript) -> list[bytes]:
    points = [0, *script.cuts, len(script.data)]
    return [script.data[a:b] for a, b in itertools.pairwise(points)]


async def _play(peer: RawPeer, scripts: list[StreamScript], order: list[int]) -> list[int]:
    """Play the scripts; returns the streams left open (the caller resets them)."""
    sids = [peer.new_stream() for _ in scripts]  # ids fixed now, opened in `order`
    for i in order:
        script, sid = scripts[i], sids[i]
        chunks = _chunks(script)
        for n, chunk in enumerate(chunks):
            if script.ending == "reset" and n == script.reset_at:
                break
            last = n == len(chunks) - 1
            with contextlib.suppress(ValueError, AssertionError):
                peer.send(sid, chunk, end=last and script.ending == "fin")
        if script.ending == "reset":
            with contextlib.suppress(ValueError, AssertionError):
                peer.reset(sid, 7)
        await asyncio.sleep(0)
    return [sid for sid, s in zip(sids, scripts, strict=True) if s.ending == "open"]


async def _close_left_open(peer: RawPeer, sids: list[int]) -> None:
    """Give back the stream credit: the node grants one new stream per finished one."""
    for sid in sids:
        with contextlib.suppress(ValueError, AssertionError):
            peer.reset(sid, 8)


REQUEST_BYTES = 1 + 4 + 37  # kind, size prefix, request


async def _answer_node_requests(h: Harness, replies: list[StreamScript]) -> None:
    """The node asks the peer for blocks; the peer answers each with hostile bytes.

    Exercises the node's CE 128 client side: whatever comes back, the request ends
    with blocks or a PeerProtocolError, never another exception.
    """
    peer = h.peer
    for reply in replies:
        seen = set(peer.received)
        task = asyncio.ensure_future(h.node.request_blocks(h.peer_key, GOOD_REQUEST, 5.0))

        def opened(seen: set[int] = seen) -> list[int]:
            return [sid for sid, data in peer.received.items()
                    if sid % 4 == 1 and sid not in seen and len(data) >= REQUEST_BYTES]

        await peer.wait_for(lambda: bool(opened()))
        sid = opened()[0]
        chunks = _chunks(reply)
        for n, chunk in enumerate(chunks):
            if reply.ending == "reset" and n == reply.reset_at:
                break
            with contextlib.suppress(ValueError, AssertionError):
                peer.send(sid, chunk, end=n == len(chunks) - 1 and reply.ending != "reset")
        if reply.ending == "reset":
            with contextlib.suppress(ValueError, AssertionError):
                peer.reset(sid, 9)
        try:
            blocks = await task
        except PeerProtocolError:
            pass
        else:
            assert all(isinstance(b, Block) for b in blocks)
        peer.received.pop(sid, None)


async def _barrier(peer: RawPeer) -> None:
    """A proper request on the same connection is answered: the node kept up."""
    sid = peer.new_stream()
    peer.send(sid, bytes([128]) + encode_message(GOOD_REQUEST.encode()), end=True)
    try:
        await peer.wait_for(lambda: bytes(peer.received.get(sid, b"")) == GOOD_RESPONSE)
    except TimeoutError:
        raise AssertionError(f"no answer: close={peer.close_event()} "
                             f"got={bytes(peer.received.get(sid, b''))[:40]!r}") from None
    peer.received.pop(sid, None)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    st.lists(stream_scripts(), min_size=8, max_size=24).flatmap(
        lambda s: st.tuples(st.just(s), st.permutations(range(len(s))))
    ),
    st.lists(responses(), max_size=2),
)
def test_hostile_streams_never_break_a_live_node(
    harness: Harness, batch: tuple[list[StreamScript], list[int]], replies: list[StreamScript]
) -> None:
    scripts, order = batch
    left_open = harness.run(_play(harness.peer, scripts, list(order)))
    harness.run(_answer_node_requests(harness, replies))
    harness.run(_barrier(harness.peer))
    harness.run(_close_left_open(harness.peer, left_open))
    harness.inputs += len(scripts) + len(replies)
    harness.examples += 1
    assert not harness.node.internal_errors
    assert harness.node.manager.live_connection(harness.peer_key) is not None


def test_after_the_fuzzing_the_node_is_sound(harness: Harness) -> None:
    a = harness.node
    print(f"\nfuzzed a live node with {harness.inputs} hostile streams "
          f"in {harness.examples} examples")
    assert harness.inputs >= 10_000
    assert not a.internal_errors and not harness.loop_errors
    conns = list(a._conns.values())
    assert all(c.open_streams() <= MAX_STREAMS_PER_CONNECTION for c in conns)
    assert all(c.buffered_bytes() <= MAX_UP0_MESSAGE for c in conns)
    assert all(len(c._dead) <= MAX_STREAMS_PER_CONNECTION for c in conns)
    assert a.misbehaviours  # the node did see (and reset) bad streams

    async def honest() -> tuple[object, ...]:
        await wait_until(lambda: harness.good.key in a.connected_peers())
        return await harness.good.request_blocks(a.key, GOOD_REQUEST)

    assert harness.run(honest()) == (BLOCK,)
    assert harness.log, "the node logged no misbehaviour at all"
    assert not [r for r in harness.log if r.levelno >= logging.ERROR or r.exc_info]


# ----------------------------------------------------- the node as the initiator


@dataclass
class InitiatorHarness:
    """A node that dialled a hostile acceptor (so the node's UP 0 is the initiator's)."""

    loop: asyncio.AbstractEventLoop
    node: Node
    peer_key: bytes
    servers: list[RawPeer]
    inputs: int = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coro, timeout), self.loop
        ).result()


@pytest.fixture(scope="module")
def dialled() -> Iterator[InitiatorHarness]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    vs, ids = make_set(2)
    keys = [i.public_key for i in ids]
    us = keys.index(preferred_initiator(keys[0], keys[1]))  # the side that dials at once
    them = 1 - us
    servers: list[RawPeer] = []

    def protocol(*args: Any, **kwargs: Any) -> RawPeer:
        peer = RawPeer(*args, **kwargs)
        servers.append(peer)
        return peer

    async def up() -> tuple[InitiatorHarness, Any]:
        cert = certificate_for(ids[them])
        config = QuicConfiguration(is_client=False, alpn_protocols=[alpn_for_genesis(GENESIS)],
                                   idle_timeout=10.0)
        config.certificate, config.private_key = cert.certificate, cert.private_key
        server = await serve("127.0.0.1", vs[them].address.port, configuration=config,
                             create_protocol=protocol)
        a = node(vs, ids, us, request_timeout=1.0)
        await a.start()
        await wait_until(lambda: a._live_conn(keys[them]) is not None and bool(servers))
        return InitiatorHarness(loop, a, keys[them], servers), server

    h, server = asyncio.run_coroutine_threadsafe(up(), loop).result(30)
    try:
        yield h
    finally:
        async def down() -> None:
            await h.node.stop()
            server.close()

        asyncio.run_coroutine_threadsafe(down(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _hostile_acceptor(h: InitiatorHarness, reply: StreamScript,
                            opens: list[StreamScript]) -> None:
    conn = h.node._live_conn(h.peer_key)
    assert conn is not None, "the node lost its connection to the acceptor"
    conn.open_up0()  # a fresh UP 0 from the node for this example
    h.node._transmit(conn)
    up0 = conn.up0
    assert up0 is not None
    peer = h.servers[-1]
    await peer.wait_for(lambda: len(peer.received.get(up0, b"")) > 1)
    chunks = _chunks(reply)
    for n, chunk in enumerate(chunks):
        if reply.ending == "reset" and n == reply.reset_at:
            break
        with contextlib.suppress(ValueError, AssertionError):
            peer.send(up0, chunk, end=n == len(chunks) - 1 and reply.ending == "fin")
    if reply.ending == "reset":
        with contextlib.suppress(ValueError, AssertionError):
            peer.reset(up0, 6)
    left_open = await _play(peer, opens, list(range(len(opens))))
    await _barrier(peer)
    await _close_left_open(peer, left_open)
    peer.received.pop(up0, None)


@settings(max_examples=250, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.sampled_from(VALID_BODIES[:2]).flatmap(
            lambda b: st.lists(st.sampled_from(VALID_BODIES[:2]), max_size=3).map(
                lambda rest: b + b"".join(rest))),
        bodies,
    ).flatmap(lambda data: st.builds(
        StreamScript, st.just(data),
        st.lists(st.integers(0, len(data)), max_size=3).map(lambda c: tuple(sorted(set(c)))),
        st.sampled_from(["fin", "reset", "open"]), st.integers(0, 4))),
    st.lists(stream_scripts(), max_size=6),
)
def test_a_hostile_acceptor_never_breaks_the_dialling_node(
    dialled: InitiatorHarness, reply: StreamScript, opens: list[StreamScript]
) -> None:
    dialled.run(_hostile_acceptor(dialled, reply, opens))
    dialled.inputs += 1 + len(opens)
    assert not dialled.node.internal_errors


def test_after_the_acceptor_fuzzing_the_dialling_node_is_sound(
    dialled: InitiatorHarness,
) -> None:
    print(f"\nfuzzed a dialling node with {dialled.inputs} hostile streams")
    assert dialled.inputs >= 250
    conn = dialled.node._live_conn(dialled.peer_key)
    assert conn is not None and not dialled.node.internal_errors
    assert conn.open_streams() <= MAX_STREAMS_PER_CONNECTION
    assert conn.buffered_bytes() <= MAX_UP0_MESSAGE
