"""Run a scenario and write its results folder.

One entry point, :func:`run_scenario`, for the CLI, sweeps and notebooks. The
results folder (``runs/<name>-<timestamp>/``) holds ``scenario.yaml`` (resolved,
with defaults filled in), ``events.parquet``, ``connectivity.parquet``,
``summary.json`` (metrics and each expectation's verdict) and PNG plots. Rows are
flushed to disk as the run goes, so Ctrl-C or a crash leaves a readable folder
whose summary says ``"complete": false``.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jamsim import native_status
from jamsim.core.errors import UsageError
from jamsim.scenario.expectations import (
    Verdict,
    evaluate,
    percentile,
    reconnect_times,
    time_to_full_mesh,
)
from jamsim.scenario.loader import Override, load_scenario, parse_scenario
from jamsim.scenario.resolve import network_config, traffic_config, validator_set
from jamsim.scenario.schema import Scenario
from jamsim.scenario.timeline import describe, schedule_timeline
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.simulation import Simulation
from jamsim.telemetry.records import ConnectivitySample, EventRecord
from jamsim.telemetry.writer import ConnectivityWriter, EventTableWriter

if TYPE_CHECKING:
    from jamsim.analysis.delivery import Delivery
    from jamsim.sim.quic.slot_traffic import QuicTrafficRecording
    from jamsim.traffic.simulated import TrafficRecording

__all__ = ["Progress", "RunResult", "run_scenario"]

TESTNETS = ("local", "docker", "swarm")
RECOVERY_ACTIONS = ("heal", "restart", "resume", "epoch", "link")

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
        return all(v.passed for v in self.verdicts)


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
) -> RunResult:
    """Run ``source`` (a path, a built-in name or a Scenario) in simulation."""
    if isinstance(source, Scenario):
        scenario = apply_overrides(source, overrides or {})
    else:
        scenario = load_scenario(source, _as_overrides(overrides or {}))
    if testnet is not None and testnet not in TESTNETS:
        raise UsageError(f"unknown testnet {testnet!r}; choose one of {', '.join(TESTNETS)}")
    out = _results_dir(scenario, Path(out_dir) if out_dir else None, Path(runs_root))
    (out / "scenario.yaml").write_text(
        yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True), sort_keys=False))

    validators = validator_set(scenario)
    events: list[EventRecord] = []
    samples: list[ConnectivitySample] = []
    event_writer = EventTableWriter(out / "events.parquet")
    sample_writer = ConnectivityWriter(out / "connectivity.parquet")

    def on_event(record: EventRecord) -> None:
        events.append(record)
        event_writer.append(record)

    def on_sample(sample: ConnectivitySample) -> None:
        samples.append(sample)
        sample_writer.append(sample)

    writers = (event_writer, sample_writer)
    if testnet is not None:
        from jamsim.scenario.testnet_runner import run_on_testnet

        reached = [0.0]

        def on_wall_progress(now: float) -> None:
            reached[0] = now
            if progress is not None:
                progress(min(now, scenario.duration), scenario.duration,
                         samples[-1] if samples else None, 0)

        def play_on_testnet() -> None:
            recorded = run_on_testnet(scenario, testnet, out / "testnet", on_sample,
                                      on_wall_progress, traffic=traffic_config(scenario),
                                      tables_dir=out)
            events.extend(recorded)
            event_writer.extend(recorded)

        result = _recorded_run(scenario, out, events, samples, writers, play_on_testnet,
                               lambda: reached[0], f"testnet:{testnet}")
        return _with_plots(result) if plots else result

    # The quic fidelity needs private keys: the dev keys of the set and of every
    # epoch rotation the timeline can perform (jamsim/scenario/timeline.py).
    epochs = sum(1 for entry in scenario.timeline if entry.action == "epoch")
    identities = DevKeyring.for_scenario(scenario.seed, scenario.validators.count, epochs) \
        if scenario.fidelity == "quic" else None
    built = Simulation(validators, network_config(scenario.network), scenario.policy.build(),
                       fidelity=scenario.fidelity, seed=scenario.seed, on_event=on_event,
                       sample_interval=scenario.sample_interval, on_sample=on_sample,
                       identities=identities, **_simulation_traffic(scenario))
    schedule_timeline(built, scenario, validators)
    recording = _record_traffic(scenario, built, out)
    sim: Simulation | None = built
    del built  # only ``sim`` holds it: simulate() drops it as soon as the run ends
    finished_at = 0.0

    def simulate() -> None:
        nonlocal sim, finished_at
        assert sim is not None
        chunks = 100
        # Held across chunks: restoring the default thresholds between chunks would
        # trigger a full collection of the simulation's heap up to 100 times.
        with relaxed_gc():
            for step in range(1, chunks + 1):
                sim.run(scenario.duration * step / chunks)
                if progress is not None:
                    progress(sim.now, scenario.duration, samples[-1] if samples else None,
                             len(events))
            sim.catch_up()  # record the attempts of dials still cut at the end
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

    result = _recorded_run(scenario, out, events, samples, writers,
                           _closing_traffic(simulate, recording), simulated_until, None)
    return _with_plots(result) if plots else result


def _simulation_traffic(scenario: Scenario) -> dict[str, Any]:
    """``Simulation`` arguments for the scenario's slot traffic: connections carry
    data every slot (loss detection notices a cut path), on the scenario's slot clock."""
    config = traffic_config(scenario)
    if config is None:
        return {"traffic": False}
    return {"traffic": True, "slot_seconds": config.slot}


