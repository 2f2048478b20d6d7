"""``jamsim node``: run one real JAMNP-S node until SIGINT/SIGTERM.

A typer-compatible function; jamsim/cli.py (another contributor's file) registers
it with ``app.command("node")(node_command)``. The command line is the contract
used by :func:`jamsim.testnet.local.node_argv`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from jamsim.core.errors import UsageError
from jamsim.core.policy import ConnectionPolicy
from jamsim.net.node import Node
from jamsim.protocol.messages import FULL_CORE_COUNT
from jamsim.traffic.config import ExtraMessage, TrafficConfig, default_core_count
from jamsim.traffic.schedule import SlotSchedule

log = logging.getLogger(__name__)


def parse_policy_sets(items: list[str]) -> dict[str, Any]:
    """``name=value`` overrides: numbers become floats, ``none`` becomes None."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--policy-set takes name=value, got {item!r}")
        value: Any
        if raw.lower() == "none":
            value = None
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = float(raw)
            except ValueError:
                value = raw
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class NodeTrafficOptions:
    """The run's slot traffic as ``jamsim node`` receives it (``--traffic-*``).

    ``start``: Unix time slot 0 starts, shared by every node of the run; ``seed``:
    the scenario seed (authors and blocks derive from it).
    """

    start: float
    seed: str
    config: TrafficConfig

    def schedule(self, validator_count: int) -> SlotSchedule:
        seed: int | str = int(self.seed) if self.seed.lstrip("-").isdigit() else self.seed
        return SlotSchedule(validator_count, seed, self.config)


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


