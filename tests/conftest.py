"""Suite-wide test settings.

Hypothesis runs derandomized (the same examples on every run, like a fixed seed)
and without its per-example deadline: on a loaded 2-core CI machine a deadline
fails tests for the machine's speed, not for the code, and a random seed would
make a red run unrepeatable. Run with ``--hypothesis-profile explore`` to search
with fresh random examples.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile("deterministic")
