"""load_run opens a results folder lazily and joins the keys back on request."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from jamsim.analysis import load_run, metrics
from jamsim.identity import alt_name
from jamsim.scenario.runner import run_scenario

SMALL_EPOCH = ("name: epochs\nseed: 11\nduration: 50s\nvalidators: {count: 10}\n"
               "network: {latency: {default: 30ms}}\n"
               "timeline:\n  - {at: 20s, epoch: {rotate: 20%}}\n")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("epochs")
    (tmp / "s.yaml").write_text(SMALL_EPOCH)
    run_scenario(tmp / "s.yaml", out_dir=tmp / "run", plots=False)
    return tmp / "run"


def test_metrics_never_load_the_whole_event_table(folder: Path) -> None:
    run = load_run(folder)
    computed = metrics.run_metrics(run)
    assert run.complete and run.incomplete_reason is None
    assert run._events is None  # links, sessions, counts: scans only
    assert len(run.links) and len(run.sessions)
    assert sum(computed["event_counts"].values()) == len(run.events)  # now loaded


def test_enums_load_as_categoricals_and_indices_as_int32(folder: Path) -> None:
    events = load_run(folder).events
    for column in ("event", "direction", "reason"):
        assert isinstance(events[column].dtype, pd.CategoricalDtype), column
    assert events["node"].dtype == "int32" and events["peer"].dtype == "int32"
    assert events["time"].is_monotonic_increasing


def test_nodes_table_names_every_index_with_its_key_and_epoch(folder: Path) -> None:
    run = load_run(folder)
    nodes = run.nodes
    assert list(nodes["index"]) == list(range(12))  # 10, then 2 rotated in at epoch 1
    assert list(nodes["epoch"]) == [0] * 10 + [1] * 2
    assert all(alt_name(bytes.fromhex(k)) == a for k, a in zip(nodes["key"], nodes["alt_name"],
                                                               strict=True))
    assert set(run.events["node"]) <= set(nodes["index"])


def test_events_with_keys_joins_the_hex_keys_back(folder: Path) -> None:
    run = load_run(folder)
    keyed = run.events_with_keys()
    keys = dict(zip(run.nodes["index"], run.nodes["key"], strict=True))
    assert list(keyed["node_key"]) == [keys[i] for i in keyed["node"]]
    assert list(keyed["peer_key"]) == [keys.get(i, "") for i in keyed["peer"]]
    some = run.events_with_keys(["time", "node", "peer", "event"])
    assert list(some.columns) == ["time", "node", "peer", "event", "node_key", "peer_key"]
    assert len(some) == len(keyed)


def test_scan_events_reads_only_what_is_asked(folder: Path) -> None:
    run = load_run(folder)
    failed = run.scan_events(["time", "node", "peer"], ["connect_out_failed"])
    assert list(failed.columns) == ["time", "node", "peer"]
    everything = run.events
    assert len(failed) == int((everything["event"] == "connect_out_failed").sum())


CHURN = ("name: churn\nseed: 3\nduration: 60s\nvalidators: {count: 12}\n"
         "network: {latency: {default: 30ms}}\npolicy: {preset: jamnp-s, idle_timeout: 5s}\n"
         "timeline:\n  - {at: 10s, partition: [['0..5'], ['6..11']]}\n"
         "  - {at: 20s, churn: {fraction: 25%, downtime: 3s..6s, until: 40s}}\n"
         "  - {at: 30s, heal: all}\n")


@pytest.mark.parametrize("part_rows", [20, 45])
def test_large_tables_derived_in_parts_give_the_same_tables(
        tmp_path: Path, folder: Path, part_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions by ranges of nodes, links by ranges of pairs (crash rows in every
    part): the concatenation is the table derived at once, row for row."""
    import jamsim.analysis.run as run_module

    (tmp_path / "churn.yaml").write_text(CHURN)
    run_scenario(tmp_path / "churn.yaml", out_dir=tmp_path / "churn", plots=False)
    for path in (folder, tmp_path / "churn"):
        whole = load_run(path)
        assert len(whole._session_rows) > 2 * part_rows  # several parts
        sessions, links = whole.sessions, whole.links
        monkeypatch.setattr(run_module, "PART_ROWS", part_rows)
        parted = load_run(path)
        pd.testing.assert_frame_equal(parted.sessions, sessions, check_exact=True)
        pd.testing.assert_frame_equal(parted.links, links, check_exact=True)
        monkeypatch.undo()
    crashed = whole.scan_events(["event"], ["node_crashed"])
    assert len(crashed)  # the churn run has lifecycle rows
