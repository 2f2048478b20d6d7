"""Parquet writers: fixed schema, and an interrupted run keeps what it flushed."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.core.types import NodeLifecycle, TelemetryKind
from jamsim.telemetry.records import (
    COMPACT_ROW,
    CONNECTIVITY_COLUMNS,
    EVENT_COLUMNS,
    ConnectivitySample,
    EventRecord,
    NodeRecord,
)
from jamsim.telemetry.writer import (
    COMPACT_COLUMNS,
    CONNECTIVITY_SCHEMA,
    DIRECTION_CODES,
    EVENT_SCHEMA,
    NODE_SCHEMA,
    ConnectivityWriter,
    EventTableWriter,
    open_dataset,
    read_nodes,
    read_table,
    table_exists,
    table_files,
    table_is_closed,
    write_nodes,
)


def rows(n: int) -> list[EventRecord]:
    return [
        EventRecord(
            time=i * 0.5,
            node=i % 3,
            peer=(i + 1) % 3,
            event="connecting_out",
            kind=24,
            direction="out",
            attempt=i,
            conn_id=i,
            event_id=i,
        )
        for i in range(n)
    ]


def test_columns_are_exactly_the_records_columns() -> None:
    assert tuple(EVENT_SCHEMA.names) == EVENT_COLUMNS
    assert tuple(CONNECTIVITY_SCHEMA.names) == CONNECTIVITY_COLUMNS


def test_close_turns_the_event_parts_into_a_directory_table(tmp_path: Path) -> None:
    with EventTableWriter(tmp_path, flush_every=4) as writer:
        writer.extend(rows(10))
        assert len(list((tmp_path / "events.parts").glob("*.parquet"))) == 2
    assert (tmp_path / "events.parquet").is_dir()
    assert not (tmp_path / "events.parts").exists()
    assert len(table_files(tmp_path / "events.parquet")) == 3
    table = read_table(tmp_path / "events.parquet")
    assert table.schema == EVENT_SCHEMA
    assert table.column("attempt").to_pylist() == list(range(10))
    assert [EventRecord(**r) for r in table.to_pylist()] == rows(10)
    # other readers take the directory as one table
    frame = pd.read_parquet(tmp_path / "events.parquet")
    assert frame["attempt"].tolist() == list(range(10))


def test_an_empty_event_table_closes_readable_with_its_schema(tmp_path: Path) -> None:
    EventTableWriter(tmp_path).close()
    assert table_is_closed(tmp_path / "events.parquet")
    assert read_table(tmp_path / "events.parquet").schema == EVENT_SCHEMA
    assert len(pd.read_parquet(tmp_path / "events.parquet")) == 0


def test_small_tables_are_still_merged_into_one_file(tmp_path: Path) -> None:
    with ConnectivityWriter(tmp_path, flush_every=2) as writer:
        writer.extend(ConnectivitySample(float(t), 1, 1, 0, 1, 2) for t in range(5))
    assert (tmp_path / "connectivity.parquet").is_file()
    assert read_table(tmp_path / "connectivity.parquet").num_rows == 5


def test_empty_tables_keep_their_dtypes(tmp_path: Path) -> None:
    EventTableWriter(tmp_path).close()
    ConnectivityWriter(tmp_path).close()
    assert read_table(tmp_path / "events.parquet").schema == EVENT_SCHEMA
    table = read_table(tmp_path / "connectivity.parquet")
    assert table.num_rows == 0 and table.schema.field("full_mesh").type == pa.bool_()


def test_connectivity_round_trip(tmp_path: Path) -> None:
    with ConnectivityWriter(tmp_path) as writer:
        writer.append(ConnectivitySample(1.0, 15, 15, 0, 15, 6))
        writer.append(ConnectivitySample(2.0, 14, 15, 1, 15, 6, half_open=1))
    got = read_table(tmp_path / "connectivity.parquet").to_pylist()
    assert got[0]["full_mesh"] is True and got[1]["full_mesh"] is False
    assert got[1]["half_open"] == 1


def test_killed_process_leaves_readable_parts(tmp_path: Path) -> None:
    """A writer never closed (the process dies) still yields every flushed row."""
    script = textwrap.dedent(
        f"""
        import os
        from jamsim.telemetry.records import EventRecord
        from jamsim.telemetry.writer import EventTableWriter
        w = EventTableWriter({str(tmp_path)!r}, flush_every=3)
        for i in range(7):
            w.append(EventRecord(time=float(i), node=0, peer=1, event="x", kind=26))
        os._exit(9)  # no close, no atexit, no finally
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert proc.returncode == 9
    assert not (tmp_path / "events.parquet").exists()
    table = read_table(tmp_path / "events.parquet")
    assert table.column("time").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # 2 flushed parts
    assert table.schema == EVENT_SCHEMA


def test_event_columns_are_compact(tmp_path: Path) -> None:
    types = {f.name: f.type for f in EVENT_SCHEMA}
    assert types["node"] == pa.int32() and types["peer"] == pa.int32()
    assert types["time"] == pa.float64()
    for name in ("event", "direction", "reason"):
        assert pa.types.is_dictionary(types[name]), name


def test_many_distinct_reasons_fit_the_reason_dictionary(tmp_path: Path) -> None:
    """Reasons are free text: 300 distinct ones across parts must survive."""
    records = [EventRecord(time=float(i), node=0, peer=1, event="disconnected", kind=27,
                           reason=f"reason {i}") for i in range(300)]
    with EventTableWriter(tmp_path, flush_every=200) as writer:
        writer.extend(records)
    assert read_table(tmp_path / "events.parquet").column("reason").to_pylist() == \
        [r.reason for r in records]


