"""The certificate corpus at the pure verification layer: each entry's verdict.

Verified both from DER bytes and, where ``cryptography`` can load the certificate,
through the ``x509.Certificate`` aioquic hands over after a handshake.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from jamsim.identity import alpn_for_genesis
from jamsim.quic.der import parse_certificate
from jamsim.quic.verify import PeerVerificationError, PeerVerifier, RejectReason, certificate_key
from tests.quic.cert_corpus import CORPUS, build, ed25519_public


def _verdict(cert: bytes | x509.Certificate) -> RejectReason | None:
    try:
        certificate_key(cert)
    except PeerVerificationError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_verdict_from_der(name: str) -> None:
    spec, expected = CORPUS[name]
    der, key = build(spec)
    assert _verdict(der) is expected
    if expected is None:
        assert certificate_key(der) == ed25519_public(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_verdict_from_loaded_certificate(name: str) -> None:
    spec, expected = CORPUS[name]
    der, _ = build(spec)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        pytest.skip("cryptography cannot load it: aioquic answers bad_certificate itself")
    assert _verdict(cert) is expected


def test_empty_eku_is_what_made_cryptography_raise() -> None:
    """The regression: cryptography's accessor raises, jamsim's reader does not."""
    der, key = build(CORPUS["jam-impl-style"][0])
    cert = x509.load_der_x509_certificate(der)
    with pytest.raises(ValueError):
        _ = cert.extensions
    assert certificate_key(cert) == ed25519_public(key)  # type: ignore[arg-type]


def test_verifier_accepts_corpus_key_and_builder_alpn() -> None:
    der, key = build(CORPUS["san-critical"][0])
    public = ed25519_public(key)  # type: ignore[arg-type]
    verifier = PeerVerifier(bytes(32), frozenset({public}))
    assert verifier.verify(der, alpn_for_genesis(bytes(32))) == public
    assert verifier.verify(der, alpn_for_genesis(bytes(32), builder=True)) == public
    with pytest.raises(PeerVerificationError) as info:
        verifier.verify(der, alpn_for_genesis(b"\xff" * 32))
    assert info.value.reason is RejectReason.BAD_ALPN


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[: len(d) // 2],  # truncated
        lambda d: d + b"\x00",  # trailing garbage
        lambda d: b"\x31" + d[1:],  # outer SET instead of SEQUENCE
        lambda d: b"",
        lambda d: bytes(64),
    ],
)
def test_unparseable_certificate_is_a_clean_refusal(mangle: object) -> None:
    assert callable(mangle)
    der, _ = build(CORPUS["plain"][0])
    assert _verdict(mangle(der)) is RejectReason.BAD_CERTIFICATE


def test_reader_reports_each_san_name_in_order() -> None:
    der, key = build(CORPUS["two-sans"][0])
    parsed = parse_certificate(der)
    assert parsed.is_ed25519 and parsed.public_key == ed25519_public(key)  # type: ignore[arg-type]
    assert parsed.san is not None
    assert [tag for tag, _ in parsed.san] == [0x82, 0x82]
    assert parsed.san[1][1] == b"node.example"


def test_ed25519_corpus_certificates_are_byte_identical_across_builds() -> None:
    for name in ("plain", "jam-impl-style", "base32-alt-name"):
        assert build(CORPUS[name][0])[0] == build(CORPUS[name][0])[0]


def test_manager_refusals_map_to_their_own_close_codes() -> None:
    from jamsim.core.types import CloseReason
    from jamsim.quic.verify import refusal_code

    assert refusal_code(CloseReason.NO_SLOT.value) == RejectReason.NO_SLOT == 0x107
    assert refusal_code(CloseReason.NOT_IN_VALIDATOR_SET.value) == RejectReason.NOT_VALIDATOR
    assert refusal_code(CloseReason.DUPLICATE.value) == 0
