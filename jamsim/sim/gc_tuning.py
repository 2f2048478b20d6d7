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

Pausing the collector for the whole run was tried and measured no better: a
collection traverses each long-lived object once either way (py-spy: 6.5% of
the V=1023 churn benchmark paused, 6.8% relaxed), and pausing only moves that
cost into one pause, a multi-second one at 1023 validators, when the collector
comes back. Only ``gc.freeze()`` would avoid it, and that hides every later
garbage cycle of the process from the collector, which a library must not do.
What the model does guarantee, and a test holds it to, is that it makes no
garbage cycles while it runs: its memory is freed by reference counting.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SIM_GC_THRESHOLDS", "relaxed_gc"]

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