def test_parts_are_readable_and_known_unclosed_until_close(tmp_path: Path) -> None:
    writer = EventTableWriter(tmp_path, flush_every=2)
    writer.extend(rows(5))
    assert table_exists(tmp_path / "events.parquet")
    assert not table_is_closed(tmp_path / "events.parquet")
    assert open_dataset(tmp_path / "events.parquet").count_rows() == 4  # one row pending
    writer.close()
    assert table_is_closed(tmp_path / "events.parquet")
    assert open_dataset(tmp_path / "events.parquet").count_rows() == 5


def test_nodes_round_trip_sorted_by_index(tmp_path: Path) -> None:
    nodes = [NodeRecord(1, "bb", "eb", "us", 1), NodeRecord(0, "aa", "ea", "eu")]
    write_nodes(tmp_path, nodes)
    table = read_nodes(tmp_path)
    assert table.schema == NODE_SCHEMA
    assert [NodeRecord(**r) for r in table.to_pylist()] == sorted(nodes, key=lambda n: n.index)
    assert read_nodes(tmp_path / "elsewhere").num_rows == 0


_TEXT = st.text(alphabet="abcdefgh _", max_size=12)
_FIELDS = {  # every EventRecord column but event and kind
    "time": st.floats(0, 1e6, allow_nan=False), "node": st.integers(0, 2**31 - 1),
    "peer": st.integers(-1, 2**31 - 1), "direction": st.sampled_from(["", "in", "out"]),
    "reason": _TEXT, "attempt": st.integers(0, 2**31 - 1),
    "conn_id": st.integers(-1, 2**62), "event_id": st.integers(-1, 2**62),
    "ref_event_id": st.integers(-1, 2**62), "side": st.integers(-1, 1),
}
_ROWS = st.lists(st.builds(EventRecord, event=_TEXT, kind=st.integers(0, 255), **_FIELDS),
                 max_size=40)


@settings(max_examples=40, deadline=None)
@given(records=_ROWS, flush_every=st.integers(1, 16))
def test_any_rows_round_trip_whatever_the_part_size(records: list[EventRecord],
                                                    flush_every: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with EventTableWriter(tmp, flush_every=flush_every) as writer:
            for i, record in enumerate(records):  # both entry points, interleaved
                if i % 2:
                    writer.append(record)
                else:
                    writer.append_row(tuple(getattr(record, c) for c in EVENT_COLUMNS))
        got = read_table(Path(tmp) / "events.parquet").to_pylist()
    assert [EventRecord(**r) for r in got] == records


_KINDS = [*TelemetryKind, *NodeLifecycle]
_KNOWN_ROWS = st.lists(st.builds(
    lambda kind, **fields: EventRecord(event=kind.label, kind=int(kind), **fields),
    kind=st.sampled_from(_KINDS), **_FIELDS), max_size=40)


@settings(max_examples=40, deadline=None)
@given(records=_KNOWN_ROWS, flush_every=st.integers(1, 16))
def test_compact_rows_read_back_as_the_records_they_code(records: list[EventRecord],
                                                        flush_every: int) -> None:
    """The simulator's compact rows (kind, direction and reason as codes) and the
    records they stand for are the same table."""
    with tempfile.TemporaryDirectory() as tmp:
        with EventTableWriter(tmp, flush_every=flush_every) as writer:
            codes = writer.reason_codes
            for record in records:
                coded = {"direction": DIRECTION_CODES[record.direction],
                         "reason": codes.setdefault(record.reason, len(codes))}
                row: tuple[float | int, ...] = tuple(
                    coded[c] if c in coded else getattr(record, c) for c in COMPACT_COLUMNS)
                writer.append_compact(row)
        table = read_table(Path(tmp) / "events.parquet")
    assert table.schema == EVENT_SCHEMA
    assert [EventRecord(**r) for r in table.to_pylist()] == records


def test_a_compact_row_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    writer = EventTableWriter(tmp_path)
    writer.append_compact((0.0, 0, 1, 99, 0, 0, 0, -1, -1, -1, -1))
    with pytest.raises(ValueError, match="without a name"):
        writer.flush()


def test_a_closed_writer_refuses_rows(tmp_path: Path) -> None:
    writer = EventTableWriter(tmp_path)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.append(rows(1)[0])


@settings(max_examples=30, deadline=None)
@given(records=_KNOWN_ROWS, flush_every=st.integers(1, 16), block=st.integers(1, 9))
def test_packed_blocks_read_back_as_the_rows_they_pack(records: list[EventRecord],
                                                      flush_every: int, block: int) -> None:
    """Blocks of packed compact rows (the simulator's ``on_rows``), whatever their
    size against the part size, make the same table as the rows one by one."""
    with tempfile.TemporaryDirectory() as tmp:
        with EventTableWriter(tmp, flush_every=flush_every) as writer:
            codes = writer.reason_codes
            packed = bytearray()
            for i, record in enumerate(records, 1):
                code = codes.setdefault(record.reason, len(codes))
                values = {**record.as_dict(), "direction": DIRECTION_CODES[record.direction],
                          "reason": code}
                packed += COMPACT_ROW.pack(*(values[c] for c in COMPACT_COLUMNS))
                if i % block == 0:
                    writer.append_compact_rows(packed)
                    packed = bytearray()
            writer.append_compact_rows(packed)
            assert writer.rows == len(records)
        table = read_table(Path(tmp) / "events.parquet")
    assert table.schema == EVENT_SCHEMA
    assert [EventRecord(**r) for r in table.to_pylist()] == records


def test_a_torn_block_of_packed_rows_is_refused(tmp_path: Path) -> None:
    writer = EventTableWriter(tmp_path)
    with pytest.raises(ValueError, match="multiple"):
        writer.append_compact_rows(bytes(COMPACT_ROW.size + 1))
