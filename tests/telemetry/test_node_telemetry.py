"""JIP-3 from a real node: node information with the run's parameters, status events.

Two nodes over loopback UDP report to a collector over loopback TCP. A second
test reads what jamsim sends with a decoder that takes ``len++`` prefixes as
LEB128 (as Parity's jamtart backend does) and checks it agrees with the GP codec.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from jamsim.identity import PeerAddress
from jamsim.net.status import STATUS_INTERVAL, peer_status
from jamsim.protocol.codec import Reader
from jamsim.telemetry.collector import TelemetryClient, TelemetryCollector
from jamsim.telemetry.jip3 import JamParameters, Jip3Event, NodeInfo, encode_event
from tests.net.test_node import GENESIS, make_set, node

INTERVAL = 0.25  # shortened from STATUS_INTERVAL so the test takes a second


def test_node_sends_real_parameters_and_periodic_status() -> None:
    async def main() -> None:
        vs, ids = make_set(4)
        start = time.time()
        index = {v.key: v.index for v in vs}
        async with TelemetryCollector(index, start) as collector:
            params = JamParameters.for_network(len(vs), epoch_length=600)
            clients = [
                TelemetryClient("127.0.0.1", collector.port,
                                NodeInfo(vs[i].key, vs[i].address, GENESIS, params))
                for i in range(2)
            ]
            nodes = [node(vs, ids, i, telemetry=clients[i]) for i in range(2)]
            for n in nodes:
                n.status_interval = INTERVAL
                await n.start()
            try:
                await nodes[0].wait_for(lambda: ids[1].public_key in nodes[0].connected_peers(), 10)
                ok = await collector.wait_until(
                    lambda: sum(r.event == "status" and r.node == 0
                                and "validator_peers=1" in r.reason
                                for r in collector.records) >= 3, 10)
                assert ok, collector.records
            finally:
                for n in nodes:
                    await n.stop()
        info = collector.node_infos[vs[0].key]
        assert info.params.validator_count == 4 and info.params.core_count == 1
        assert info.params.epoch_length == 600
        assert info.genesis_hash == GENESIS
        status = [r for r in collector.records if r.node == 0 and r.event == "status"]
        gaps = [b.time - a.time for a, b in itertools.pairwise(status)]
        assert all(INTERVAL * 0.5 <= g <= INTERVAL * 4 for g in gaps), gaps
        # Ids interleave with the manager's own events without a gap or a clash.
        assert not collector.rejections
        assert all(c.dropped == 0 for c in clients)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_status_counts_and_the_default_interval() -> None:
    a, b, c = (bytes([i]) * 32 for i in range(3))
    s = peer_status({a, b, c}, validator_keys={a, b}, up0_peers=[a], core_count=3)
    assert (s.total_peers, s.validator_peers, s.up0_peers) == (3, 2, 1)
    assert s.guarantees_by_core == bytes(3)
    assert STATUS_INTERVAL == 2.0  # JIP-3: "approximately every 2 seconds"


def test_for_network_follows_the_gp_core_ratio_and_rejects_unknown_names() -> None:
    assert JamParameters.for_network(1023).core_count == 341
    assert JamParameters.for_network(6) == JamParameters()
    with pytest.raises(ValueError, match="unknown JAM parameter"):
        JamParameters.for_network(6, cores=2)


def _leb128(r: Reader) -> int:
    value, shift = 0, 0
    while True:
        byte = r.u8("leb128")
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value


def _leb_string(r: Reader) -> str:
    return r.fixed(_leb128(r), "string").decode()


def test_what_jamsim_sends_reads_the_same_as_leb128() -> None:
    info = NodeInfo(bytes([7]) * 32, PeerAddress("127.0.0.1", 9000), GENESIS,
                    JamParameters.for_network(1023), note="n" * 400)
    r = Reader(info.encode(), "node info")
    r.fixed(1 + JamParameters.SIZE + 32 + 32 + 18 + 4, "fixed part")
    strings = [_leb_string(r) for _ in range(4)]
    assert r.remaining == 0
    assert strings[0] == info.implementation_name and strings[3] == "n" * 127
    # A long reason: the GP-codec decoder and the LEB128 reading agree.
    ev = Jip3Event(5, 28, peer=bytes(32), reason="é" * 100)
    body = Reader(encode_event(ev)[9 + 32:], "reason")
    assert len(_leb_string(body).encode()) <= 127
