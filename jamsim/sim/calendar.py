"""The network's queue of pending instants: a calendar queue of fixed-width slots.

Why not a heap: after a partition of 1023 validators heals, a quarter of a million
distinct instants are pending at once (each resumed dial's next probe and
deadline, every jittered retry timer) and about 1.5 million pass in the next
half minute. A binary heap of that many floats costs ~20 scattered comparisons
per push and pop, which was a quarter of the reconnect phase. Here instants are
grouped in slots of ``slot_width`` seconds: a small heap orders the *slots*, and
only the slot being served is sorted, so most operations touch a short list.

The order is exactly a heap's: instants come out in increasing order, whatever
the interleaving of pushes and pops (tests/sim/test_calendar.py checks it against
``heapq`` with hypothesis). Equal instants are the caller's business: the network
keeps one entry per distinct instant and a bucket of callbacks behind it.
"""

from __future__ import annotations

import bisect
import heapq

__all__ = ["InstantQueue"]


class InstantQueue:
    """Pending instants (non-negative floats) in time order.

    Invariant: ``_current[_pos:]`` is sorted and holds every pending instant whose
    slot is ``<= _current_slot``; every instant in ``_slots`` lies in a later slot.
    """

    __slots__ = ("_current", "_current_slot", "_inverse_width", "_pos", "_size", "_slot_heap",
                 "_slots")

    def __init__(self, slot_width: float = 0.001) -> None:
        if slot_width <= 0:
            raise ValueError("slot_width must be > 0")
        self._inverse_width = 1.0 / slot_width
        self._slots: dict[int, list[float]] = {}
        self._slot_heap: list[int] = []
        self._current: list[float] = []
        self._pos = 0
        self._current_slot = -1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def push(self, when: float) -> None:
        """Add ``when`` (``>= 0``); the caller pushes each pending instant once."""
        self._size += 1
        slot = int(when * self._inverse_width)  # monotone in ``when`` for when >= 0
        if slot <= self._current_slot:
            bisect.insort(self._current, when, lo=self._pos)
            return
        pending = self._slots.get(slot)
        if pending is None:
            self._slots[slot] = [when]
            heapq.heappush(self._slot_heap, slot)
        else:
            pending.append(when)

    def peek(self) -> float | None:
        """The earliest pending instant, or ``None``."""
        if self._pos == len(self._current) and not self._serve_next_slot():
            return None
        return self._current[self._pos]

    def pop_due(self, limit: float) -> float | None:
        """Remove and return the earliest instant if it is ``<= limit``, else ``None``."""
        pos = self._pos
        current = self._current
        if pos == len(current):
            if not self._serve_next_slot():
                return None
            current, pos = self._current, 0
        when = current[pos]
        if when > limit:
            return None
        self._pos = pos + 1
        self._size -= 1
        return when

    def _serve_next_slot(self) -> bool:
        """Make the earliest non-empty slot the current one; ``False`` if none is left."""
        if not self._slot_heap:
            return False
        slot = heapq.heappop(self._slot_heap)
        instants = self._slots.pop(slot)
        instants.sort()
        self._current = instants
        self._pos = 0
        self._current_slot = slot
        return True
