"""Host kernel limits that a many-container testnet runs into, checked and raised.

Why: Linux keeps one ARP (neighbour) table for all network namespaces, and its
hard limit ``gc_thresh3`` (default 1024) counts every container's entries. A
full mesh of N containers on one bridge needs about N*(N-1) entries: 64
containers need ~4000, so with the defaults the kernel logs "neighbor table
overflow", drops packets to peers it cannot resolve and the mesh never forms
(measured here: 64 containers stuck at ~9 peers each for minutes). Raising the
thresholds is harmless for the host; they are only ever raised, never lowered.
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["NEIGH_DIR", "ensure_neighbour_capacity"]

log = logging.getLogger(__name__)

NEIGH_DIR = Path("/proc/sys/net/ipv4/neigh/default")


def ensure_neighbour_capacity(containers: int, neigh_dir: Path = NEIGH_DIR) -> str | None:
    """Make the ARP table hold a full mesh of ``containers``; returns a warning if it cannot.

    The thresholds become at least (needed, 2*needed, 4*needed) for gc_thresh1..3,
    where needed = containers^2 + 256 headroom for the host's own neighbours.
    """
    needed = containers * containers + 256
    wanted = {"gc_thresh1": needed, "gc_thresh2": 2 * needed, "gc_thresh3": 4 * needed}
    current: dict[str, int] = {}
    try:
        for name in wanted:
            current[name] = int((neigh_dir / name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # not Linux, or no such knob: nothing to do
    if all(current[name] >= value for name, value in wanted.items()):
        return None
    # Raise thresh3 first so thresh1 <= thresh2 <= thresh3 holds at every step.
    try:
        for name in ("gc_thresh3", "gc_thresh2", "gc_thresh1"):
            if current[name] < wanted[name]:
                (neigh_dir / name).write_text(f"{wanted[name]}\n")
    except OSError as exc:
        message = (
            f"the kernel ARP table holds {current['gc_thresh3']} entries; a mesh of "
            f"{containers} containers needs ~{needed}. Connections will fail with "
            f"'neighbor table overflow' unless you run (as root): sysctl -w "
            f"net.ipv4.neigh.default.gc_thresh3={wanted['gc_thresh3']} "
            f"net.ipv4.neigh.default.gc_thresh2={wanted['gc_thresh2']} "
            f"net.ipv4.neigh.default.gc_thresh1={wanted['gc_thresh1']} ({exc})"
        )
        log.warning("%s", message)
        return message
    log.info("raised ARP table thresholds for %d containers: %s", containers, wanted)
    return None
