"""Running scenarios end to end: results folder, expectations, CLI, interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jamsim.cli import app
from jamsim.scenario.runner import run_scenario
from jamsim.telemetry.records import CONNECTIVITY_COLUMNS, EVENT_COLUMNS
from jamsim.telemetry.writer import read_table

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_quickstart_through_the_cli_writes_a_results_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "PASS full_mesh" in result.output and str(out) in result.output
    for name in ("scenario.yaml", "events.parquet", "connectivity.parquet", "summary.json"):
        assert (out / name).exists(), name
    events = read_table(out / "events.parquet")
    assert tuple(events.column_names) == EVENT_COLUMNS and events.num_rows > 0
    assert tuple(read_table(out / "connectivity.parquet").column_names) == \
        CONNECTIVITY_COLUMNS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["passed"]
    assert summary["metrics"]["final_full_mesh"]
    assert {v["expectation"] for v in summary["expectations"]} == \
        {"full_mesh", "no_duplicate_connections", "stale_for"}


def test_same_seed_same_event_log(tmp_path: Path) -> None:
    a = run_scenario("quickstart", out_dir=tmp_path / "a", plots=False)
    b = run_scenario("quickstart", out_dir=tmp_path / "b", plots=False)
    assert read_table(tmp_path / "a" / "events.parquet").equals(
        read_table(tmp_path / "b" / "events.parquet"))
    assert a.summary["metrics"] == b.summary["metrics"]


def test_failed_expectation_exits_non_zero(tmp_path: Path) -> None:
    scenario = tmp_path / "strict.yaml"
    scenario.write_text("name: strict\nduration: 20s\nexpect:\n"
                        "  - full_mesh: {within: 0.5s}\n")
    result = CliRunner().invoke(app, ["run", str(scenario), "--quiet",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "FAIL full_mesh" in result.output


def test_scenario_error_exits_2_with_location(tmp_path: Path) -> None:
    # A deep folder: the location must come out on one line, however long, so
    # editors and terminals can follow it (rich used to wrap it mid-path).
    folder = tmp_path / ("nested-scenario-folder-" * 4) / "more"
    folder.mkdir(parents=True)
    scenario = folder / "broken.yaml"
    scenario.write_text("name: broken\nnetwork:\n  loss: 300%\n")
    result = CliRunner().invoke(app, ["run", str(scenario), "--quiet"])
    assert result.exit_code == 2
    assert f"{scenario}:3: network.loss" in result.output


def test_set_overrides_are_validated(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--quiet", "--set", "policy.preset=fancy",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "policy.preset" in result.output


def test_interrupted_run_keeps_what_it_recorded(tmp_path: Path) -> None:
    calls = []

    def interrupt(now: float, until: float, sample: object, events: int) -> None:
        calls.append(now)
        if now >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenario("quickstart", out_dir=tmp_path, progress=interrupt, plots=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] is False and summary["error"] == "interrupted"
    assert 20 <= summary["simulated_s"] < 60
    events = read_table(tmp_path / "events.parquet")
    assert events.num_rows > 0
    assert max(events.column("time").to_pylist()) <= summary["simulated_s"]


def test_jamixir_vs_jamnp_s_shows_the_difference_in_numbers(tmp_path: Path) -> None:
    # Without slot traffic (keep-alives only): nothing tells jamixir its peers died.
    path = SCENARIOS / "jamixir-vs-jamnp-s.yaml"
    good = run_scenario(path, out_dir=tmp_path / "n", plots=False,
                        overrides={"policy.preset": "jamnp-s", "traffic": "none"})
    bad = run_scenario(path, out_dir=tmp_path / "j", plots=False,
                       overrides={"policy.preset": "jamixir", "traffic": "none"})
    after = "restart 0..3 @ 90s"
    assert good.passed and good.summary["metrics"]["time_to_full_mesh_after_s"][after] <= 30
    assert not bad.passed
    assert bad.summary["metrics"]["time_to_full_mesh_after_s"][after] is None
    assert bad.summary["metrics"]["final_links_usable"] < \
        good.summary["metrics"]["final_links_usable"] == 120


def test_validate_and_schema_commands() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(SCENARIOS / "mini.yaml")])
    assert ok.exit_code == 0 and "78 validators" in ok.output
    schema = runner.invoke(app, ["schema"])
    assert schema.exit_code == 0 and json.loads(schema.output)["title"] == "Scenario"


def test_unknown_testnet_is_refused_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--quiet", "--testnet", "kubernetes",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "choose one of local, docker, swarm" in result.output


def test_testnet_plan_maps_the_timeline_onto_backend_ops(tmp_path: Path) -> None:
    from jamsim.scenario.loader import load_scenario
    from jamsim.scenario.testnet_runner import testnet_plan
    from jamsim.testnet.base import Heal, Kill, Partition, Restart

    spec, ops = testnet_plan(load_scenario(SCENARIOS / "quickstart.yaml"), tmp_path, 30000)
    assert spec.validators == 6 and spec.base_port == 30000 and spec.policy == "jamnp-s"
    assert ops == [(15.0, Partition(((0, 1, 2), (3, 4, 5)))), (35.0, Heal())]
    _, ops = testnet_plan(load_scenario(SCENARIOS / "jamixir-vs-jamnp-s.yaml"), tmp_path)
    assert [op for _, op in ops] == [*(Kill(i) for i in range(4)), *(Restart(i) for i in range(4))]


def test_reconnect_percentile_expectations_are_evaluated(tmp_path: Path) -> None:
    """Regression: a local variable shadowed percentile(), so these crashed the run."""
    scenario = tmp_path / "p.yaml"
    scenario.write_text(
        "name: pct\nseed: 1\nduration: 40s\nvalidators: {count: 6}\n"
        "network: {latency: {default: 20ms}}\npolicy: {preset: jamnp-s, idle_timeout: 5s}\n"
        "timeline:\n  - {at: 5s, partition: [['0..2'], ['3..5']]}\n  - {at: 15s, heal: all}\n"
        "expect:\n  - reconnect_p99: {below: 30s, after: 5s}\n"
        "  - reconnect_p50: {below: 0.001s, after: 5s}\n")
    result = run_scenario(scenario, out_dir=tmp_path / "run", plots=False)
    p99, p50 = result.verdicts
    assert p99.passed and p99.measured is not None and 0 < p99.measured < 30
    assert not p50.passed and "p50 of" in p50.detail
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["complete"] is True


def test_isolating_several_nodes_isolates_each_of_them(tmp_path: Path) -> None:
    """Regression: each isolation used to replace the previous one (only v2 was cut)."""
    scenario = tmp_path / "iso.yaml"
    scenario.write_text(
        "name: iso\nseed: 1\nduration: 30s\nsample_interval: 1s\nvalidators: {count: 6}\n"
        "policy: {preset: jamnp-s, idle_timeout: 5s}\n"
        "timeline:\n  - {at: 5s, isolate: [v1, v2]}\n")
    run_scenario(scenario, out_dir=tmp_path / "run", plots=False)
    rows = read_table(tmp_path / "run" / "connectivity.parquet").to_pylist()
    last = rows[-1]
    # v1 and v2 lose all 9 of their links (4 + 4 + their own): 15 - 9 = 6 remain.
    assert last["links_usable"] == 6 and last["components"] == 3


def test_testnet_plan_carries_every_link_and_policy_setting_to_real_nodes(
        tmp_path: Path) -> None:
    """Real nodes get what the simulator gets: latency distribution, bandwidth,
    burst loss and string/bool policy fields (they used to be dropped silently)."""
    from jamsim.scenario.loader import parse_scenario
    from jamsim.scenario.testnet_runner import testnet_plan
    from jamsim.testnet.base import LinkConditions, SetLink

    scenario = parse_scenario(
        "name: shaped\nduration: 60s\nvalidators: {count: 4, regions: {eu: 50%, us: 50%}}\n"
        "network:\n  latency: {default: 20ms, eu-us: {median: 80ms, jitter: 10ms, "
        "distribution: lognormal}}\n"
        "  loss: {model: gilbert-elliott, p: 0.01, r: 0.5, bad_loss: 1.0}\n"
        "  bandwidth: 10Mbit\n"
        "policy: {preset: jamnp-s, jitter: equal, non_preferred_dials: false, "
        "idle_timeout: null, max_retry: 8s}\n"
        "timeline:\n  - {at: 30s, link: {between: [eu, us], latency: 150ms}}\n")
    spec, ops = testnet_plan(scenario, tmp_path)
    assert spec.links[("eu", "us")] == LinkConditions(
        0.08, 0.01, 0.0, (0.01, 0.5, 1.0), "lognormal", 10e6)
    assert spec.links[("us", "eu")] == spec.links[("eu", "us")]
    assert spec.links[("eu", "eu")] == LinkConditions(
        0.02, 0.0, 0.0, (0.01, 0.5, 1.0), "normal", 10e6)
    assert dict(spec.policy_overrides) == {"jitter": "equal", "non_preferred_dials": False,
                                           "idle_timeout": None, "max_retry": 8.0}
    (at, op), = ops
    assert at == 30.0 and isinstance(op, SetLink) and op.conditions.latency == 0.15 \
        and op.conditions.bandwidth_bps == 10e6
