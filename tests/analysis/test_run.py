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
