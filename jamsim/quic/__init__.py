"""QUIC/TLS glue for JAMNP-S: certificates, aioquic configuration, peer verification.

Everything here is sans-IO so both the virtual-time simulator and the asyncio node
use the same code; only :mod:`jamsim.quic.tls_workaround` touches aioquic internals.
"""
