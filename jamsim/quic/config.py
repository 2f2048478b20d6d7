"""aioquic QuicConfiguration for JAMNP-S clients and servers.

Certificate verification is OFF in aioquic (``CERT_NONE``) on purpose: JAMNP-S
certificates are self-signed, and :mod:`jamsim.quic.verify` performs the real checks
(key type, alt-name SAN, allowed key set, ALPN) after the handshake.
"""

from __future__ import annotations

import ssl

from aioquic.quic.configuration import QuicConfiguration

from jamsim.identity import alpn_for_genesis
from jamsim.quic.certificates import NodeCertificate

#: Default idle timeout when the policy disables it: aioquic needs a number, so we
#: use a day (effectively "never" for a test run).
_NO_IDLE_TIMEOUT = 86_400.0


def jam_alpns(genesis_hash: bytes, *, accept_builder: bool) -> list[str]:
    """ALPN list: the validator protocol, plus the builder variant for listeners."""
    alpns = [alpn_for_genesis(genesis_hash)]
    if accept_builder:
        alpns.append(alpn_for_genesis(genesis_hash, builder=True))
    return alpns


def make_configuration(
    cert: NodeCertificate,
    genesis_hash: bytes,
    *,
    is_client: bool,
    idle_timeout: float | None,
    alpn_protocols: list[str] | None = None,
) -> QuicConfiguration:
    """Build the configuration for one side; ``alpn_protocols`` overrides (tests)."""
    alpns = (
        alpn_protocols
        if alpn_protocols is not None
        else jam_alpns(genesis_hash, accept_builder=not is_client)
    )
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=alpns,
        verify_mode=ssl.CERT_NONE,
        idle_timeout=idle_timeout if idle_timeout is not None else _NO_IDLE_TIMEOUT,
    )
    config.certificate = cert.certificate
    config.private_key = cert.private_key
    return config
