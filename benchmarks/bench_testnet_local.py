"""Local-process testnet: seconds to full mesh and RSS per node at 16, 64, 128 nodes (JSON).

``--node real`` runs ``jamsim node`` (the aioquic node); ``--node standin``
runs the UDP heartbeat stand-in from the tests (process/control overhead only).
Default: real if ``jamsim.net.commands`` (``jamsim node``) is importable, else standin -- the JSON
says which was measured.

Besides the time to full mesh, each result says *why* it took that long: when
50/90/99 % of the links were up, the nodes' CPU seconds until then (work spent,
wasted or not), the 1-minute load average before and after (the machine may be
shared), and the collected telemetry summed by event and failure reason (e.g.
how many dials were abandoned at the connect timeout).

The policy is the preset as shipped unless ``--policy-set`` overrides a field:
on a 2-core host 64 and 128 nodes are the crowded-host case that the preset's
adaptive dial limit (``adaptive_dials``) exists for. ``yardstick_s``
(benchmarks/yardstick.py) is the machine's speed before and after the cases;
the load averages and ``other_cpu_seconds`` say whether other work competed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from yardstick import yardstick_s  # benchmarks/ is on sys.path when run as a script

from jamsim.net.commands import parse_policy_sets
from jamsim.net.control import ControlError, control_request
from jamsim.scenario.testnet_runner import free_base_port
from jamsim.telemetry.records import EventRecord
from jamsim.testnet.base import NodeStatus, TestnetSpec, full_mesh
from jamsim.testnet.local import LocalProcessBackend

ROOT = Path(__file__).resolve().parents[1]
STANDIN = (sys.executable, "-m", "tests.testnet.test_local_standin")
LINK_FRACTIONS = (0.5, 0.9, 0.99)
POLL = 0.5


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the ")": state is field 3, utime field 14, stime field 15 (1-based, man 5 proc)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_cpu_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole host so far, from ``/proc/stat``."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0, 0.0
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    tck = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / tck, idle / tck


def udp_counters() -> dict[str, int]:
    """This host's UDP counters (``/proc/net/snmp``); empty where unavailable.

    ``RcvbufErrors`` counts datagrams dropped because a socket's receive buffer
    was full: a node whose event loop falls behind loses packets there.
    Host-wide, so other programs' traffic is included (small next to a testnet's).
    """
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return {}
    rows = [ln for ln in lines if ln and ln[0] == "Udp:"]
    if len(rows) < 2:
        return {}
    return {name: int(value) for name, value in zip(rows[0][1:], rows[1][1:], strict=False)}


def links_up(statuses: dict[int, NodeStatus]) -> int:
    """Unordered pairs that both ends report as connected."""
    return sum(
        1
        for i, s in statuses.items()
        for j in s.connected
        if i < j and j in statuses and i in statuses[j].connected
    )


def telemetry_link_times(records: list[EventRecord], n: int) -> dict[str, float]:
    """When 50/90/99/100 % of the pairs were up at both ends, from telemetry times.

    Finer than polling the control channels, which answer late when nodes are
    busy. A peer counts as connected from a ``connected_*`` event until a
    ``disconnected`` one that is not the loser of a duplicate pair (the pair
    stays connected through the other connection).
    """
    expected = n * (n - 1) // 2
    live: set[tuple[int, int]] = set()
    up = 0
    out: dict[str, float] = {}
    for r in sorted(records, key=lambda r: r.time):
        if r.peer < 0:
            continue
        edge, back = (r.node, r.peer), (r.peer, r.node)
        if r.event in ("connected_out", "connected_in") and edge not in live:
            live.add(edge)
            up += back in live
        elif r.event == "disconnected" and r.reason != "duplicate connection" and edge in live:
            live.discard(edge)
            up -= back in live
        for fraction in (*LINK_FRACTIONS, 1.0):
            if up >= fraction * expected:
                out.setdefault(f"{fraction:.0%}", round(r.time, 1))
    return out


def node_counters(tn: LocalProcessBackend) -> dict[str, int]:
    """Every node's numeric status counters, summed (``lost.idle timeout``, ...).

    Whatever the node reports (connections, rejections, losses by reason, and
    any counter a node version adds) without this script knowing the names.
    """
    total: Counter[str] = Counter()
    for port in tn.control_ports.values():
        try:
            status = control_request(("127.0.0.1", port), {"op": "status"}, 5.0)["status"]
        except (ControlError, KeyError):
            total["unanswered"] += 1
            continue
        limit = status.get("dial_limit")
        total["nodes_dialling_limited"] += isinstance(limit, int)
        for name, value in status.items():
            if isinstance(value, bool) or name in ("port", "dial_limit"):
                continue
            if isinstance(value, int):
                total[name] += value
            elif isinstance(value, dict):
                for sub, count in value.items():
                    if isinstance(count, int):
                        total[f"{name}.{sub}"] += count
    return dict(sorted(total.items()))


def summarise_events(records: list[EventRecord]) -> dict[str, int]:
    """Telemetry counted by event, failures also by reason (``event: reason``)."""
    counts: Counter[str] = Counter()
    for r in records:
        counts[r.event] += 1
        if r.event.endswith("_failed") or r.event == "disconnected":
            counts[f"{r.event}: {r.reason[:40]}"] += 1
    return dict(sorted(counts.items()))


def run(
    n: int,
    node: str,
    base_port: int,
    timeout: float,
    policy: str,
    overrides: dict[str, Any],
    trace: Path | None = None,
) -> dict[str, Any]:
    command = STANDIN if node == "standin" else None
    expected = n * (n - 1) // 2
    load_before = os.getloadavg()[0]
    udp_before = udp_counters()
    busy_before, idle_before = host_cpu_seconds()
    own_before = sum(os.times()[:2])
    with tempfile.TemporaryDirectory() as tmp:
        spec = TestnetSpec(
            validators=n,
            base_port=base_port,
            run_dir=Path(tmp),
            policy=policy,
            policy_overrides=overrides,
        )
        with LocalProcessBackend(node_command=command, env={"PYTHONPATH": str(ROOT)}) as tn:
            start = time.monotonic()
            tn.up(spec)
            reached: dict[str, float] = {}
            curve: list[tuple[float, int]] = []
            answering: float | None = None
            seconds: float | None = None
            up = 0
            while time.monotonic() - start < timeout:
                statuses = tn.status()
                up = links_up(statuses)
                now = round(time.monotonic() - start, 1)
                curve.append((now, up))
                if answering is None and all(s.error is None for s in statuses.values()):
                    answering = now
                for fraction in LINK_FRACTIONS:
                    if up >= fraction * expected:
                        reached.setdefault(f"{fraction:.0%}", now)
                if full_mesh(statuses):
                    seconds = round(time.monotonic() - start, 2)
                    break
                time.sleep(POLL)
            counters = node_counters(tn)
            pids = tn.pids()
            cpu = sum(cpu_seconds(p) for p in pids.values())
            rss = [r for r in (rss_kib(p) for p in pids.values()) if r is not None]
            try:
                records = tn.collect()
            except TimeoutError:  # the collector thread starved on a saturated host
                records = []
            events = summarise_events(records)
            udp_after = udp_counters()
            busy_after, idle_after = host_cpu_seconds()
            own = sum(os.times()[:2]) - own_before
            udp_delta = {k: v - udp_before[k] for k, v in udp_after.items() if k in udp_before}
    if trace is not None:
        trace.mkdir(parents=True, exist_ok=True)
        with open(trace / f"events-{n}.jsonl", "w") as f:
            f.writelines(json.dumps(r.as_dict()) + "\n" for r in records)
        (trace / f"links-{n}.json").write_text(json.dumps(curve))
    return {
        "nodes": n,
        "node": node,
        "policy": policy,
        "policy_overrides": overrides,
        "seconds_to_full_mesh_after_start": seconds,
        "links_up_at_end": f"{up}/{expected}",
        "seconds_to_all_nodes_answering": answering,
        "seconds_to_links_fraction": reached,
        "telemetry_seconds_to_links_fraction": telemetry_link_times(records, n),
        "node_cpu_seconds_total": round(cpu, 1),
        "rss_kib_mean": statistics.mean(rss) if rss else None,
        "rss_kib_max": max(rss) if rss else None,
        "host_idle_cpu_seconds": round(idle_after - idle_before, 1),
        # what the rest of the machine used meanwhile (other users' work competes)
        "other_cpu_seconds": round(busy_after - busy_before - cpu - own, 1),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "udp_datagrams_received": udp_delta.get("InDatagrams"),
        "udp_receive_buffer_drops": udp_delta.get("RcvbufErrors"),
        "node_counters_at_end": counters,
        "telemetry": events,
        "error": None if seconds is not None else f"no full mesh within {timeout}s",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = "real" if importlib.util.find_spec("jamsim.net.commands") else "standin"
    parser.add_argument("--node", choices=["real", "standin"], default=default)
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--base-port", type=int, default=None,
                        help="first UDP port (default: a free range, found per size)")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--policy", default="jamnp-s", choices=["jamnp-s", "jamixir"])
    parser.add_argument(
        "--policy-set",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="policy override (repeatable; default: none, the preset as shipped)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write DIR/events-N.jsonl (telemetry rows) and DIR/links-N.json "
        "([seconds, links up] per poll)",
    )
    args = parser.parse_args()
    overrides = parse_policy_sets(args.policy_set or [])
    before = yardstick_s()
    results = [
        run(int(n), args.node,
            args.base_port if args.base_port is not None else free_base_port(int(n)),
            args.timeout, args.policy, overrides, args.trace)
        for n in args.sizes.split(",")
    ]
    print(
        json.dumps(
            {"benchmark": "testnet_local", "command": shlex.join(sys.argv), "results": results,
             "yardstick_s": {"before": before, "after": yardstick_s()}, "cpus": os.cpu_count()},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
