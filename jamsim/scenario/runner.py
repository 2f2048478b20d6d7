"""Run a scenario and write its results folder.

One entry point, :func:`run_scenario`, for the CLI, sweeps and notebooks. The
results folder (``runs/<name>-<timestamp>/``) holds ``scenario.yaml`` (resolved,
with defaults filled in), ``events.parquet``, ``connectivity.parquet``,
``summary.json`` (metrics and each expectation's verdict) and PNG plots, plus
``nodes.parquet`` (the validators the event rows' indices name).

Rows are streamed to disk as the run goes (:mod:`jamsim.scenario.recording`), never
kept in memory: the summary and the verdicts are computed afterwards from the
tables on disk by :mod:`jamsim.analysis.metrics`, the code the report and the
notebooks use. ``summary.json`` is first written as a placeholder marked
``"complete": false``, so a folder whose process was killed says so; Ctrl-C, SIGTERM
or an error close the tables and write the summary, still incomplete, with the
reason; only a run that finished is marked complete, after its last file.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jamsim import native_status
from jamsim.core.errors import UsageError
from jamsim.scenario.expectations import Verdict, evaluate, run_passed
from jamsim.scenario.loader import Override, load_scenario, parse_scenario
from jamsim.scenario.recording import (
    RunInterrupted,
    RunRecorder,
    node_records,
    signals_deferred,
    signals_interrupt,
)
from jamsim.scenario.resolve import network_config, traffic_config, validator_set
from jamsim.scenario.schema import Scenario
from jamsim.scenario.timeline import describe, schedule_timeline
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.simulation import Simulation
from jamsim.telemetry.records import ConnectivitySample

if TYPE_CHECKING:
    from jamsim.sim.quic.slot_traffic import QuicTrafficRecording
    from jamsim.traffic.simulated import TrafficRecording

__all__ = ["Progress", "RunResult", "run_scenario"]

TESTNETS = ("local", "docker", "swarm")
UNFINISHED = "the run did not finish: killed or crashed before writing its summary"

Progress = Callable[[float, float, ConnectivitySample | None, int], None]
"""``progress(sim_now, sim_until, latest_sample, events_so_far)``."""


@dataclass
class RunResult:
    scenario: Scenario
    out_dir: Path
    summary: dict[str, Any]
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No expectation failed (not measured ones do not fail a run)."""
        return run_passed(self.verdicts)


def _results_dir(scenario: Scenario, out_dir: Path | None, root: Path) -> Path:
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{scenario.name}-{stamp}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{scenario.name}-{stamp}-{suffix}"
    candidate.mkdir(parents=True)
    return candidate


def _as_overrides(overrides: dict[str, Any]) -> list[Override]:
    return [Override(key, value, f"override {key}={value!r}")
            for key, value in overrides.items()]


def apply_overrides(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """``{"policy.preset": "jamixir", "seed": 3}`` -> a re-validated scenario.

    Errors name the override at fault (``override policy.max_retry='1x'``), as the
    loader does for ``--set``.
    """
    if not overrides:
        return scenario
    text = yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True),
                          sort_keys=False)
    return parse_scenario(text, f"<scenario {scenario.name}>", _as_overrides(overrides))


def run_scenario(
    source: str | Path | Scenario,
    *,
    out_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
    testnet: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
    plots: bool = True,
    record_events: bool = True,
) -> RunResult:
    """Run ``source`` (a path, a built-in name or a Scenario) in simulation, or on
    a ``testnet``. ``record_events=False`` (simulation only) skips the event table:
    samples and the summary's sample-based metrics only, for measuring the cost of
    recording."""
    if isinstance(source, Scenario):
        scenario = apply_overrides(source, overrides or {})
    else:
        scenario = load_scenario(source, _as_overrides(overrides or {}))
    if testnet is not None and testnet not in TESTNETS:
        raise UsageError(f"unknown testnet {testnet!r}; choose one of {', '.join(TESTNETS)}")
    out = _results_dir(scenario, Path(out_dir) if out_dir else None, Path(runs_root))
    (out / "scenario.yaml").write_text(
        yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True), sort_keys=False))
    _write_summary(out, _summary_base(scenario, complete=False, error=UNFINISHED,
                                      simulated=0.0, wall=0.0))
    recorder = RunRecorder(out)

    def report_progress(now: float) -> None:
        if progress is not None:
            progress(min(now, scenario.duration), scenario.duration, recorder.latest,
                     recorder.event_count)

    with signals_interrupt():
        if testnet is not None:
            from jamsim.scenario.testnet_runner import run_on_testnet

            reached = [0.0]

            def on_wall_progress(now: float) -> None:
                reached[0] = now
                recorder.flush()
                report_progress(now)

            def play_on_testnet() -> None:
                run_on_testnet(scenario, testnet, out / "testnet", recorder.on_sample,
                               on_wall_progress, traffic=traffic_config(scenario),
                               tables_dir=out, on_record=recorder.on_event,
                               on_nodes=lambda nodes: recorder.write_nodes(node_records(nodes)))

            return _recorded_run(scenario, out, recorder, play_on_testnet,
                                 lambda: reached[0], f"testnet:{testnet}", plots)
        return _simulated_run(scenario, out, recorder, report_progress, plots, record_events)


