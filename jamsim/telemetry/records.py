"""The one event-table format every runtime writes and every analysis reads.

The simulator, the real-node collector and the Docker testnet all produce rows of
:class:`EventRecord`; ``events.parquet`` is exactly these columns in this order.
Keeping the schema in one place is what lets one notebook analyse a simulation and a
testnet side by side.

Rows name validators by integer index only: the 64-character hex keys of both ends
were half the bytes of a row (in memory and on disk) and repeat the same few
thousand values millions of times. The keys live once per run in ``nodes.parquet``
(:class:`NodeRecord`); ``Run.events_with_keys()`` joins them back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

__all__ = [
    "COMPACT_COLUMNS",
    "COMPACT_ROW",
    "CONNECTIVITY_COLUMNS",
    "EVENT_COLUMNS",
    "NODE_COLUMNS",
    "ConnectivitySample",
    "EventRecord",
    "NodeRecord",
]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One telemetry event as seen by ``node``.

    ``time`` is seconds since the run started (virtual time in simulation, wall
    time relative to the run start on a testnet). ``node``/``peer`` are validator
    indices into the run's ``nodes`` table (``peer`` is -1 when the peer is unknown
    or not a validator); an index names one key for the whole run, also across
    epochs. ``event`` is the JIP-3 event name in snake_case (``connected_out``),
    ``kind`` its JIP-3 discriminator.
    """

    time: float
    node: int
    peer: int
    event: str
    kind: int
    direction: str = ""  # "out" | "in" | ""
    reason: str = ""
    attempt: int = 0
    conn_id: int = -1
    event_id: int = -1
    ref_event_id: int = -1
    side: int = -1  # JIP-3 Connection Side: 0 local, 1 remote, -1 unknown

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in EVENT_COLUMNS}


EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(EventRecord))

COMPACT_COLUMNS: tuple[str, ...] = ("time", "node", "peer", "kind", "direction", "reason",
                                    "attempt", "conn_id", "event_id", "ref_event_id",
                                    "side")
"""A compact event row, the simulator's recording format: the event table's
columns without ``event`` (implied by ``kind``), with ``direction`` a code of
``telemetry.writer.DIRECTION_CODES`` and ``reason`` a code of the event writer's
``reason_codes``: numbers only."""
COMPACT_ROW = struct.Struct("<diihbiiqqqb")
"""A compact row packed into bytes (little-endian, no padding), each column at
its table width: float64 time; int32 node, peer; int16 kind; int8 direction;
int32 reason, attempt; int64 conn_id, event_id, ref_event_id; int8 side. Rows are
packed one after the other as they happen (``Simulation(on_rows=...)``), so a block
of them becomes columns in one zero-copy view, where converting a list of row
tuples cost more than half a microsecond a row; a value that does not fit its
column is refused when packed (``struct.error``)."""


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One validator of the run: the row an event's ``node``/``peer`` index names.

    ``key`` is the hex Ed25519 key, ``alt_name`` its JAMNP-S alternative name,
    ``epoch`` the epoch in which the validator entered the run (0: the initial set;
    epoch rotations add new indices, they never reuse one).
    """

    index: int
    key: str
    alt_name: str
    region: str
    epoch: int = 0

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in NODE_COLUMNS}


NODE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NodeRecord))


@dataclass(frozen=True, slots=True)
class ConnectivitySample:
    """A periodic sample of the whole network's connection graph.

    A manager's belief that a connection is live says nothing about the path under
    it (a client without an idle timeout holds a connection across a partition
    forever), so links are counted three ways:

    * ``links_usable``: unordered validator pairs with a live connection that both
      ends consider theirs, over a path that carries packets both ways now (both
      processes up, not paused, no partition between them);
    * ``links_believed``: pairs with a connection both ends consider live,
      whatever the path (what every figure counted before usable links existed);
    * ``links_stale``: pairs where at least one end believes in a connection but
      the path is cut one way or both, or the peer is crashed or paused.

    ``links_expected`` is the number of pairs that should be connected (V*(V-1)/2
    for a single epoch); ``half_open`` counts pairs where only one end believes it
    is connected; ``duplicates`` counts pairs holding more than one live
    connection; ``components`` is the number of connected components among nodes
    that are up, over usable links. ``full_mesh`` means every expected pair is
    usable. ``longest_stale`` is how long (s) the pair stale the longest has
    been stale without a break; its maximum over samples bounds every stale
    episode to within one sample interval. ``grid_usable`` counts usable links
    between JAMNP-S grid neighbours of the first validator set, out of
    ``grid_pairs`` (0 where a runtime has no ground truth).
    """

    time: float
    links_usable: int
    links_believed: int
    links_stale: int
    links_expected: int
    nodes_up: int
    half_open: int = 0
    duplicates: int = 0
    components: int = 1
    longest_stale: float = 0.0
    grid_usable: int = 0
    grid_pairs: int = 0

    @property
    def full_mesh(self) -> bool:
        return self.links_usable >= self.links_expected

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in CONNECTIVITY_COLUMNS}


CONNECTIVITY_COLUMNS: tuple[str, ...] = (
    *(f.name for f in fields(ConnectivitySample)),
    "full_mesh",
)
