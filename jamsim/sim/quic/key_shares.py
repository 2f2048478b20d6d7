"""A TLS client's ephemeral key shares, kept as numbers until the ServerHello.

A stock aioquic client offers a key share for each of its four groups (P-256,
P-384, X25519, X448) and holds the four private keys as ``cryptography`` objects
until the connection ends. Measured with cryptography 50 (RSS over 5,000 keys):
~2.2 KB of OpenSSL state per P-256 key, ~2.0 KB per P-384 key, ~0.4 KB per
X25519/X448 key; ~5 KB per client connection. In a simulated full-mesh bootstrap
every client holds them at once while every server builds its own handshake
state, so they sit at the top of the process's memory peak (and the freed memory
stays fragmented). JAM clients now offer X25519 alone (see
jamsim/quic/tls_workaround.py), which leaves one key to stash; the stand-ins
still cover every group, so a stock context is handled the same way.

The stand-ins below keep the private value (32-56 bytes) and rebuild the key only
for the one exchange TLS performs with the group the server chose (~30 µs for
P-256, measured), through the two calls aioquic makes on a key share in
``_client_handle_hello``: ``public_key().curve`` to match an EC share's curve, and
``exchange``. Same keys, same shared secret; anything else aioquic might call on
them fails loudly (AttributeError) instead of silently differing.
"""

from __future__ import annotations

from typing import Any

from aioquic import tls
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

__all__ = ["StashedEcKey", "StashedRawKey", "stash_key_shares"]


class _CurveOnly:
    """The part of an EC public key aioquic reads from its own key share: the curve."""

    __slots__ = ("curve",)

    def __init__(self, curve: ec.EllipticCurve) -> None:
        self.curve = curve


class StashedEcKey:
    """An EC private key kept as its scalar; rebuilt for the key exchange."""

    __slots__ = ("_curve", "_value")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._curve = key.curve
        self._value = key.private_numbers().private_value

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._curve

    def public_key(self) -> _CurveOnly:
        return _CurveOnly(self._curve)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey
                 ) -> bytes:
        key = ec.derive_private_key(self._value, self._curve)
        return key.exchange(algorithm, peer_public_key)


class StashedRawKey:
    """An X25519 or X448 private key kept as its raw bytes."""

    __slots__ = ("_kind", "_raw")

    def __init__(self, key: x25519.X25519PrivateKey | x448.X448PrivateKey) -> None:
        self._kind: type[x25519.X25519PrivateKey] | type[x448.X448PrivateKey] = \
            x25519.X25519PrivateKey if isinstance(key, x25519.X25519PrivateKey) \
            else x448.X448PrivateKey
        self._raw = key.private_bytes_raw()

    def exchange(self, peer_public_key: Any) -> bytes:
        key: Any = self._kind.from_private_bytes(self._raw)
        result: bytes = key.exchange(peer_public_key)
        return result


def stash_key_shares(context: Any) -> bool:
    """Replace a client context's private key-share objects by stashed ones.

    Only while the client waits for the ServerHello (the keys' one use); returns
    whether anything was replaced.
    """
    if not isinstance(context, tls.Context) or \
            context.state is not tls.State.CLIENT_EXPECT_SERVER_HELLO:
        return False
    changed = False
    ec_keys = getattr(context, "_ec_private_keys", None) or []
    if any(isinstance(key, ec.EllipticCurvePrivateKey) for key in ec_keys):
        stashed = [StashedEcKey(key) if isinstance(key, ec.EllipticCurvePrivateKey) else key
                   for key in ec_keys]
        setattr(context, "_ec_private_keys", stashed)  # noqa: B010 (mypy: other type)
        changed = True
    for name in ("_x25519_private_key", "_x448_private_key"):
        key = getattr(context, name, None)
        if isinstance(key, x25519.X25519PrivateKey | x448.X448PrivateKey):
            setattr(context, name, StashedRawKey(key))
            changed = True
    return changed
