"""A corpus of peer certificates in the styles other JAM implementations produce.

Every certificate is built here, from DER up, so each oddity is exactly the one
named (``cryptography``'s builder refuses some of them, e.g. an empty
ExtendedKeyUsage or a 32-byte serial). Keys are derived deterministically: Ed25519
and ECDSA from fixed integers, RSA from primes drawn with a seeded generator.
Ed25519 signatures are deterministic, so those certificates are byte-identical on
every run; ECDSA and RSA signatures are randomised but no verdict depends on them.

Each entry carries the verdict JAMNP-S requires: ``None`` (accept: only the
Ed25519 key and its single DNS alt-name matter) or the :class:`RejectReason`.
"""

from __future__ import annotations

import base64
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from jamsim.identity import alt_name
from jamsim.quic.verify import RejectReason

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# ------------------------------------------------------------------ DER writer


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        head = bytes((n,))
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes((0x80 | len(raw),)) + raw
    return bytes((tag,)) + head + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray((40 * parts[0] + parts[1],))
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def integer(value: bytes) -> bytes:
    """A positive INTEGER from big-endian magnitude bytes (a 0 byte keeps it positive)."""
    if value[0] & 0x80:
        value = b"\x00" + value
    return tlv(0x02, value)


def utc_time(text: str) -> bytes:
    return tlv(0x17, text.encode())


def name(common_name: str) -> bytes:
    return seq(tlv(0x31, seq(oid("2.5.4.3"), tlv(0x0C, common_name.encode()))))


def extension(ext_oid: str, value: bytes, *, critical: bool = False) -> bytes:
    flag = tlv(0x01, b"\xff") if critical else b""
    return seq(oid(ext_oid), flag, tlv(0x04, value))


def san_extension(*general_names: bytes, critical: bool = False) -> bytes:
    return extension("2.5.29.17", seq(*general_names), critical=critical)


def dns(text: str) -> bytes:
    return tlv(0x82, text.encode())


