"""The synthetic chain (deterministic GP blocks) and a node's block store."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.errors import UsageError
from jamsim.protocol.limits import MAX_BLOCK_SIZE
from jamsim.protocol.messages import (
    BlockRequest,
    RequestDirection,
    decode_block,
)
from jamsim.protocol.stream_protocols import (
    CE128Client,
    CE128Server,
    ResetStream,
    SendData,
    StreamCompleted,
    split_kind,
)
from jamsim.traffic.chain import BlockStore, SyntheticChain, seeded_author
from jamsim.traffic.config import TrafficConfig


def test_same_seed_same_blocks_other_seed_other_hashes() -> None:
    a, b, c = (SyntheticChain(s, 6, block_size=2000) for s in (1, 1, 2))
    assert [a.block(s).encode() for s in range(5)] == [b.block(s).encode() for s in range(5)]
    assert a.hash_at(3) != c.hash_at(3)


@settings(max_examples=30)
@given(st.integers(0, 3), st.integers(0, 70_000), st.integers(1, 40))
def test_block_has_the_configured_size_and_links_to_its_parent(
    seed: int, size: int, slot: int
) -> None:
    chain = SyntheticChain(seed, 9, block_size=size)
    block = chain.block(slot)
    minimum = len(chain.block(0).encode())
    got = len(block.encode())
    if size < minimum + 6:  # no room for a preimage (service id, prefixes): the minimum
        assert got == minimum
    else:  # exact, or one byte short where the blob's length prefix grows a byte
        assert size - 1 <= got <= size
    assert block.header.parent == chain.hash_at(slot - 1)
    assert block.hash() == chain.hash_at(slot)
    assert block.header.slot == slot
    assert decode_block(block.encode()) == block


@settings(max_examples=20)
@given(st.integers(0, 3), st.integers(1, 1000), st.integers(0, 5000))
def test_default_announcement_size_is_what_real_nodes_announce(
    seed: int, slot: int, size: int
) -> None:
    """The model and the quic fidelity size UP 0 announcements from ``header_size``;
    real nodes send the chain's real header: by default the two agree."""
    header = SyntheticChain(seed, 12, block_size=size).block(slot).header
    assert TrafficConfig().announcement_bytes == len(header.encode()) + 36


def test_author_comes_from_the_given_function() -> None:
    chain = SyntheticChain(1, 6, author=lambda slot: (slot * 5) % 6)
    assert [chain.block(s).header.author_index for s in range(1, 7)] == [5, 4, 3, 2, 1, 0]
    draw = seeded_author(1, 6)
    assert {draw(s) for s in range(200)} == set(range(6))  # every validator authors sometimes


def test_block_size_above_the_cap_is_refused() -> None:
    with pytest.raises(UsageError):
        SyntheticChain(1, 6, block_size=MAX_BLOCK_SIZE + 1)


def _store(chain: SyntheticChain, slots: range) -> BlockStore:
    store = BlockStore(chain.genesis)
    for s in slots:
        store.add(chain.block(s))
    return store


def test_serve_descending_inclusive_walks_parents_up_to_max() -> None:
    chain = SyntheticChain(3, 6)
    store = _store(chain, range(1, 6))
    req = BlockRequest(chain.hash_at(4), RequestDirection.DESCENDING_INCLUSIVE, 3)
    assert [b.header.slot for b in store.serve(req) or ()] == [4, 3, 2]
    req = BlockRequest(chain.hash_at(2), RequestDirection.DESCENDING_INCLUSIVE, 10)
    assert [b.header.slot for b in store.serve(req) or ()] == [2, 1, 0]


def test_serve_ascending_exclusive_walks_children() -> None:
    chain = SyntheticChain(3, 6)
    store = _store(chain, range(1, 6))
    req = BlockRequest(chain.hash_at(0), RequestDirection.ASCENDING_EXCLUSIVE, 3)
    assert [b.header.slot for b in store.serve(req) or ()] == [1, 2, 3]
    req = BlockRequest(chain.hash_at(4), RequestDirection.ASCENDING_EXCLUSIVE, 3)
    assert [b.header.slot for b in store.serve(req) or ()] == [5]


def test_unsatisfiable_requests_get_none() -> None:
    chain = SyntheticChain(3, 6)
    store = _store(chain, range(1, 3))
    unknown = BlockRequest(chain.hash_at(7), RequestDirection.DESCENDING_INCLUSIVE, 1)
    assert store.serve(unknown) is None
    no_children = BlockRequest(chain.hash_at(2), RequestDirection.ASCENDING_EXCLUSIVE, 1)
    assert store.serve(no_children) is None
    assert store.best.header.slot == 2 and chain.hash_at(2) in store and len(store) == 3


def test_a_gap_stops_the_descending_walk() -> None:
    chain = SyntheticChain(3, 6)
    store = BlockStore(chain.genesis)
    store.add(chain.block(5))  # parent (slot 4) never received
    req = BlockRequest(chain.hash_at(5), RequestDirection.DESCENDING_INCLUSIVE, 4)
    assert [b.header.slot for b in store.serve(req) or ()] == [5]
    assert not store.add(chain.block(5))


def test_ce128_server_answers_from_the_store_and_resets_when_it_cannot() -> None:
    chain = SyntheticChain(4, 6, block_size=5000)
    store = _store(chain, range(1, 4))
    req = BlockRequest(chain.hash_at(3), RequestDirection.DESCENDING_INCLUSIVE, 2)
    client = CE128Client(req)
    wire = b"".join(a.data for a in client.open() if isinstance(a, SendData))
    _kind, rest = split_kind(wire)
    out = CE128Server(store.serve).receive(rest, end_stream=True)
    response = b"".join(a.data for a in out if isinstance(a, SendData))
    done = client.receive(response, end_stream=True)
    assert isinstance(done[-1], StreamCompleted)
    assert [b.hash() for b in done[-1].blocks] == [chain.hash_at(3), chain.hash_at(2)]
    bad = BlockRequest(chain.hash_at(9), RequestDirection.DESCENDING_INCLUSIVE, 2)
    wire = b"".join(a.data for a in CE128Client(bad).open() if isinstance(a, SendData))
    out = CE128Server(store.serve).receive(split_kind(wire)[1], end_stream=True)
    assert any(isinstance(a, ResetStream) for a in out)


def test_prune_forgets_old_blocks_but_keeps_genesis_and_recent_ones() -> None:
    chain = SyntheticChain(3, 6)
    store = _store(chain, range(1, 10))
    assert store.prune(6) == 5
    assert len(store) == 5 and chain.hash_at(0) in store and chain.hash_at(5) not in store
    old = BlockRequest(chain.hash_at(3), RequestDirection.DESCENDING_INCLUSIVE, 1)
    assert store.serve(old) is None  # pruned: answered with a reset, like an unknown block
    recent = BlockRequest(chain.hash_at(9), RequestDirection.DESCENDING_INCLUSIVE, 9)
    assert [b.header.slot for b in store.serve(recent) or ()] == [9, 8, 7, 6]
    assert store.prune(6) == 0 and store.best.header.slot == 9