def _simulated_run(scenario: Scenario, out: Path, recorder: RunRecorder,
                   report_progress: Callable[[float], None], plots: bool,
                   record_events: bool) -> RunResult:
    validators = validator_set(scenario)
    # The quic fidelity needs private keys: the dev keys of the set and of every
    # epoch rotation the timeline can perform (jamsim/scenario/timeline.py).
    epochs = sum(1 for entry in scenario.timeline if entry.action == "epoch")
    identities = DevKeyring.for_scenario(scenario.seed, scenario.validators.count, epochs) \
        if scenario.fidelity == "quic" else None
    built = Simulation(validators, network_config(scenario.network), scenario.policy.build(),
                       fidelity=scenario.fidelity, seed=scenario.seed,
                       sample_interval=scenario.sample_interval, on_sample=recorder.on_sample,
                       identities=identities,
                       on_rows=recorder.events.append_compact_rows if record_events else None,
                       reason_codes=recorder.events.reason_codes,
                       **_simulation_traffic(scenario))
    schedule_timeline(built, scenario, validators)
    recording = _record_traffic(scenario, built, out)
    sim: Simulation | None = built
    del built  # only ``sim`` holds it: simulate() drops it as soon as the run ends
    finished_at = 0.0

    def record_nodes() -> None:
        assert sim is not None
        if recorder.nodes_written != len(sim.nodes):  # an epoch change adds validators
            recorder.write_nodes(node_records(
                (n.index, n.key, n.region, n.epoch) for n in sim.nodes))

    def simulate() -> None:
        nonlocal sim, finished_at
        assert sim is not None
        record_nodes()
        chunks = 100
        # Held across chunks: restoring the default thresholds between chunks would
        # trigger a full collection of the simulation's heap up to 100 times.
        try:
            with relaxed_gc():
                for step in range(1, chunks + 1):
                    sim.run(scenario.duration * step / chunks)
                    record_nodes()
                    sim.flush_rows()
                    recorder.flush()  # what a kill would keep: up to here
                    report_progress(sim.now)
                sim.catch_up()  # record the attempts of dials still cut at the end
        finally:
            sim.flush_rows()  # an interrupted run keeps the rows of its last step too
        if recording is not None:
            recording.close()  # also lets go of the simulation
        # Free the simulation before the tables are merged, the summary computed and
        # the plots drawn: at 1023 validators it is over a gigabyte, and each of
        # those needs memory of its own (the run's peak was there).
        finished_at = sim.now
        sim = None
        gc.collect()  # the simulation's objects reference each other

    def simulated_until() -> float:
        return sim.now if sim is not None else finished_at

    return _recorded_run(scenario, out, recorder, _closing_traffic(simulate, recording),
                         simulated_until, None, plots)


def _simulation_traffic(scenario: Scenario) -> dict[str, Any]:
    """``Simulation`` arguments for the scenario's slot traffic: connections carry
    data every slot (loss detection notices a cut path), on the scenario's slot clock."""
    config = traffic_config(scenario)
    if config is None:
        return {"traffic": False}
    return {"traffic": True, "slot_seconds": config.slot}


