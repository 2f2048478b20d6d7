"""JAMNP-S peer certificate and ALPN checks, as pure functions.

The simulator (aioquic sans-IO in virtual time) and the asyncio node both call
:func:`verify_peer` after HandshakeCompleted; a failure carries a distinct
application error code so the close reason is visible on the wire and in logs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from jamsim.core.errors import JamsimError
from jamsim.identity import alpn_for_genesis, alt_name


class RejectReason(enum.IntEnum):
    """Why a peer was rejected; the value is the QUIC application close code."""

    NO_CERTIFICATE = 0x101
    NOT_ED25519 = 0x102
    BAD_SAN = 0x103
    UNKNOWN_KEY = 0x104
    BAD_ALPN = 0x105

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class PeerVerificationError(JamsimError):
    """The peer failed a JAMNP-S check; ``reason.value`` is the close error code."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.label}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def error_code(self) -> int:
        return int(self.reason)


@dataclass(slots=True)
class PeerVerifier:
    """Checks a peer against the allowed key set (prev/current/next validators).

    ``allowed_keys`` is mutable through :meth:`set_allowed` because the node's Init
    task updates it on every validator-set change.
    """

    genesis_hash: bytes
    allowed_keys: frozenset[bytes] = field(default_factory=frozenset)
    allow_non_validators: bool = False
    accept_builder: bool = False

    def set_allowed(self, keys: Iterable[bytes]) -> None:
        self.allowed_keys = frozenset(keys)

    def acceptable_alpns(self) -> frozenset[str]:
        alpns = {alpn_for_genesis(self.genesis_hash)}
        if self.accept_builder:
            alpns.add(alpn_for_genesis(self.genesis_hash, builder=True))
        return frozenset(alpns)

    def verify(self, certificate: x509.Certificate | None, alpn: str | None) -> bytes:
        """Return the peer's 32-byte Ed25519 key or raise PeerVerificationError."""
        if alpn not in self.acceptable_alpns():
            raise PeerVerificationError(RejectReason.BAD_ALPN, f"ALPN {alpn!r}")
        key = certificate_key(certificate)
        if key not in self.allowed_keys and not self.allow_non_validators:
            raise PeerVerificationError(
                RejectReason.UNKNOWN_KEY, f"key {key.hex()[:16]}… is not a validator"
            )
        return key


def certificate_key(certificate: x509.Certificate | None) -> bytes:
    """Key and SAN checks that need no validator set."""
    if certificate is None:
        raise PeerVerificationError(RejectReason.NO_CERTIFICATE, "peer sent no certificate")
    public = certificate.public_key()
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise PeerVerificationError(RejectReason.NOT_ED25519, f"key type {type(public).__name__}")
    key = public.public_bytes_raw()
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise PeerVerificationError(RejectReason.BAD_SAN, "no subjectAltName") from None
    names = list(san.value)
    dns = san.value.get_values_for_type(x509.DNSName)
    if len(names) != 1 or len(dns) != 1:
        raise PeerVerificationError(
            RejectReason.BAD_SAN, f"expected exactly one DNS SAN, got {len(names)} names"
        )
    expected = alt_name(key)
    if dns[0] != expected:
        raise PeerVerificationError(
            RejectReason.BAD_SAN, f"SAN {dns[0]!r} != alt-name {expected!r}"
        )
    return key
