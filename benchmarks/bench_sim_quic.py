"""``quic``-fidelity simulator benchmark: full-mesh bootstrap; prints one JSON document.

Each size runs in its own subprocess so ``ru_maxrss`` (peak RSS) is per case.
Setup: 50 ms one-way latency, no loss, jamnp-s policy, telemetry records off
(``on_event=None``); the run stops at the first 50 ms sample with a full mesh.

Time: ``wall_s`` is the bootstrap's wall-clock time; ``cpu_s`` its process CPU time
(user + system), which is what to compare when the machine is shared and loaded.
``events_per_s`` counts datagrams per wall second (each one send, one arrival, one
aioquic ``receive_datagram``), the unit of work of this fidelity.

``yardstick_s`` (benchmarks/yardstick.py) is the machine's speed before and after
the cases: compare runs by wall time over yardstick, since this machine drifts.

Memory per connection pair, all divided by V(V-1)/2:

* ``rss_per_pair_kb``: resident-set growth from just before the first dial to the
  full mesh. Everything a pair costs: both aioquic connections, OpenSSL state, the
  JamConnection wrappers, UP 0 streams, manager entries, pending timers, and the
  memory freed after the handshakes but not returned to the OS (all handshakes run
  at once, so what they free is scattered between long-lived objects);
* ``malloc_used_kb_per_pair`` / ``malloc_free_kb_per_pair`` (glibc only, from
  ``mallinfo2``): growth of bytes in use / free inside malloc's heap. In use is
  native state (OpenSSL, Rust) plus Python objects over 512 bytes; free is what
  fragmentation keeps resident. The rest of the RSS growth is pymalloc's arenas
  (small Python objects, including their freed slots);
* ``rss_after_trim_per_pair_kb``: RSS growth after ``gc.collect()`` and glibc's
  ``malloc_trim(0)`` (a measurement aid: how much of the free malloc memory could
  go back to the OS; the simulator does not trim);
* ``python_heap_kb_per_pair`` (only with ``--tracemalloc``): Python-heap growth per
  pair measured by tracemalloc in a second, separate run of the same size (tracing
  slows the run ~3x and its bookkeeping would distort the RSS figures above), with
  the top allocation sites in ``top_sites_kb_per_pair``.

Certificates and aioquic configurations are built once per validator and shared by
all its connections (``QuicFabric``); their cost is in the set-up, not per pair.
jamsim/sim/quic/trimmed_connection.py explains what each connection keeps and why.

Usage: ``python benchmarks/bench_sim_quic.py [--sizes 6,32,100] [--tracemalloc]``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from yardstick import yardstick_s  # benchmarks/ is on sys.path when run as a script

from jamsim import native_status
from jamsim.identity import ValidatorSet
from jamsim.sim.gc_tuning import relaxed_gc
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.simulation import Simulation


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _libc() -> Any | None:
    """glibc, if this is glibc with mallinfo2 (2.33+); None elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


LIBC = _libc()


def _malloc_kb() -> tuple[float, float] | None:
    """(in use, free) bytes of malloc's heap in KiB, or None without glibc."""
    if LIBC is None:
        return None
    info = LIBC.mallinfo2()
    return (info.uordblks + info.hblkhd) / 1024, info.fordblks / 1024


def _rss_kb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bootstrap(v: int, trace: bool) -> dict[str, Any]:
    validators = ValidatorSet.dev(v, seed=1)
    setup_start = time.perf_counter()
    sim = Simulation(validators, NetworkConfig(default=LinkSpec(LatencySpec(0.05))),
                     seed=1, on_event=None, sample_interval=0.05, fidelity="quic",
                     identities=DevKeyring([1], v))
    setup = time.perf_counter() - setup_start
    pairs = v * (v - 1) // 2
    gc.collect()
    if trace:
        tracemalloc.start(1)
        before_snapshot = tracemalloc.take_snapshot()
    rss_before, malloc_before = _rss_kb(), _malloc_kb()
    cpu_start, start = _cpu_s(), time.perf_counter()
    while not sim.samples or not sim.samples[-1].full_mesh:
        if sim.now >= 60.0:
            break
        sim.run(sim.now + 0.05)
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu_start
    rss_after, malloc_after = _rss_kb(), _malloc_kb()
    fabric = sim.quic
    assert fabric is not None
    result: dict[str, Any] = {
        "case": "bootstrap", "fidelity": "quic", "engine": native_status().state, "validators": v,
        "connections": pairs,
        "full_mesh": bool(sim.samples[-1].full_mesh),
        "time_to_full_mesh_s": sim.time_to_full_mesh(),
        "setup_s": round(setup, 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "sim_over_wall": round(sim.now / wall, 4) if wall else None,
        "datagrams": fabric.datagrams,
        "events_per_s": round(fabric.datagrams / wall) if wall else None,
        "up0_handshakes": fabric.up0_handshakes,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_per_pair_kb": round((rss_after - rss_before) / pairs, 1),
    }
    if malloc_before is not None and malloc_after is not None:
        result["malloc_used_kb_per_pair"] = round(
            (malloc_after[0] - malloc_before[0]) / pairs, 1)
        result["malloc_free_kb_per_pair"] = round(
            (malloc_after[1] - malloc_before[1]) / pairs, 1)
    if trace:
        gc.collect()
        diff = tracemalloc.take_snapshot().compare_to(before_snapshot, "lineno")
        tracemalloc.stop()
        result["python_heap_kb_per_pair"] = round(
            sum(d.size_diff for d in diff) / pairs / 1024, 1)
        result["top_sites_kb_per_pair"] = {
            f"{d.traceback[0].filename.split('site-packages/')[-1]}:{d.traceback[0].lineno}":
                round(d.size_diff / pairs / 1024, 2)
            for d in diff[:12]}
    elif LIBC is not None:
        gc.collect()
        LIBC.malloc_trim(0)
        result["rss_after_trim_per_pair_kb"] = round((_rss_kb() - rss_before) / pairs, 1)
    return result


def _child(v: int, trace: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(v)]
    if trace:
        command.append("--tracemalloc")
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="6,32,100",
                        help="comma-separated validator counts (default: 6,32,100)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also measure the Python heap per pair in a second run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with relaxed_gc():
            print(json.dumps(bootstrap(args.child, args.tracemalloc)))
        return
    results = []
    before = yardstick_s()
    for v in (int(s) for s in args.sizes.split(",") if s):
        result = _child(v, False)
        if args.tracemalloc:
            traced = _child(v, True)
            result["python_heap_kb_per_pair"] = traced["python_heap_kb_per_pair"]
            result["top_sites_kb_per_pair"] = traced["top_sites_kb_per_pair"]
        results.append(result)
        print(json.dumps(result), file=sys.stderr)
    print(json.dumps({"benchmark": "sim_quic", "results": results,
                      "yardstick_s": {"before": before, "after": yardstick_s()}}, indent=2))


if __name__ == "__main__":
    main()
