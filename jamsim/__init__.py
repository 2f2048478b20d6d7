"""jamsim: simulate and testnet the JAMNP-S connection layer.

One sans-IO connection core (:mod:`jamsim.core`) runs over SimPy virtual time
(:mod:`jamsim.sim`) or real aioquic sockets (:mod:`jamsim.net`).
"""

from jamsim._native import native_status

__version__ = "0.1.0"
__all__ = ["__version__", "native_status"]
