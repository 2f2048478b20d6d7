"""Codec throughput: framing MB/s, UP 0 / CE 128 / JIP-3 decode rates. Prints JSON.

Run: ``python benchmarks/bench_codecs.py [--seconds 0.5]``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

from jamsim.protocol.codec import decode_natural, encode_natural
from jamsim.protocol.framing import MessageDecoder, encode_messages
from jamsim.protocol.messages import (
    Announcement,
    Block,
    BlockRequest,
    Final,
    Handshake,
    Header,
    RequestDirection,
    decode_announcement,
    decode_block,
    decode_block_request,
    decode_handshake,
)
from jamsim.telemetry.jip3 import Jip3Event, decode_event, encode_event


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Units per second of ``fn`` (which returns the units it processed)."""
    units = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        units += fn()
    return units / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5)
    s = parser.parse_args().seconds

    messages = [bytes(size) for size in (37, 200, 1500, 64_000) for _ in range(16)]
    wire = encode_messages(messages)

    def framing(chunk: int) -> Callable[[], int]:
        def run() -> int:
            d = MessageDecoder()
            for i in range(0, len(wire), chunk):
                d.feed(wire[i : i + chunk])
            return len(wire)

        return run

    final = Final(b"\x01" * 32, 1234)
    header = Header(b"\x02" * 32, 1235, 3)
    samples: dict[str, tuple[Callable[[bytes], object], bytes]] = {
        "up0_handshake_4_leaves": (decode_handshake, Handshake(final, (final,) * 4).encode()),
        "up0_announcement": (decode_announcement, Announcement(header, final).encode()),
        "ce128_request": (
            decode_block_request,
            BlockRequest(b"\x03" * 32, RequestDirection.ASCENDING_EXCLUSIVE, 10).encode(),
        ),
        "ce128_block_1k": (decode_block, Block(header, b"x" * 1024).encode()),
        "jip3_connecting_out": (
            decode_event,
            encode_event(Jip3Event(1, 24, peer=b"\x04" * 32, address=None)),
        ),
    }

    def decode_rate(decode: Callable[[bytes], object], raw: bytes) -> float:
        def run() -> int:
            for _ in range(100):
                decode(raw)
            return 100

        return rate(run, s)

    def natural_run() -> int:
        for v in (5, 300, 70_000, 1 << 40):
            decode_natural(encode_natural(v))
        return 4

    result = {
        "python": platform.python_version(),
        "framing_mb_per_s": {
            f"chunk_{c}": round(rate(framing(c), s) / 1e6, 1) for c in (64, 1200, 65536)
        },
        "decode_messages_per_s": {k: round(decode_rate(*v)) for k, v in samples.items()},
        "natural_round_trips_per_s": round(rate(natural_run, s)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
