"""What every testnet backend writes and reads the same way: state file, peer names, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsim.identity import alt_name
from jamsim.testnet.base import TestnetError as BackendError
from jamsim.testnet.keys import generate_keys, parse_keys
from jamsim.testnet.shared import key_index, node_status, read_state_file, write_state_file

VSET = parse_keys(generate_keys(4, seed=7))[1]


def test_state_file_is_replaced_whole(tmp_path: Path) -> None:
    write_state_file(tmp_path, {"backend": "local", "pids": {"0": 1}})
    write_state_file(tmp_path, {"backend": "local", "pids": {}})
    assert json.loads((tmp_path / "state.json").read_text()) == {"backend": "local", "pids": {}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_state_file_reader_every_backend_shares(tmp_path: Path) -> None:
    """No file: nothing started here. A damaged one names itself in the error."""
    assert read_state_file(tmp_path) is None
    write_state_file(tmp_path, {"backend": "docker", "project": "p"})
    assert read_state_file(tmp_path) == {"backend": "docker", "project": "p"}
    for damaged in ("{half", "[1, 2]"):
        (tmp_path / "state.json").write_text(damaged)
        with pytest.raises(BackendError, match=r"state\.json: unreadable state file"):
            read_state_file(tmp_path)


def test_key_index_names_each_validator_by_hex_key_and_alt_name() -> None:
    names = key_index(VSET)
    for info in VSET:
        assert names[info.key.hex()] == info.index
        assert names[alt_name(info.key)] == info.index
    assert len(names) == 2 * len(VSET)


@given(st.lists(st.one_of(st.sampled_from(sorted(key_index(VSET))), st.text(max_size=8),
                          st.integers(), st.none()), max_size=12),
       st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.integers()))
def test_node_status_keeps_only_known_peers_and_traffic_tables(peers: list[object],
                                                               traffic: object) -> None:
    names = key_index(VSET)
    status = node_status(2, {"connected": peers, "traffic": traffic}, names)
    assert status.running and status.index == 2 and status.error is None
    assert status.connected == {names[p] for p in peers if isinstance(p, str) and p in names}
    assert status.traffic == (traffic if isinstance(traffic, dict) else None)


def test_node_status_without_peers_is_connected_to_none() -> None:
    assert node_status(0, {}, key_index(VSET)).connected == frozenset()
