"""Which late deliveries a run records: one rule for every runtime.

A block, assurance or extra CE message that arrives after its slot is still
written to the delivery tables with its real arrival time, up to a bound; an
arrival from the bound on is written as never (NaN). Whether something arrived
*within* its slot is then the analysis's question (:mod:`jamsim.analysis.delivery`),
asked of every runtime's times alike. The bounds are the real node's, since it is
the runtime the others stand for:

* **Blocks and extra messages**: until the end of slot ``s + LATE_SLOTS``. A real
  node logs a block or an extra message whenever it arrives, but its status reply
  carries only its last ``STATUS_WINDOW`` slots (:meth:`jamsim.net.traffic.NodeTraffic.status`),
  and the harness writes what those replies told it; once slot ``s + STATUS_WINDOW``
  has ended, slot ``s`` is no longer in any reply.
* **Assurances**: until the end of slot ``s + ASSURANCE_LATE_SLOTS``. A real author
  tells which slot an assurance is for by its anchor, and looks for the anchor only
  among the slots from ``ASSURANCE_LATE_SLOTS`` before its current one
  (:meth:`jamsim.net.traffic.NodeTraffic._slot_of_anchor`): later, the assurance
  is not recognised, so not logged.
* **The run's end**: nothing arriving at or after it (a real run's harness has
  stopped polling; a simulated run has stopped its clock).

:func:`recorded_before` gives the bound; an arrival at ``t`` is recorded when
``t < recorded_before(...)``. The real node's driver, the ``quic`` fidelity
(:mod:`jamsim.sim.quic.slot_traffic`) and the ``model`` overlay
(:mod:`jamsim.traffic.overlay`) all apply it, so whether a late arrival counts does
not depend on which runtime measured it.
"""

from __future__ import annotations

import math
from typing import Final

from jamsim.core.errors import UsageError
from jamsim.traffic.schedule import MessageKind

__all__ = [
    "ASSURANCE_LATE_SLOTS",
    "LATE_SLOTS",
    "STATUS_WINDOW",
    "late_slots",
    "recorded_before",
]

STATUS_WINDOW: Final = 64
"""Slots of receipts a real node's status reply carries (the current one and the
``STATUS_WINDOW`` before it). The harness polls every sample interval (seconds), so
a window of many slots loses nothing; older receipts stay in the node's log but no
longer travel."""

LATE_SLOTS: Final = STATUS_WINDOW
"""Slots after its own during which a block or extra message of a slot is still
recorded: as long as a real node still reports that slot to the harness."""

ASSURANCE_LATE_SLOTS: Final = 1
"""Slots after its own during which an assurance is still recorded: how far back a
real author looks for the slot of an assurance's anchor."""


def late_slots(kind: MessageKind) -> int:
    """Slots after its own during which a delivery of ``kind`` is still recorded.

    Only the recorded kinds have one: blocks, assurances and extra messages (an
    announcement or a CE 128 request is not a row of any table)."""
    if kind is MessageKind.ASSURANCE:
        return ASSURANCE_LATE_SLOTS
    if kind is MessageKind.BLOCK or kind is MessageKind.EXTRA:
        return LATE_SLOTS
    raise UsageError(f"{kind.value} deliveries are not recorded")


def recorded_before(slot: int, kind: MessageKind, slot_length: float,
                    run_end: float = math.inf) -> float:
    """The first instant (seconds after the run start) at which an arrival of ``slot``'s
    ``kind`` is no longer recorded: the end of slot ``slot + late_slots(kind)``
    (slots of ``slot_length`` seconds, slot 0 starting at 0), or ``run_end`` if
    earlier. An arrival at ``t`` is recorded when ``t`` is before it."""
    return min((slot + 1 + late_slots(kind)) * slot_length, run_end)