def _record_traffic(scenario: Scenario, sim: Simulation,
                    out: Path) -> TrafficRecording | QuicTrafficRecording | None:
    """Slot traffic of a simulated run, written per slot (``None`` for ``traffic:
    none``): the ``model`` fidelity evaluates it with the overlay, the ``quic``
    fidelity carries it on real streams of its aioquic connections."""
    config = traffic_config(scenario)
    if config is None:
        return None
    if scenario.fidelity == "quic":
        from jamsim.sim.quic.slot_traffic import QuicTrafficRecording

        return QuicTrafficRecording(sim, config, scenario.seed, scenario.duration, out)
    from jamsim.traffic.simulated import TrafficRecording

    return TrafficRecording(sim, config, scenario.seed, scenario.duration, out)


def _closing_traffic(
    execute: Callable[[], None], recording: TrafficRecording | QuicTrafficRecording | None,
) -> Callable[[], None]:
    """``execute`` that closes the delivery tables however it ends (an interrupted
    run keeps what it recorded, like the other tables)."""
    if recording is None:
        return execute

    def run() -> None:
        try:
            execute()
        finally:
            recording.close()
    return run


def _recorded_run(scenario: Scenario, out: Path, recorder: RunRecorder,
                  execute: Callable[[], None], reached: Callable[[], float],
                  runtime: str | None, plots: bool) -> RunResult:
    """Run ``execute`` and, whatever happens, close the tables and write the
    summary, computed from the tables on disk: a run cut short by Ctrl-C, SIGTERM
    or an error is marked incomplete with the reason."""
    started = time.perf_counter()
    complete = False
    error: str | None = None
    try:
        execute()
        complete = True
    except RunInterrupted as exc:
        error = str(exc)
        raise
    except KeyboardInterrupt:
        error = "interrupted"
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        # A second Ctrl-C while the folder is being finished must not leave it
        # half written: finish it first, then let the interruption through.
        with signals_deferred():
            recorder.close()
            summary = _summary_base(scenario, complete=False,
                                    error=error if not complete else "summarising",
                                    simulated=reached(), wall=time.perf_counter() - started)
            if runtime is not None:
                summary["runtime"] = runtime
            _write_summary(out, summary)
            verdicts: list[Verdict] = []
            failure: Exception | None = None
            try:
                run = _open(out)
                verdicts = evaluate(scenario, run) if complete else []
                summary["metrics"] = run_metrics(run)
                summary["expectations"] = [v.as_dict() for v in verdicts]
                summary["passed"] = complete and run_passed(verdicts)
                summary["warnings"] = [w for w in (v.warning for v in verdicts) if w]
                if complete and plots:
                    summary["plots"] = [p.name for p in _write_plots(out, run)]
            except Exception as exc:  # the folder still gets its (incomplete) summary
                failure = exc
                error = error or f"summary failed: {type(exc).__name__}: {exc}"
                complete = False
                summary["passed"] = False
            summary["complete"], summary["error"] = complete, error
            summary["wall_s"] = round(time.perf_counter() - started, 3)
            _write_summary(out, summary)  # the last file: now the folder is complete
    if failure is not None:
        raise failure
    return RunResult(scenario, out, summary, verdicts)


def _open(out: Path) -> Any:
    from jamsim.analysis.run import load_run

    return load_run(out)


def run_metrics(run: Any) -> dict[str, Any]:
    from jamsim.analysis.metrics import run_metrics as metrics_of

    return metrics_of(run)


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, out / "summary.json")


def _write_plots(out: Path, run: Any) -> list[Path]:
    try:
        from jamsim.analysis.plots import write_run_plots
    except ImportError:  # analysis extras missing: tables are still written
        return []
    return list(write_run_plots(out, run)) + _write_delivery_plots(out)


def _write_delivery_plots(out: Path) -> list[Path]:
    """``delivery.png`` for runs with slot traffic."""
    from jamsim.analysis.delivery_plots import write_delivery_plots

    return write_delivery_plots(out)


def _summary_base(scenario: Scenario, *, complete: bool, error: str | None,
                  simulated: float, wall: float) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = [
        {"at": e.at, "action": e.action, "label": describe(e)} for e in scenario.timeline]
    return {
        "name": scenario.name,
        "complete": complete,
        "error": error,
        "seed": scenario.seed,
        "validators": scenario.validators.count,
        "fidelity": scenario.fidelity,
        "policy": scenario.policy.preset,
        "policy_overrides": scenario.policy.overrides(),
        "duration_s": scenario.duration,
        "simulated_s": simulated,
        "wall_s": round(wall, 3),
        "engine": native_status().state,
        "timeline": timeline,
        "metrics": {},
        "expectations": [],
        "warnings": [],
        "passed": False,
    }
