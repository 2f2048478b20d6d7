"""Helpers for runtimes that observe deliveries one by one (real nodes, ``quic``).

A node knows from whom it fetched a block, not how far it is from the author;
``hops`` in ``blocks.parquet`` is the length of that ``via`` chain back to the
author, which is exactly what the ``model`` overlay records.
"""

from __future__ import annotations

from collections.abc import Sequence

from jamsim.traffic.records import NEVER

__all__ = ["hops_from_via"]


def hops_from_via(author: int, via: Sequence[int | None]) -> list[int]:
    """Hops of every node: 0 for the author, ``hops[via] + 1`` for a node that got the
    block from ``via``, :data:`NEVER` for one that did not (``via[i] is None``) or whose
    chain does not lead back to the author."""
    n = len(via)
    hops = [NEVER] * n
    if 0 <= author < n and via[author] is not None:
        hops[author] = 0
    for start in range(n):
        chain: list[int] = []
        i = start
        while 0 <= i < n and hops[i] == NEVER and via[i] is not None and i not in chain:
            chain.append(i)
            nxt = via[i]
            i = nxt if nxt is not None and i != author else NEVER
        base = hops[i] if 0 <= i < n else NEVER
        if base == NEVER:
            continue
        for depth, k in enumerate(reversed(chain), start=1):
            hops[k] = base + depth
    return hops
