"""The minimal DER reader: exact on well-formed input, DerError on anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.quic.der import DerError, parse_certificate, read_all, read_tlv
from jamsim.quic.verify import PeerVerificationError, certificate_key
from tests.quic.cert_corpus import CORPUS, build, seq, tlv

PLAIN, _ = build(CORPUS["plain"][0])


def test_short_and_long_lengths() -> None:
    assert read_tlv(tlv(0x04, b"ab")) == (read_tlv(b"\x04\x02ab")[0], 4)
    long = tlv(0x04, b"x" * 300)
    assert long[1:4] == b"\x82\x01\x2c"
    element, end = read_tlv(long)
    assert element.content == b"x" * 300 and end == len(long)
    assert [t.content for t in read_all(seq(tlv(1, b"\xff"), tlv(2, b"\x05"))[2:])] == [
        b"\xff",
        b"\x05",
    ]


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x30", b"\x30\x05ab", b"\x30\x80", b"\x30\x85\x00\x00\x00\x00\x01", b"\x1f\x01a"],
)
def test_malformed_headers_raise_der_error(raw: bytes) -> None:
    with pytest.raises(DerError):
        read_tlv(raw)


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_der_error(raw: bytes) -> None:
    with contextlib.suppress(DerError):
        parse_certificate(raw)


@settings(max_examples=400, derandomize=True)
@given(st.integers(0, len(PLAIN) - 1), st.integers(0, 255), st.integers(0, len(PLAIN)))
def test_mutated_certificate_gives_a_verdict_never_an_exception(
    at: int, byte: int, cut: int
) -> None:
    mutated = (PLAIN[:at] + bytes((byte,)) + PLAIN[at + 1 :])[: max(cut, 1)]
    with contextlib.suppress(PeerVerificationError):
        certificate_key(mutated)
