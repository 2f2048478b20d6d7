"""A minimal DER reader for the two things JAMNP-S needs from a peer certificate.

JAMNP-S identifies a peer by the Ed25519 key in its certificate and the single
DNS subjectAltName derived from it; nothing else in the certificate matters
(validity dates, key usage, extended key usage, basic constraints, serial).
``cryptography``'s high-level accessors parse *every* extension when one is
asked for and raise on any they dislike (an empty ExtendedKeyUsage, which one JAM
implementation emits, is enough), so a certificate that is perfectly good for
JAMNP-S could not be read through them. This module walks the DER itself and
looks only at SubjectPublicKeyInfo and the subjectAltName extension.

Every malformation raises :class:`DerError`; nothing else escapes. The reader is
bounded by the input: lengths are checked against the remaining bytes before any
slice, and nesting depth is that of the fixed X.509 path walked here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ED25519_OID",
    "SAN_OID",
    "DerError",
    "ParsedCertificate",
    "Tlv",
    "dns_name",
    "parse_certificate",
    "read_all",
    "read_tlv",
]

ED25519_OID = bytes.fromhex("2b6570")  # 1.3.101.112
SAN_OID = bytes.fromhex("551d11")  # 2.5.29.17

_SEQUENCE = 0x30
_OID = 0x06
_BOOLEAN = 0x01
_OCTET_STRING = 0x04
_BIT_STRING = 0x03
_INTEGER = 0x02
_EXPLICIT_0 = 0xA0  # tbsCertificate.version
_EXPLICIT_3 = 0xA3  # tbsCertificate.extensions
_DNS_NAME = 0x82  # GeneralName dNSName [2] IMPLICIT IA5String


class DerError(ValueError):
    """The bytes are not the DER structure expected at this point."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One DER element: its tag byte and its content bytes."""

    tag: int
    content: bytes


@dataclass(frozen=True, slots=True)
class ParsedCertificate:
    """What JAMNP-S reads from a certificate.

    ``key_algorithm`` is the SubjectPublicKeyInfo algorithm OID (DER content
    bytes); ``public_key`` the subjectPublicKey bits (for Ed25519, the 32-byte
    key). ``san`` is ``None`` when the certificate has no subjectAltName
    extension, else one ``(tag, value)`` per GeneralName in order.
    """

    key_algorithm: bytes
    public_key: bytes
    san: tuple[tuple[int, bytes], ...] | None

    @property
    def is_ed25519(self) -> bool:
        return self.key_algorithm == ED25519_OID and len(self.public_key) == 32


def read_tlv(data: bytes, pos: int = 0) -> tuple[Tlv, int]:
    """Read one element at ``pos``; return it and the position after it."""
    if pos + 2 > len(data):
        raise DerError("truncated element header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not used in certificates")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DerError(f"unsupported length encoding 0x{first:02x}")
        if pos + count > len(data):
            raise DerError("truncated length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError(f"element of {length} bytes overruns its container")
    return Tlv(tag, bytes(data[pos:end])), end


def read_all(data: bytes) -> list[Tlv]:
    """Every element of a constructed value's content, in order."""
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        tlv, pos = read_tlv(data, pos)
        out.append(tlv)
    return out


def _expect(tlv: Tlv, tag: int, what: str) -> bytes:
    if tlv.tag != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, got 0x{tlv.tag:02x}")
    return tlv.content


def _public_key_info(spki: Tlv) -> tuple[bytes, bytes]:
    parts = read_all(_expect(spki, _SEQUENCE, "subjectPublicKeyInfo"))
    if len(parts) != 2:
        raise DerError("subjectPublicKeyInfo: expected algorithm and key")
    algorithm = read_all(_expect(parts[0], _SEQUENCE, "algorithm"))
    if not algorithm:
        raise DerError("algorithm identifier is empty")
    oid = _expect(algorithm[0], _OID, "algorithm OID")
    bits = _expect(parts[1], _BIT_STRING, "subjectPublicKey")
    if not bits or bits[0] != 0:
        raise DerError("subjectPublicKey has unused bits")
    return oid, bits[1:]


def _san_from_extensions(wrapper: Tlv) -> tuple[tuple[int, bytes], ...] | None:
    extensions = read_all(_expect(wrapper, _EXPLICIT_3, "extensions"))
    if len(extensions) != 1:
        raise DerError("extensions: expected one SEQUENCE")
    san: tuple[tuple[int, bytes], ...] | None = None
    for ext in read_all(_expect(extensions[0], _SEQUENCE, "extensions")):
        fields = read_all(_expect(ext, _SEQUENCE, "extension"))
        if len(fields) not in (2, 3):
            raise DerError("extension: expected id, [critical,] value")
        if _expect(fields[0], _OID, "extension id") != SAN_OID:
            continue  # every other extension is irrelevant to JAMNP-S
        if len(fields) == 3:
            _expect(fields[1], _BOOLEAN, "extension critical flag")
        if san is not None:
            raise DerError("subjectAltName extension appears twice")
        value = _expect(fields[-1], _OCTET_STRING, "extension value")
        (names,) = _single(read_all(value), "subjectAltName")
        san = tuple((n.tag, n.content) for n in read_all(_expect(names, _SEQUENCE, "names")))
    return san


def _single(items: list[Tlv], what: str) -> tuple[Tlv]:
    if len(items) != 1:
        raise DerError(f"{what}: expected one element, got {len(items)}")
    return (items[0],)


def parse_certificate(der: bytes) -> ParsedCertificate:
    """Read SubjectPublicKeyInfo and subjectAltName from an X.509 certificate."""
    cert, end = read_tlv(der)
    if end != len(der):
        raise DerError("trailing bytes after the certificate")
    top = read_all(_expect(cert, _SEQUENCE, "certificate"))
    if len(top) != 3:
        raise DerError("certificate: expected tbsCertificate, algorithm, signature")
    tbs = read_all(_expect(top[0], _SEQUENCE, "tbsCertificate"))
    i = 1 if tbs and tbs[0].tag == _EXPLICIT_0 else 0
    # serial, signature algorithm, issuer, validity, subject, then the key.
    if len(tbs) < i + 6:
        raise DerError("tbsCertificate is too short")
    _expect(tbs[i], _INTEGER, "serialNumber")
    oid, key = _public_key_info(tbs[i + 5])
    san = None
    for extra in tbs[i + 6 :]:
        if extra.tag == _EXPLICIT_3:
            san = _san_from_extensions(extra)
    return ParsedCertificate(oid, key, san)


def dns_name(tag_value: tuple[int, bytes]) -> str | None:
    """The text of a dNSName GeneralName, or None for any other kind (or bad bytes)."""
    tag, value = tag_value
    if tag != _DNS_NAME:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None