def _record_traffic(scenario: Scenario, sim: Simulation,
                    out: Path) -> TrafficRecording | QuicTrafficRecording | None:
    """Slot traffic of a ``model`` run, evaluated by the overlay and written per slot
    (``None`` for ``traffic: none``; the ``quic`` fidelity carries it on streams)."""
    config = traffic_config(scenario)
    if config is None:
        return None
    if scenario.fidelity == "quic":  # real streams on the simulated aioquic connections
        from jamsim.sim.quic.slot_traffic import QuicTrafficRecording

        return QuicTrafficRecording(sim, config, scenario.seed, scenario.duration, out)
    from jamsim.traffic.simulated import TrafficRecording

    return TrafficRecording(sim, config, scenario.seed, scenario.duration, out)


def _closing_traffic(execute: Callable[[], None],
                     recording: TrafficRecording | QuicTrafficRecording | None,
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


def _delivery(scenario: Scenario, out: Path) -> Delivery | None:
    """The run's delivery tables, if it has any."""
    from jamsim.analysis.delivery import load_delivery

    return load_delivery(out)


def _delivery_summary(scenario: Scenario, delivery: Delivery) -> dict[str, Any]:
    """summary.json's ``metrics.delivery``: overall and after each recovery action."""
    from jamsim.analysis.delivery import delivery_metrics

    recoveries = [(e.at, describe(e)) for e in scenario.timeline
                  if e.action in RECOVERY_ACTIONS]
    return delivery_metrics(delivery, recoveries)


def _recorded_run(scenario: Scenario, out: Path, events: list[EventRecord],
                  samples: list[ConnectivitySample],
                  writers: tuple[EventTableWriter, ConnectivityWriter],
                  execute: Callable[[], None], reached: Callable[[], float],
                  runtime: str | None) -> RunResult:
    """Run ``execute`` and, whatever happens, close the tables and write the
    summary: a run cut short by Ctrl-C or an error is marked incomplete.

    On success the in-memory ``events`` and ``samples`` are emptied: everything
    after the summary reads the tables on disk, and 2.5 million records of a
    full-scale run are worth a gigabyte."""
    started = time.perf_counter()
    complete = False
    error: str | None = None
    try:
        execute()
        complete = True
    except KeyboardInterrupt:
        error = "interrupted"
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        for writer in writers:
            writer.close()
        delivery = _delivery(scenario, out) if complete else None
        verdicts = evaluate(scenario, events, samples, delivery) if complete else []
        summary = _summary(scenario, validators_count=scenario.validators.count,
                           events=events, samples=samples, verdicts=verdicts,
                           complete=complete, error=error, simulated=reached(),
                           wall=time.perf_counter() - started)
        if runtime is not None:
            summary["runtime"] = runtime
        if delivery is not None:
            summary["metrics"]["delivery"] = _delivery_summary(scenario, delivery)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    events.clear()
    samples.clear()
    return RunResult(scenario, out, summary, verdicts)


def _with_plots(result: RunResult) -> RunResult:
    """Write the per-run plots and list them in the summary."""
    result.summary["plots"] = [p.name for p in _write_plots(result.out_dir)]
    (result.out_dir / "summary.json").write_text(
        json.dumps(result.summary, indent=2, default=str))
    return result


def _write_plots(out: Path) -> list[Path]:
    try:
        from jamsim.analysis.plots import write_run_plots
    except ImportError:  # analysis extras missing: tables are still written
        return []
    return list(write_run_plots(out)) + _write_delivery_plots(out)


def _write_delivery_plots(out: Path) -> list[Path]:
    """``delivery.png`` for runs with slot traffic."""
    from jamsim.analysis.delivery_plots import write_delivery_plots

    return write_delivery_plots(out)


def _summary(scenario: Scenario, *, validators_count: int, events: list[EventRecord],
             samples: list[ConnectivitySample], verdicts: list[Verdict], complete: bool,
             error: str | None, simulated: float, wall: float) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = [
        {"at": e.at, "action": e.action, "label": describe(e)} for e in scenario.timeline]
    after_events: dict[str, Any] = {}
    for entry in scenario.timeline:
        if entry.action not in RECOVERY_ACTIONS:
            continue  # "full mesh after a partition" would just be the last sample before it
        took = time_to_full_mesh(samples, entry.at)
        after_events[f"{describe(entry)} @ {entry.at:g}s"] = took
    first_fault = min((e.at for e in scenario.timeline), default=0.0)
    all_reconnects = reconnect_times(events, first_fault)
    reconnects = [t for t in all_reconnects if t != float("inf")]
    unrepaired = len(all_reconnects) - len(reconnects)
    counts: dict[str, int] = {}
    for row in events:
        counts[row.event] = counts.get(row.event, 0) + 1
    final = samples[-1] if samples else None
    return {
        "name": scenario.name,
        "complete": complete,
        "error": error,
        "seed": scenario.seed,
        "validators": validators_count,
        "fidelity": scenario.fidelity,
        "policy": scenario.policy.preset,
        "policy_overrides": scenario.policy.overrides(),
        "duration_s": scenario.duration,
        "simulated_s": simulated,
        "wall_s": round(wall, 3),
        "engine": native_status().state,
        "timeline": timeline,
        "metrics": {
            "time_to_full_mesh_s": time_to_full_mesh(samples, 0.0),
            "time_to_full_mesh_after_s": after_events,
            "final_links_usable": final.links_usable if final else 0,
            "final_links_believed": final.links_believed if final else 0,
            "final_links_stale": final.links_stale if final else 0,
            "max_links_stale": max((s.links_stale for s in samples), default=0),
            "longest_stale_s": max((s.longest_stale for s in samples), default=0.0),
            "final_links_expected": final.links_expected if final else 0,
            "final_full_mesh": final.full_mesh if final else False,
            "max_duplicates": max((s.duplicates for s in samples), default=0),
            "reconnections": len(reconnects),
            "unrepaired_disconnections": unrepaired,
            "reconnect_p50_s": percentile(reconnects, 0.5) if reconnects else None,
            "reconnect_p99_s": percentile(reconnects, 0.99) if reconnects else None,
            "reconnect_max_s": max(reconnects) if reconnects else None,
            "event_counts": counts,
        },
        "expectations": [v.as_dict() for v in verdicts],
        "passed": complete and all(v.passed for v in verdicts),
    }
