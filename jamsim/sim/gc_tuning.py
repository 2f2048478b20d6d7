"""Relaxed cyclic-GC thresholds while a simulation runs.

Why: a large simulation allocates millions of small, long-lived objects (connection
records, timer entries, events). CPython's generational collector is triggered by
allocation counts, so with the default gen-0 threshold of 700 it keeps re-scanning
the ever-growing young generations; at V=1023 that was ~40% of the wall time of a
bootstrap (measured: 7.3 s -> 4.3 s for the bare manager benchmark). The simulator
creates few reference cycles, so collecting far less often costs little memory.
The older generations matter too: a collection of generation 1 re-scans every
survivor of the young one, and with CPython's default of one per 10 (or our
earlier 50) young collections a V=1023 bootstrap, whose half a million connections
are all long-lived, spent ~1.5 s of 13 there; at 1000 it is a handful per run.
Thresholds are restored afterwards so the embedding program is left as it was.

The ``model`` fidelity goes further and pauses the collector (:func:`paused_gc`):
its objects form no garbage cycles while it runs (a test holds it to that: after
a fault-heavy run ``gc.collect()`` finds nothing), so every collection is pure
cost; py-spy put it at 4% of a V=1023 bootstrap and 7% of the churn benchmark.
The ``quic`` fidelity runs aioquic, whose objects are not ours to vouch for, and
keeps the relaxed thresholds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SIM_GC_THRESHOLDS", "paused_gc", "relaxed_gc"]

SIM_GC_THRESHOLDS = (100_000, 1_000, 1_000)
"""(gen0, gen1, gen2) thresholds used while simulating."""


@contextmanager
def relaxed_gc(thresholds: tuple[int, int, int] = SIM_GC_THRESHOLDS) -> Iterator[None]:
    """Run the body with ``thresholds``; never lowers thresholds a caller raised."""
    before = gc.get_threshold()
    gen0, gen1, gen2 = (max(a, b) for a, b in zip(before, thresholds, strict=True))
    gc.set_threshold(gen0, gen1, gen2)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the body with the cyclic collector disabled; re-enable it only if it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
