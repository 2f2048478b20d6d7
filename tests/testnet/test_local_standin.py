"""A minimal UDP heartbeat node used to test LocalProcessBackend before/without the QUIC node.

Run as ``python -m tests.testnet.test_local_standin --keys F --index i
--control-port P ...``.  It takes the same argv as ``jamsim node``, serves the
real control channel, and sends every datagram through the real impairment
layer: each node heartbeats every peer over UDP every 50 ms, and counts a peer
"connected" if it heard from it in the last 0.5 s.  So partitions, isolation,
kill and pause show up in status exactly as the impairment/signals cause them.
Contains no tests.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from jamsim.net.control import ControlServer
from jamsim.net.impairment import DatagramImpairment, ImpairedSender
from jamsim.testnet.keys import load_keys

HEARTBEAT = 0.05
LIVENESS = 0.5


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, imp: DatagramImpairment, heard: dict[bytes, float]) -> None:
        self.imp = imp
        self.heard = heard

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.imp.active and not self.imp.incoming(data, addr, 0.0):
            return
        self.heard[data] = time.monotonic()


async def _main(args: argparse.Namespace) -> None:
    _genesis, vset, ids = load_keys(args.keys)
    me = vset[args.index]
    imp = DatagramImpairment(seed=args.index)
    heard: dict[bytes, float] = {}
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Proto(imp, heard), local_addr=(me.address.host, me.address.port)
    )
    sender = ImpairedSender(imp, transport.sendto)
    peers = [(v.address.host, v.address.port) for v in vset if v.index != args.index]

    def status() -> dict[str, object]:
        now = time.monotonic()
        return {"connected": [k.hex() for k, t in heard.items() if now - t < LIVENESS]}

    async with ControlServer(imp, status, port=args.control_port):
        while True:
            for peer in peers:
                sender.sendto(me.key, peer)
            await asyncio.sleep(HEARTBEAT)
    del ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--policy", default="jamnp-s")
    parser.add_argument("--policy-set", action="append", default=[])
    parser.add_argument("--telemetry", default=None)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
