"""Pure-core tests of the datagram impairment (no event loop, fixed seeds)."""

from __future__ import annotations

import asyncio
import math

import pytest

from jamsim.net.impairment import DatagramImpairment, ImpairedSender
from tests.net.rules import rule

A = ("127.0.0.1", 40001)
B = ("127.0.0.1", 40002)



def test_off_by_default_passes_through_unchanged() -> None:
    imp = DatagramImpairment(seed=1)
    assert not imp.active
    assert imp.outgoing(b"x", A, 5.0) == [(5.0, b"x", A)]


def test_bernoulli_loss_within_binomial_bounds() -> None:
    imp = DatagramImpairment(seed=42)
    imp.set_link(A, rule(loss=0.2))
    n = 20_000
    delivered = sum(len(imp.outgoing(b"x", A, 0.0)) for _ in range(n))
    lost = n - delivered
    sd = math.sqrt(n * 0.2 * 0.8)
    assert abs(lost - n * 0.2) < 4 * sd
    # the other destination is untouched
    assert all(imp.outgoing(b"x", B, 0.0) for _ in range(1000))


def test_delay_and_jitter_applied() -> None:
    imp = DatagramImpairment(seed=3)
    imp.set_link(A, rule(latency=0.05))
    assert imp.outgoing(b"x", A, 1.0) == [(1.05, b"x", A)]
    imp.set_link(A, rule(latency=0.05, jitter=0.01))
    delays = [imp.outgoing(b"x", A, 0.0)[0][0] for _ in range(5000)]
    mean = sum(delays) / len(delays)
    sd = math.sqrt(sum((d - mean) ** 2 for d in delays) / len(delays))
    assert abs(mean - 0.05) < 0.001
    assert 0.009 < sd < 0.011
    assert min(delays) >= 0.0


def test_deterministic_given_seed() -> None:
    def run(seed: int) -> list[int]:
        imp = DatagramImpairment(seed=seed)
        imp.set_link(A, rule(loss=0.5, jitter=0.01))
        return [len(imp.outgoing(b"x", A, 0.0)) for _ in range(200)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_partition_drops_both_ways_and_heal_restores() -> None:
    imp = DatagramImpairment()
    imp.block([A])
    assert imp.outgoing(b"x", A, 0.0) == []
    assert imp.incoming(b"x", A, 0.0) == []
    assert imp.outgoing(b"x", B, 0.0) == [(0.0, b"x", B)]
    imp.heal()
    assert imp.outgoing(b"x", A, 0.0) == [(0.0, b"x", A)]
    assert imp.incoming(b"x", A, 0.0) == [(0.0, b"x", A)]
    assert not imp.active


def test_one_way_block() -> None:
    imp = DatagramImpairment()
    imp.block([A], incoming=False)
    assert imp.outgoing(b"x", A, 0.0) == []
    assert imp.incoming(b"x", A, 0.0) == [(0.0, b"x", A)]


def test_heal_keeps_link_rules_clear_removes_them() -> None:
    imp = DatagramImpairment()
    imp.set_link(A, rule(latency=0.1))
    imp.block([B])
    imp.heal()
    assert imp.outgoing(b"x", A, 0.0) == [(0.1, b"x", A)]
    imp.clear()
    assert imp.outgoing(b"x", A, 0.0) == [(0.0, b"x", A)]


def _runs(outcomes: list[bool]) -> float:
    """Mean length of runs of consecutive losses."""
    runs, current = [], 0
    for lost in outcomes:
        if lost:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return sum(runs) / len(runs)


def test_gilbert_elliott_is_bursty_at_same_average_loss() -> None:
    n = 50_000
    ge = DatagramImpairment(seed=5)
    # stationary P(bad) = 0.02 / (0.02 + 0.18) = 0.1, loss in bad = 1 -> 10% loss
    ge.set_link(A, rule(burst_loss=(0.02, 0.18, 1.0)))
    ge_out = [not ge.outgoing(b"x", A, 0.0) for _ in range(n)]
    be = DatagramImpairment(seed=5)
    be.set_link(A, rule(loss=0.1))
    be_out = [not be.outgoing(b"x", A, 0.0) for _ in range(n)]
    assert abs(sum(ge_out) / n - 0.1) < 0.02
    assert abs(sum(be_out) / n - 0.1) < 0.01
    # mean burst: GE ~ 1/0.18 = 5.6, Bernoulli ~ 1/0.9 = 1.1
    assert _runs(ge_out) > 4.0
    assert _runs(be_out) < 1.3


def test_invalid_rules_rejected() -> None:
    with pytest.raises(ValueError):
        rule(loss=1.5)
    with pytest.raises(ValueError):
        rule(latency=-1)
    with pytest.raises(ValueError):
        DatagramImpairment().set_link(A, rule(), direction="sideways")


def test_impaired_sender_schedules_on_loop() -> None:
    async def main() -> list[tuple[float, bytes]]:
        loop = asyncio.get_running_loop()
        got: list[tuple[float, bytes]] = []
        done = asyncio.Event()

        def sendto(data: bytes, addr: tuple[str, int]) -> None:
            got.append((loop.time(), data))
            if len(got) == 2:
                done.set()

        imp = DatagramImpairment()
        sender = ImpairedSender(imp, sendto)
        sender.sendto(b"now", A)  # inactive: immediate
        assert got and got[0][1] == b"now"
        imp.set_link(A, rule(latency=0.05))
        start = loop.time()
        sender.sendto(b"late", A)
        assert len(got) == 1
        await asyncio.wait_for(done.wait(), 2.0)
        assert got[1][0] - start >= 0.049
        return got

    assert [d for _, d in asyncio.run(main())] == [b"now", b"late"]


def test_impair_datagram_endpoint_over_real_udp() -> None:
    """Both paths on real loopback sockets: block drops, delay delays, heal restores."""
    from jamsim.net.impairment import impair_datagram_endpoint

    class Recv(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.got.put_nowait((asyncio.get_running_loop().time(), data))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t_a, p_a = await loop.create_datagram_endpoint(Recv, local_addr=("127.0.0.1", 0))
        t_b, p_b = await loop.create_datagram_endpoint(Recv, local_addr=("127.0.0.1", 0))
        addr_a = t_a.get_extra_info("sockname")[:2]
        addr_b = t_b.get_extra_info("sockname")[:2]
        imp_a = DatagramImpairment()
        imp_b = DatagramImpairment()
        impair_datagram_endpoint(t_a, p_a, imp_a)
        impair_datagram_endpoint(t_b, p_b, imp_b)
        try:
            t_a.sendto(b"1", addr_b)
            assert (await asyncio.wait_for(p_b.got.get(), 2))[1] == b"1"
            imp_b.block([addr_a], outgoing=False)  # B ignores A; B -> A still flows
            t_a.sendto(b"dropped", addr_b)
            t_b.sendto(b"2", addr_a)
            assert (await asyncio.wait_for(p_a.got.get(), 2))[1] == b"2"
            imp_b.heal()
            imp_b.set_link(addr_a, rule(latency=0.1), direction="in")
            start = loop.time()
            t_a.sendto(b"3", addr_b)
            at, data = await asyncio.wait_for(p_b.got.get(), 2)
            assert data == b"3" and at - start >= 0.095
            assert p_b.got.empty()
        finally:
            t_a.close()
            t_b.close()

    asyncio.run(main())
