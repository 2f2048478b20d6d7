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
from cryptography.hazmat.primitives import serialization

from jamsim.core.errors import JamsimError
from jamsim.core.types import CloseReason
from jamsim.identity import alpn_for_genesis, alt_name
from jamsim.quic.der import DerError, dns_name, parse_certificate


class RejectReason(enum.IntEnum):
    """Why a peer was rejected; the value is the QUIC application close code."""

    NO_CERTIFICATE = 0x101
    NOT_ED25519 = 0x102
    BAD_SAN = 0x103
    UNKNOWN_KEY = 0x104
    BAD_ALPN = 0x105
    BAD_CERTIFICATE = 0x106
    NO_SLOT = 0x107  # a non-validator key, and every non-validator slot is taken
    NOT_VALIDATOR = 0x108  # a non-validator key, and the node takes validators only

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


#: The connection manager's refusal reasons (``CloseReason`` values) that a peer
#: should be able to tell apart on the wire; every other close is code 0.
_REFUSAL_CODES = {
    CloseReason.NO_SLOT.value: RejectReason.NO_SLOT,
    CloseReason.NOT_IN_VALIDATOR_SET.value: RejectReason.NOT_VALIDATOR,
}


def refusal_code(reason: str) -> int:
    """The QUIC application close code for a manager's close ``reason``."""
    code = _REFUSAL_CODES.get(reason)
    return int(code) if code is not None else 0


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
    task updates it on every validator-set change. The ``/builder`` ALPN variant is
    always acceptable: JAMNP-S has the acceptor permit it whoever dials (a validator
    may connect as a builder too), and a dialler only ever gets back an ALPN it
    offered itself.
    """

    genesis_hash: bytes
    allowed_keys: frozenset[bytes] = field(default_factory=frozenset)
    allow_non_validators: bool = False

    def set_allowed(self, keys: Iterable[bytes]) -> None:
        self.allowed_keys = frozenset(keys)

    def acceptable_alpns(self) -> frozenset[str]:
        return frozenset(
            (alpn_for_genesis(self.genesis_hash), alpn_for_genesis(self.genesis_hash, builder=True))
        )

    def verify(self, certificate: x509.Certificate | bytes | None, alpn: str | None) -> bytes:
        """Return the peer's 32-byte Ed25519 key or raise PeerVerificationError."""
        if alpn not in self.acceptable_alpns():
            raise PeerVerificationError(RejectReason.BAD_ALPN, f"ALPN {alpn!r}")
        key = certificate_key(certificate)
        if key not in self.allowed_keys and not self.allow_non_validators:
            raise PeerVerificationError(
                RejectReason.UNKNOWN_KEY, f"key {key.hex()[:16]}… is not a validator"
            )
        return key


def certificate_key(certificate: x509.Certificate | bytes | None) -> bytes:
    """Key and SAN checks that need no validator set; never raises anything else.

    Reads only SubjectPublicKeyInfo and the subjectAltName extension from the DER
    (:mod:`jamsim.quic.der`): validity dates, key usage, extended key usage (even
    an empty one, which ``cryptography`` refuses to parse), basic constraints,
    serial and any other extension, critical or not, are ignored, as JAMNP-S
    identifies a peer by its key alone.
    """
    if certificate is None:
        raise PeerVerificationError(RejectReason.NO_CERTIFICATE, "peer sent no certificate")
    try:
        der = (
            certificate
            if isinstance(certificate, bytes)
            else certificate.public_bytes(serialization.Encoding.DER)
        )
        parsed = parse_certificate(der)
    except (DerError, ValueError, TypeError) as exc:
        raise PeerVerificationError(
            RejectReason.BAD_CERTIFICATE, f"unparseable certificate: {exc}"
        ) from None
    if not parsed.is_ed25519:
        raise PeerVerificationError(
            RejectReason.NOT_ED25519, f"key algorithm OID {parsed.key_algorithm.hex()}"
        )
    key = parsed.public_key
    if parsed.san is None:
        raise PeerVerificationError(RejectReason.BAD_SAN, "no subjectAltName")
    if len(parsed.san) != 1:
        raise PeerVerificationError(
            RejectReason.BAD_SAN, f"expected exactly one DNS SAN, got {len(parsed.san)} names"
        )
    dns = dns_name(parsed.san[0])
    if dns is None:
        raise PeerVerificationError(RejectReason.BAD_SAN, "the subjectAltName is not a DNS name")
    expected = alt_name(key)
    if dns != expected:
        raise PeerVerificationError(
            RejectReason.BAD_SAN, f"SAN {dns[:60]!r} != alt-name {expected!r}"
        )
    return key