EMPTY_EKU = extension("2.5.29.37", seq())
EKU_SERVER_CLIENT = extension("2.5.29.37", seq(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2")))
CA_TRUE = extension("2.5.29.19", seq(tlv(0x01, b"\xff")), critical=True)
KEY_USAGE = extension("2.5.29.15", tlv(0x03, b"\x07\x80"), critical=True)
UNKNOWN_CRITICAL = extension("1.3.6.1.4.1.55555.1", tlv(0x04, b"jam"), critical=True)
UNKNOWN_PLAIN = extension("1.3.6.1.4.1.55555.2", tlv(0x0C, b"x" * 300))
SUBJECT_KEY_ID = extension("2.5.29.14", tlv(0x04, bytes(range(20))))

# ------------------------------------------------------------------ keys


def ed25519_key(index: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([index + 1]) * 32)


def ed25519_public(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


@functools.cache
def ecdsa_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(0x4A4D_5349_4D, ec.SECP256R1())


def _probable_prime(rng: random.Random, bits: int) -> int:
    small = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if any(n % p == 0 for p in small):
            continue
        d, r = n - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(24):
            x = pow(rng.randrange(2, n - 1), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key from primes drawn with a fixed seed."""
    rng = random.Random(20261206)
    e = 65537
    while True:
        p, q = _probable_prime(rng, 1024), _probable_prime(rng, 1024)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    public = rsa.RSAPublicNumbers(e, p * q)
    private = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public
    )
    return private.private_key()


def _spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sign(key: PrivateKey, tbs: bytes) -> tuple[bytes, bytes]:
    """(signatureAlgorithm, signature) for ``tbs``."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return seq(oid("1.3.101.112")), key.sign(tbs)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return seq(oid("1.2.840.10045.4.3.2")), key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = seq(oid("1.2.840.113549.1.1.11"), tlv(0x05, b""))
    return algorithm, key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class CertSpec:
    """How to build one corpus certificate; every field defaults to the plain shape."""

    key: Callable[[], PrivateKey] = lambda: ed25519_key(0)
    serial: bytes = b"\x01"
    not_before: str = "200101000000Z"
    not_after: str = "491231235959Z"
    before_san: tuple[bytes, ...] = ()
    after_san: tuple[bytes, ...] = ()
    san: Callable[[bytes], bytes | None] = lambda k: san_extension(dns(alt_name(k)))


def build(spec: CertSpec) -> tuple[bytes, PrivateKey]:
    """DER of the certificate ``spec`` describes, and its private key."""
    key = spec.key()
    raw_key = ed25519_public(key) if isinstance(key, ed25519.Ed25519PrivateKey) else bytes(32)
    san = spec.san(raw_key)
    exts = [*spec.before_san, *([san] if san is not None else []), *spec.after_san]
    algorithm, _ = _sign(key, b"")  # the algorithm identifier does not depend on data
    tbs = seq(
        tlv(0xA0, integer(b"\x02")),
        integer(spec.serial),
        algorithm,
        name("jam-node"),
        seq(utc_time(spec.not_before), utc_time(spec.not_after)),
        name("jam-node"),
        _spki(key),
        *([tlv(0xA3, seq(*exts))] if exts else []),
    )
    algorithm, signature = _sign(key, tbs)
    return seq(tbs, algorithm, tlv(0x03, b"\x00" + signature)), key


def _base32_alt_name(key: bytes) -> str:
    return "e" + base64.b32encode(key).decode().rstrip("=").lower()


ACCEPT: None = None
CORPUS: dict[str, tuple[CertSpec, RejectReason | None]] = {
    "plain": (CertSpec(), ACCEPT),
    "empty-eku": (CertSpec(after_san=(EMPTY_EKU,)), ACCEPT),
    "eku-server-client": (CertSpec(after_san=(EKU_SERVER_CLIENT,)), ACCEPT),
    "ca-true": (CertSpec(before_san=(CA_TRUE,)), ACCEPT),
    # One JAM implementation's style: empty EKU, CA:TRUE and a 2-second validity.
    "jam-impl-style": (
        CertSpec(
            key=lambda: ed25519_key(1),
            not_before="261206120000Z",
            not_after="261206120002Z",
            before_san=(CA_TRUE, EMPTY_EKU),
        ),
        ACCEPT,
    ),
    "expired": (CertSpec(not_before="000101000000Z", not_after="010101000000Z"), ACCEPT),
    "not-yet-valid": (CertSpec(not_before="490101000000Z"), ACCEPT),
    "key-usage-critical": (CertSpec(before_san=(KEY_USAGE,)), ACCEPT),
    "unknown-critical-extension": (CertSpec(after_san=(UNKNOWN_CRITICAL,)), ACCEPT),
    "unknown-extensions": (CertSpec(before_san=(UNKNOWN_PLAIN, SUBJECT_KEY_ID)), ACCEPT),
    "san-not-first": (
        CertSpec(key=lambda: ed25519_key(2), before_san=(SUBJECT_KEY_ID, KEY_USAGE)),
        ACCEPT,
    ),
    "san-critical": (
        CertSpec(
            key=lambda: ed25519_key(3),
            san=lambda k: san_extension(dns(alt_name(k)), critical=True),
        ),
        ACCEPT,
    ),
    "serial-20-bytes": (CertSpec(serial=b"\x7f" + bytes(range(1, 20))), ACCEPT),
    "serial-32-bytes": (CertSpec(serial=bytes(range(1, 33))), ACCEPT),
    "rsa": (
        CertSpec(key=rsa_key, san=lambda _k: san_extension(dns("ersa"))),
        RejectReason.NOT_ED25519,
    ),
    "ecdsa": (
        CertSpec(key=ecdsa_key, san=lambda _k: san_extension(dns("eecdsa"))),
        RejectReason.NOT_ED25519,
    ),
    "two-sans": (
        CertSpec(san=lambda k: san_extension(dns(alt_name(k)), dns("node.example"))),
        RejectReason.BAD_SAN,
    ),
    "wrong-alt-name": (
        CertSpec(san=lambda _k: san_extension(dns(alt_name(ed25519_public(ed25519_key(9)))))),
        RejectReason.BAD_SAN,
    ),
    "base32-alt-name": (
        CertSpec(
            key=lambda: ed25519_key(4),
            san=lambda k: san_extension(dns(_base32_alt_name(k))),
        ),
        RejectReason.BAD_SAN,
    ),
    "no-san": (CertSpec(san=lambda _k: None), RejectReason.BAD_SAN),
    "san-ip-not-dns": (
        CertSpec(san=lambda _k: san_extension(tlv(0x87, bytes((127, 0, 0, 1))))),
        RejectReason.BAD_SAN,
    ),
}
