"""Shared builders for pure-core tests: keys, endpoints, managers, loopbacks."""

from __future__ import annotations

from jamsim.core.events import ValidatorSetChanged
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import PeerEndpoint
from jamsim.identity import PeerAddress, ValidatorIdentity, is_preferred_initiator
from jamsim.testing.loopback import Loopback


def keys(count: int, seed: int = 0) -> list[bytes]:
    return [ValidatorIdentity.generate_dev(seed, i).public_key for i in range(count)]


def endpoints(node_keys: list[bytes]) -> tuple[PeerEndpoint, ...]:
    return tuple(PeerEndpoint(k, PeerAddress("127.0.0.1", 40000 + i))
                 for i, k in enumerate(node_keys))


def ordered_pair(seed: int = 0) -> tuple[bytes, bytes]:
    """Two keys, the first being the preferred initiator of the pair."""
    a, b = keys(2, seed)
    return (a, b) if is_preferred_initiator(a, b) else (b, a)


def loopback(node_keys: list[bytes], policy: ConnectionPolicy, start: bool = True) -> Loopback:
    managers = {k: ConnectionManager(k, policy, rng_seed=1) for k in node_keys}
    lb = Loopback(managers)
    if start:
        change = ValidatorSetChanged(current=endpoints(node_keys))
        lb.start((k, change) for k in node_keys)
    return lb


def apply_fault_op(lb: Loopback, op: str, n: int, link_up: list[bool]) -> bool:
    """Apply one step of a hypothesis fault script to ``lb``: ``deliver`` the
    ``n``-th pending delivery, fire due ``timer``s, ``cut`` a live transport, or
    flip the ``link`` (``link_up[0]``, read by the loopback's ``reachable``).
    Returns False for an op it does not know, so a test can add its own."""
    if op == "deliver":
        if lb.pending:
            lb.deliver(n % len(lb.pending))
    elif op == "timer":
        lb.fire_timers()
    elif op == "cut":
        live = [t for t in lb.transports if not t.closed]
        if live:
            lb.cut(live[n % len(live)])
    elif op == "link":
        link_up[0] = not link_up[0]
    else:
        return False
    return True
