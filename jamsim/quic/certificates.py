"""Self-signed JAMNP-S X.509 certificates built from a validator's Ed25519 seed.

JAMNP-S identifies a peer by the Ed25519 key in its TLS certificate, whose single
DNS subjectAltName must be ``alt_name(key)``. Generating a certificate costs a
signature plus DER encoding, so results are cached per seed (a 1023-node run would
otherwise spend most of its set-up time here).
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from jamsim.identity import ValidatorIdentity, alt_name

#: Fixed validity window: certificates are identities, not time-limited credentials,
#: and a fixed window keeps the DER bytes deterministic for a given seed.
_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class NodeCertificate:
    """A certificate together with the private key aioquic needs to sign with it."""

    certificate: x509.Certificate
    private_key: ed25519.Ed25519PrivateKey
    public_key: bytes


def build_certificate(
    private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    san_names: tuple[str, ...],
) -> x509.Certificate:
    """Self-sign a certificate for ``private_key`` with exactly ``san_names`` as DNS SANs.

    Exposed separately so tests can build deliberately wrong certificates (bad SAN,
    several SANs, an ECDSA key) with the same shape as the real ones.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jamsim")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
    )
    if san_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san_names]),
            critical=False,
        )
    digest = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private_key, digest)


@functools.lru_cache(maxsize=4096)
def _certificate_for_seed(seed: bytes) -> NodeCertificate:
    private_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = private_key.public_key().public_bytes_raw()
    cert = build_certificate(private_key, (alt_name(public),))
    return NodeCertificate(cert, private_key, public)


def certificate_for(identity: ValidatorIdentity) -> NodeCertificate:
    """The (cached) JAMNP-S certificate for ``identity``."""
    return _certificate_for_seed(bytes(identity.seed))
