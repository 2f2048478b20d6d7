"""Parquet writers: fixed schema, and an interrupted run keeps what it flushed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa

from jamsim.telemetry.records import (
    CONNECTIVITY_COLUMNS,
    EVENT_COLUMNS,
    ConnectivitySample,
    EventRecord,
)
from jamsim.telemetry.writer import (
    CONNECTIVITY_SCHEMA,
    EVENT_SCHEMA,
    ConnectivityWriter,
    EventTableWriter,
    read_table,
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


def test_close_merges_parts_into_one_file(tmp_path: Path) -> None:
    with EventTableWriter(tmp_path, flush_every=4) as writer:
        writer.extend(rows(10))
        assert len(list((tmp_path / "events.parts").glob("*.parquet"))) == 2
    assert (tmp_path / "events.parquet").exists()
    assert not (tmp_path / "events.parts").exists()
    table = read_table(tmp_path / "events.parquet")
    assert table.schema == EVENT_SCHEMA
    assert table.column("attempt").to_pylist() == list(range(10))
    assert [EventRecord(**r) for r in table.to_pylist()] == rows(10)


def test_empty_tables_keep_their_dtypes(tmp_path: Path) -> None:
    EventTableWriter(tmp_path).close()
    ConnectivityWriter(tmp_path).close()
    assert read_table(tmp_path / "events.parquet").schema == EVENT_SCHEMA
    table = read_table(tmp_path / "connectivity.parquet")
    assert table.num_rows == 0 and table.schema.field("full_mesh").type == pa.bool_()


def test_connectivity_round_trip(tmp_path: Path) -> None:
    with ConnectivityWriter(tmp_path) as writer:
        writer.append(ConnectivitySample(1.0, 15, 15, 6))
        writer.append(ConnectivitySample(2.0, 14, 15, 6, half_open=1))
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
