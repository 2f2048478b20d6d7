"""Real-node benchmark on loopback: handshakes/s, CE 128 requests/s, RSS per node.

Prints one JSON object. Everything runs in one process and one event loop, so the
numbers are for Python+aioquic on this machine's loopback, not for a real network.

    python benchmarks/bench_real.py [--sizes 16,64] [--handshakes 100] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import time
from collections.abc import Callable, Sequence

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import (
    PeerAddress,
    ValidatorIdentity,
    ValidatorInfo,
    ValidatorSet,
    is_preferred_initiator,
)
from jamsim.net.node import Node
from jamsim.protocol.messages import Block, BlockRequest, Header, RequestDirection

GENESIS = bytes(32)
BLOCK = Block(Header(GENESIS, 1, 0), b"x" * 256)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _nodes(n: int, seed: int) -> list[Node]:
    ids = [ValidatorIdentity.generate_dev(seed, i) for i in range(n)]
    ports = _ports(n)
    vs = ValidatorSet(
        [ValidatorInfo(i, ids[i].public_key, PeerAddress("127.0.0.1", ports[i])) for i in range(n)]
    )

    def source(req: BlockRequest) -> Sequence[Block]:
        return [BLOCK]

    policy = ConnectionPolicy.preset("jamnp-s")
    return [
        Node(ids[i], vs, GENESIS, port=ports[i], policy=policy, block_source=source, rng_seed=i)
        for i in range(n)
    ]


async def _until(cond: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def _both_connected(a: Node, b: Node) -> Callable[[], bool]:
    return lambda: b.key in a.connected_peers() and a.key in b.connected_peers()


async def bench_handshakes(count: int) -> dict[str, float]:
    """``count`` sequential fresh 2-node connections (mutual TLS + verification)."""
    t0 = time.perf_counter()
    for k in range(count):
        a, b = _nodes(2, seed=1000 + k)
        if is_preferred_initiator(a.key, b.key):
            a, b = b, a  # bind the acceptor first so the dialler's Initial is not lost
        await a.start()
        await b.start()
        await _until(_both_connected(a, b), 10)
        await a.stop()
        await b.stop()
    dt = time.perf_counter() - t0
    return {"handshakes": count, "seconds": round(dt, 3), "handshakes_per_s": round(count / dt, 1)}


async def bench_requests(count: int, concurrency: int = 16) -> dict[str, float]:
    a, b = _nodes(2, seed=7)
    await a.start()
    await b.start()
    await _until(_both_connected(a, b), 10)
    req = BlockRequest(BLOCK.header.hash(), RequestDirection.DESCENDING_INCLUSIVE, 1)
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            blocks = await b.request_blocks(a.key, req)
            assert blocks == (BLOCK,)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    dt = time.perf_counter() - t0
    await a.stop()
    await b.stop()
    return {
        "requests": count,
        "concurrency": concurrency,
        "seconds": round(dt, 3),
        "requests_per_s": round(count / dt, 1),
    }


async def bench_mesh(n: int, timeout: float) -> dict[str, object]:
    base = _rss_mb()
    nodes = _nodes(n, seed=50 + n)
    t0 = time.perf_counter()
    for node in nodes:
        await node.start()
    converged = True
    try:
        await _until(lambda: all(len(x.connected_peers()) == n - 1 for x in nodes), timeout)
    except TimeoutError:
        converged = False  # reported, not hidden: one loop may be too slow for n nodes
    dt = time.perf_counter() - t0
    links = sum(len(x.connected_peers()) for x in nodes) // 2
    rss = _rss_mb()
    for node in nodes:
        await node.stop()
    return {
        "nodes": n,
        "converged": converged,
        "links": links,
        "links_expected": n * (n - 1) // 2,
        "seconds": round(dt, 3),
        "rss_total_mb": round(rss, 1),
        "rss_per_node_mb": round((rss - base) / n, 2),
    }


async def main(
    sizes: list[int], handshakes: int, requests: int, mesh_timeout: float
) -> dict[str, object]:
    out: dict[str, object] = {
        "handshake": await bench_handshakes(handshakes),
        "ce128": await bench_requests(requests),
        "mesh": [await bench_mesh(n, mesh_timeout) for n in sizes],
        "note": "one process, one asyncio loop, loopback UDP; aioquic + cryptography",
    }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--handshakes", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--mesh-timeout", type=float, default=60.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(
        json.dumps(
            asyncio.run(main(sizes, args.handshakes, args.requests, args.mesh_timeout)), indent=2
        )
    )
