"""Identity: alt-name vectors and round trips, initiator rule, ALPN, metadata, grid."""

from __future__ import annotations

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.identity import (
    ALT_NAME_ALPHABET,
    IdentityError,
    PeerAddress,
    ValidatorIdentity,
    ValidatorSet,
    alpn_for_genesis,
    alt_name,
    decode_metadata,
    encode_metadata,
    is_preferred_initiator,
    key_from_alt_name,
    parse_alpn,
    preferred_initiator,
)

keys32 = st.binary(min_size=32, max_size=32)


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        (b"\x00" * 32, "e3r2oc62zwfj3crnuifuvsxvbtlzetk4o5qyhetkhagsc2fgl2oka"),
        (b"\x01" * 32, "ekech6otoji4lz6lk3olyd5wlstspwe4x5affrnm6udcda26bpdxa"),
    ],
)
def test_alt_name_matches_spec_vectors(seed: bytes, expected: str) -> None:
    key = bytes(nacl.signing.SigningKey(seed).verify_key)
    assert alt_name(key) == expected
    assert ValidatorIdentity(seed).alt_name == expected
    assert key_from_alt_name(expected) == key


@given(keys32)
def test_alt_name_round_trips_for_any_key(key: bytes) -> None:
    name = alt_name(key)
    assert len(name) == 53 and name[0] == "e"
    assert set(name[1:]) <= set(ALT_NAME_ALPHABET)
    assert key_from_alt_name(name) == key


@given(st.text(max_size=60))
def test_malformed_alt_names_are_rejected_or_round_trip(name: str) -> None:
    try:
        key = key_from_alt_name(name)
    except IdentityError:
        return
    assert alt_name(key) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "e" * 53,  # 'e' is in the alphabet but the top char overflows 256 bits
        "x" + "a" * 52,
        "e" + "a" * 51,
        "e" + "a" * 53,
        "e" + "a" * 51 + "1",
        "e" + "a" * 51 + "q",  # value 16 in the last slot: 257th bit set
        "E" + "a" * 52,
    ],
)
def test_specific_malformed_alt_names(name: str) -> None:
    with pytest.raises(IdentityError):
        key_from_alt_name(name)


@given(keys32, keys32)
def test_preferred_initiator_is_symmetric_and_one_of_the_two(a: bytes, b: bytes) -> None:
    if a == b:
        with pytest.raises(IdentityError):
            preferred_initiator(a, b)
        return
    p = preferred_initiator(a, b)
    assert p in (a, b)
    assert preferred_initiator(b, a) == p
    assert is_preferred_initiator(a, b) != is_preferred_initiator(b, a)


def test_preferred_initiator_formula_cases() -> None:
    low = bytes(31) + b"\x00"
    low2 = bytes(30) + b"\x01\x00"
    high = bytes(31) + b"\x80"
    # same top bit: bit xor bit = 0, so a wins iff a < b: the smaller key dials
    assert preferred_initiator(low, low2) == low
    assert preferred_initiator(low2, low) == low
    # different top bits: a wins iff NOT a < b: the larger key dials
    assert preferred_initiator(low, high) == high
    assert preferred_initiator(high, low) == high


def test_alpn() -> None:
    genesis = bytes.fromhex("deadbeef") + bytes(28)
    assert alpn_for_genesis(genesis) == "jamnp-s/0/deadbeef"
    assert alpn_for_genesis(genesis, builder=True) == "jamnp-s/0/deadbeef/builder"
    assert parse_alpn("jamnp-s/0/deadbeef") == ("deadbeef", False)
    assert parse_alpn("jamnp-s/0/deadbeef/builder") == ("deadbeef", True)
    for bad in ("jamnp-s/1/deadbeef", "h3", "jamnp-s/0/DEADBEEF", "jamnp-s/0/deadbe",
                "jamnp-s/0/deadbeef/other", "jamnp-s/0/deadbeef/builder/x"):
        with pytest.raises(IdentityError):
            parse_alpn(bad)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "2001:db8::7", "10.1.2.3"])
def test_metadata_round_trip(host: str) -> None:
    address = PeerAddress(host, 40123)
    blob = encode_metadata(address, b"extra")
    assert len(blob) == 128
    assert blob[16:18] == (40123).to_bytes(2, "little")
    assert decode_metadata(blob) == address


def test_ipv4_metadata_is_ipv4_mapped() -> None:
    blob = encode_metadata(PeerAddress("127.0.0.1", 1))
    assert blob[:16] == bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])


def test_bad_addresses() -> None:
    with pytest.raises(IdentityError):
        PeerAddress("not-an-ip", 1)
    with pytest.raises(IdentityError):
        PeerAddress("::1", 70000)
    with pytest.raises(IdentityError):
        decode_metadata(b"short")


def test_dev_keys_are_deterministic_and_distinct() -> None:
    a = ValidatorSet.dev(10, seed=3)
    b = ValidatorSet.dev(10, seed=3)
    c = ValidatorSet.dev(10, seed=4)
    assert a.keys() == b.keys()
    assert set(a.keys()).isdisjoint(c.keys())
    assert len(set(a.keys())) == 10


def test_grid_neighbours() -> None:
    vs = ValidatorSet.dev(10)  # width floor(sqrt(10)) = 3
    assert vs.width == 3
    # index 4: row 1 (3,4,5), column 1 (1,4,7)
    assert vs.grid_neighbours(4) == [1, 3, 5, 7]
    assert vs.are_grid_neighbours(4, 7) and not vs.are_grid_neighbours(4, 8)
    for i in range(10):
        for j in vs.grid_neighbours(i):
            assert i in vs.grid_neighbours(j)


def test_validator_set_lookups_and_errors() -> None:
    vs = ValidatorSet.dev(4)
    assert vs.index_of(vs[2].key) == 2
    assert vs.by_key(b"x" * 32) is None
    assert vs[1].name == "v1"
    with pytest.raises(KeyError):
        vs.index_of(b"x" * 32)
    with pytest.raises(IdentityError):
        ValidatorSet([vs[0], vs[0]])
