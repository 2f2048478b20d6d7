"""Connected components of a large undirected graph given as integer edge arrays.

The analysis needs, for each of ~60 connectivity samples, the number of
components and the largest one among ~1000 validators joined by up to ~5x10^5
live links. Building a networkx graph per sample cost ~40 s on such a run; this
array union-find (hook every root onto the smallest root it touches, then jump
pointers until every node points at its root) does the same in milliseconds and
needs no scipy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["component_labels", "component_stats"]


def component_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root (smallest node id) of each node's component, for nodes ``0..n-1``
    and edges ``a[k] -- b[k]`` (ids must lie in ``0..n-1``)."""
    parent = np.arange(n, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    while True:
        ra, rb = parent[a], parent[b]
        cross = ra != rb
        if not cross.any():
            return parent
        lo = np.minimum(ra[cross], rb[cross])
        hi = np.maximum(ra[cross], rb[cross])
        # roots only ever point at smaller roots, so no cycle can form
        np.minimum.at(parent, hi, lo)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def component_stats(validators: int, a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(number of components, size of the largest) over validators ``0..V-1``
    (isolated ones count) plus any other node an edge names."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    low = min(int(a.min()) if len(a) else 0, int(b.min()) if len(b) else 0)
    if low < 0:  # hand-made tables only: shift ids so they can index arrays
        shifted = component_stats(0, a - low, b - low)
        return _with_validators(validators, low, a, b, shifted)
    n = max(validators, int(a.max()) + 1 if len(a) else 0, int(b.max()) + 1 if len(b) else 0)
    if n == 0:
        return 0, 0
    labels = component_labels(n, a, b)
    present = np.zeros(n, dtype=bool)
    present[:max(validators, 0)] = True
    present[a] = True
    present[b] = True
    roots = labels[present]
    sizes = np.bincount(roots, minlength=n)
    return int(np.count_nonzero(sizes)), int(sizes.max())


def _with_validators(validators: int, low: int, a: np.ndarray, b: np.ndarray,
                     edges_only: tuple[int, int]) -> tuple[int, int]:
    """Add the validators no edge names (isolated, one component each) to the
    stats of the edge-named nodes, when ids start at ``low`` < 0."""
    named = np.unique(np.concatenate([a, b]))
    isolated = validators - int(np.count_nonzero((named >= 0) & (named < validators)))
    components, largest = edges_only
    if isolated > 0:
        return components + isolated, max(largest, 1)
    return components, largest
