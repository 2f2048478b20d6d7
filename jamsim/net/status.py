"""JIP-3 status events (discriminator 10) from a running node, about every 2 s.

JIP-3 asks every node for a periodic summary: peers, validator peers, peers with
a block-announcement stream open, then availability and preimage counters. A
jamsim node has no guarantee pool, availability store or preimage pool, so those
counts are truthfully zero; the peer counts come from the live connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable

from jamsim.telemetry.jip3 import Status

STATUS_INTERVAL = 2.0
"""Seconds between status events: JIP-3's "approximately every 2 seconds"."""


def peer_status(
    live_peers: Collection[bytes],
    validator_keys: Collection[bytes],
    up0_peers: Iterable[bytes],
    core_count: int,
) -> Status:
    """The status event for these live peers (a pure function, tested directly)."""
    live = set(live_peers)
    return Status(
        total_peers=len(live),
        validator_peers=len(live & set(validator_keys)),
        up0_peers=len(live & set(up0_peers)),
        guarantees_by_core=bytes(core_count),
    )


class StatusReporter:
    """Calls ``report()`` every ``interval`` seconds on the running loop until stopped."""

    def __init__(self, report: Callable[[], None], interval: float = STATUS_INTERVAL) -> None:
        self._report = report
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = False

    def start(self) -> None:
        self._stopped = False
        self._arm()

    def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        if not self._stopped:
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._handle = None
        self._report()
        self._arm()