async def run_node(
    keys: Path,
    index: int,
    port: int | None,
    telemetry: tuple[str, int] | None,
    policy: ConnectionPolicy,
    control_port: int | None,
    control_host: str = "127.0.0.1",
    resolve_timeout: float | None = None,
    jam_params: dict[str, int] | None = None,
    traffic: NodeTrafficOptions | None = None,
) -> None:
    """Start node ``index`` of ``keys`` (+ control channel), wait for a signal, stop."""
    from jamsim.net.control import ControlServer
    from jamsim.net.impairment import DatagramImpairment
    from jamsim.testnet.keys import load_keys

    if resolve_timeout is not None:
        import json

        from jamsim.testnet.keys import parse_keys, resolve_hostnames

        try:
            document = json.loads(keys.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{keys}: cannot read keys file: {exc}") from exc
        resolved = await asyncio.to_thread(resolve_hostnames, document, resolve_timeout)
        genesis, vset, identities = parse_keys(resolved, str(keys))
    else:
        genesis, vset, identities = load_keys(keys)
    if not 0 <= index < len(identities):
        raise UsageError(f"--index {index} out of range (0..{len(identities) - 1})")
    info = vset[index]
    client = None
    if telemetry is not None:
        from jamsim.telemetry.collector import TelemetryClient
        from jamsim.telemetry.jip3 import JamParameters, NodeInfo

        implied = traffic.config.jam_parameters(len(vset)) if traffic is not None else {}
        params = JamParameters.for_network(len(vset), **{**implied, **(jam_params or {})})
        client = TelemetryClient(
            telemetry[0], telemetry[1], NodeInfo(info.key, info.address, genesis, params)
        )
    impairment = DatagramImpairment(seed=index)
    schedule = traffic.schedule(len(vset)) if traffic is not None else None
    core_count = FULL_CORE_COUNT
    if schedule is not None:
        core_count = schedule.config.core_count or default_core_count(len(vset))
    node = Node(
        identities[index],
        vset,
        genesis,
        port=port if port is not None else info.address.port,
        host=info.address.host,
        policy=policy,
        telemetry=client,
        impairment=impairment,
        rng_seed=index,
        core_count=core_count,
        extra_kinds=schedule.config.extra_kinds() if schedule is not None else None,
    )
    driver = None
    if traffic is not None and schedule is not None:
        from jamsim.net.traffic import NodeTraffic

        driver = NodeTraffic(node, index, schedule, traffic.start)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    if driver is not None:
        driver.start()
    control = None
    if control_port is not None:
        control = ControlServer(impairment, node.status, host=control_host, port=control_port)
        await control.start()
    log.info("node %d listening on %s:%d", index, node.host, node.port)
    try:
        await stop.wait()
    finally:
        if control is not None:
            await control.stop()
        if driver is not None:
            driver.stop()
        await node.stop()


def parse_jam_params(items: list[str]) -> dict[str, int]:
    """``name=value`` JAM parameter overrides for telemetry node information."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name or not raw.isdigit():
            raise UsageError(f"--jam-param takes name=non-negative-integer, got {item!r}")
        out[name] = int(raw)
    return out


def node_command(
    keys: Annotated[Path, typer.Option(help="Keys/validator-set file from `jamsim keys`.")],
    index: Annotated[int, typer.Option(help="Which validator of the file this node is.")],
    port: Annotated[
        int | None, typer.Option(help="UDP port (default: the file's port for --index).")
    ] = None,
    telemetry: Annotated[
        str | None, typer.Option(help="JIP-3 telemetry collector HOST:PORT.")
    ] = None,
    policy: Annotated[str, typer.Option(help="Connection policy preset.")] = "jamnp-s",
    policy_set: Annotated[
        list[str] | None, typer.Option(help="Policy override name=value (repeatable).")
    ] = None,
    control_port: Annotated[
        int | None, typer.Option(help="TCP port of the control channel (harness -> node).")
    ] = None,
    control_host: Annotated[
        str,
        typer.Option(
            help="Address the control channel listens on. Loopback by default: it can "
            "rewrite the node's impairment rules, so only expose it (e.g. 0.0.0.0 in a "
            "container on a private network) where the harness needs to reach it."
        ),
    ] = "127.0.0.1",
    resolve_hosts: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait for validator host names in the keys file to resolve "
            "(Swarm: tasks get addresses only when they start). Off by default: keys "
            "files normally hold IP addresses."
        ),
    ] = None,
    jam_param: Annotated[
        list[str] | None,
        typer.Option(
            help="JAM parameter for the telemetry node information, name=value "
            "(repeatable; e.g. epoch_length=600). validator_count is the keys file's "
            "validator count, core_count and slot_period those of the slot traffic "
            "(--traffic-cores, --traffic-slot; else one core per three validators, "
            "6 s) unless given."
        ),
    ] = None,
    traffic_start: Annotated[
        float | None,
        typer.Option(help="Send JAM slot traffic, slot 0 starting at this Unix time "
                     "(the same for every node of the run). Off when not given."),
    ] = None,
    traffic_seed: Annotated[
        str, typer.Option(help="Seed of the slot schedule and the synthetic chain.")
    ] = "0",
    traffic_slot: Annotated[float, typer.Option(help="Slot length, seconds.")] = 6.0,
    traffic_lead: Annotated[
        float, typer.Option(help="Seconds before each slot its CE 141 assurances go out.")
    ] = 2.0,
    traffic_block_size: Annotated[
        int, typer.Option(help="Bytes of each block served by CE 128.")
    ] = 100_000,
    traffic_first_slot: Annotated[
        int, typer.Option(help="Slots before this one send nothing.")
    ] = 0,
    traffic_cores: Annotated[
        int | None, typer.Option(help="Core count (assurance bitfield size); default V // 3.")
    ] = None,
    traffic_extra: Annotated[
        list[str] | None,
        typer.Option(help="An extra CE message every slot, KIND:SIZE:FANOUT:OFFSET, e.g. "
                     "200:1024:grid:1.0 (repeatable; each its own kind, not 128 or 141). "
                     "The node also accepts streams of these kinds."),
    ] = None,
) -> None:
    """Run one JAMNP-S node until SIGINT/SIGTERM, then shut down cleanly.

    Keys outside the validator set are admitted to the policy's non-validator
    (builder) slots, `non_validator_slots` (20 in the presets); refuse them with
    `--policy-set validators_only=true` or `--policy-set non_validator_slots=0`.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        pol = ConnectionPolicy.preset(policy, **parse_policy_sets(policy_set or []))
        tel = parse_host_port(telemetry) if telemetry else None
        params = parse_jam_params(jam_param or [])
        traffic = None
        if traffic_start is not None:
            traffic = NodeTrafficOptions(traffic_start, traffic_seed, TrafficConfig(
                slot=traffic_slot, assurance_lead=traffic_lead, block_size=traffic_block_size,
                first_slot=traffic_first_slot, core_count=traffic_cores,
                extra=tuple(ExtraMessage.parse(e) for e in traffic_extra or ())))
        asyncio.run(
            run_node(keys, index, port, tel, pol, control_port, control_host, resolve_hosts,
                     params, traffic)
        )
    except (UsageError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:  # e.g. the UDP or control port is taken
        typer.echo(f"error: cannot start node {index}: {exc} "
                   "(is another node or program using its port? pick free ports)", err=True)
        raise typer.Exit(1) from None
