"""Keys file round trip, determinism, and errors that name file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jamsim.identity import ValidatorSet
from jamsim.testnet.keys import KeysFileError, generate_keys, load_keys, write_keys


def test_round_trip_matches_dev_set(tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    write_keys(path, generate_keys(5, seed=9, base_port=41000, regions=["eu", "us"]))
    genesis, vset, identities = load_keys(path)
    assert len(genesis) == 32
    expected = ValidatorSet.dev(5, seed=9, base_port=41000, regions=["eu", "us", "eu", "us", "eu"])
    assert list(vset) == list(expected)
    assert [i.public_key for i in identities] == vset.keys()


def test_deterministic_and_seed_dependent() -> None:
    assert generate_keys(3, seed="a") == generate_keys(3, seed="a")
    other = generate_keys(3, seed="b")
    assert other["genesis_hash"] != generate_keys(3, seed="a")["genesis_hash"]


def _broken(tmp_path: Path, mutate: object) -> str:
    doc = generate_keys(3)
    assert callable(mutate)
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeysFileError) as info:
        load_keys(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_errors_name_field(tmp_path: Path) -> None:
    assert "genesis_hash" in _broken(tmp_path, lambda d: d.update(genesis_hash="zz"))
    assert "validators[1].port" in _broken(tmp_path, lambda d: d["validators"][1].update(port="x"))
    assert "validators[2].public_key" in _broken(
        tmp_path, lambda d: d["validators"][2].update(public_key=d["validators"][0]["public_key"])
    )
    assert "validators[0].seed" in _broken(tmp_path, lambda d: d["validators"][0].update(seed="00"))
    assert "validators[1].index" in _broken(tmp_path, lambda d: d["validators"][1].update(index=7))
    assert "validators[0].host" in _broken(
        tmp_path, lambda d: d["validators"][0].update(host="not-an-ip")
    )


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{")
    with pytest.raises(KeysFileError, match="not JSON"):
        load_keys(path)
    with pytest.raises(KeysFileError, match="cannot read"):
        load_keys(tmp_path / "missing.json")


def test_hostnames_resolve_to_addresses_and_unresolvable_ones_fail_clearly() -> None:
    from jamsim.testnet.keys import parse_keys, resolve_hostnames

    document = generate_keys(2, seed=1, hosts=["localhost", "127.0.0.1"], base_port=40000)
    resolved = resolve_hostnames(document, timeout=5)
    assert [v["host"] for v in resolved["validators"]] == ["127.0.0.1", "127.0.0.1"]
    assert document["validators"][0]["host"] == "localhost"  # the input is not modified
    parse_keys(resolved)
    document["validators"][1]["host"] = "no-such-host.invalid"
    with pytest.raises(KeysFileError, match=r"cannot resolve host 'no-such-host\.invalid'"):
        resolve_hostnames(document, timeout=0.0)
