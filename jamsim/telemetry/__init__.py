"""Telemetry: the event-table format, JIP-3 wire codec, collector and writers.

* :mod:`jamsim.telemetry.records` -- ``EventRecord`` / ``ConnectivitySample``, the
  one table format every runtime writes.
* :mod:`jamsim.telemetry.jip3` -- JIP-3 node information and events (pure).
* :mod:`jamsim.telemetry.collector` -- asyncio TCP collector and node-side client.
* :mod:`jamsim.telemetry.writer` -- crash-tolerant ``events.parquet`` /
  ``connectivity.parquet`` writers.

Only the records are re-exported here, so importing the package stays cheap for
the simulator (no pyarrow, no asyncio).
"""

from jamsim.telemetry.records import (
    CONNECTIVITY_COLUMNS,
    EVENT_COLUMNS,
    ConnectivitySample,
    EventRecord,
)

__all__ = ["CONNECTIVITY_COLUMNS", "EVENT_COLUMNS", "ConnectivitySample", "EventRecord"]
