"""Run a small scenario on a real testnet backend and check what every such run must show."""

from __future__ import annotations

from pathlib import Path

from jamsim.analysis.run import Run


def run_checked(tmp_path: Path, testnet: str, scenario_yaml: str, validators: int) -> Run:
    """``jamsim run FILE --testnet T``: expectations pass, results load like a simulation's.

    Every node reported telemetry and the mesh was full at some sample. Returns
    the loaded run (:func:`jamsim.analysis.load_run`) for backend-specific checks.
    """
    from jamsim.analysis import load_run
    from jamsim.scenario.runner import run_scenario

    scenario = tmp_path / f"{testnet}-tiny.yaml"
    scenario.write_text(scenario_yaml)
    result = run_scenario(scenario, out_dir=tmp_path / "run", testnet=testnet, plots=False)
    assert result.passed, result.summary
    run = load_run(tmp_path / "run")
    assert set(run.events["node"]) == set(range(validators))
    assert run.connectivity["links_usable"].max() == validators * (validators - 1) // 2
    return run
