"""Impairment shaping beyond delay and loss: bandwidth queues and lognormal latency.

Scenarios give ``network.bandwidth`` and lognormal latencies; the simulator models
both, and real nodes must too or a testnet run silently differs from its
simulation. The pure core is tested without an event loop; the control request
is checked through ``handle_request``.
"""

from __future__ import annotations

import statistics

import pytest

from jamsim.net.control import handle_request
from jamsim.net.impairment import DatagramImpairment
from tests.net.rules import rule

A = ("127.0.0.1", 40001)
B = ("127.0.0.1", 40002)



def test_bandwidth_serialises_a_burst_first_in_first_out() -> None:
    imp = DatagramImpairment(seed=1)
    imp.set_link(A, rule(latency=0.05, bandwidth_bps=80_000))  # 1000 B = 0.1 s
    sent = [imp.outgoing(b"x" * 1000, A, 10.0)[0][0] for _ in range(5)]
    assert sent == pytest.approx([10.15, 10.25, 10.35, 10.45, 10.55])
    # The queue drains: a datagram sent after it emptied waits only for itself.
    assert imp.outgoing(b"x" * 1000, A, 20.0)[0][0] == pytest.approx(20.15)
    # Queues are per link and per direction.
    imp.set_link(B, rule(bandwidth_bps=80_000))
    assert imp.outgoing(b"x" * 500, B, 20.0)[0][0] == pytest.approx(20.05)
    imp.set_link(A, rule(bandwidth_bps=80_000), direction="in")
    assert imp.incoming(b"x" * 500, A, 20.0)[0][0] == pytest.approx(20.05)


def test_changing_a_link_resets_its_queue() -> None:
    imp = DatagramImpairment(seed=1)
    imp.set_link(A, rule(bandwidth_bps=8_000))
    for _ in range(10):
        imp.outgoing(b"x" * 1000, A, 0.0)  # queue busy until t=10
    imp.set_link(A, rule(bandwidth_bps=8_000_000))
    assert imp.outgoing(b"x" * 1000, A, 1.0)[0][0] == pytest.approx(1.001)


@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
def test_latency_has_the_rules_median_and_deviation(distribution: str) -> None:
    imp = DatagramImpairment(seed=7)
    imp.set_link(A, rule(latency=0.1, jitter=0.04, distribution=distribution))
    delays = [imp.outgoing(b"x", A, 0.0)[0][0] for _ in range(20_000)]
    assert statistics.median(delays) == pytest.approx(0.1, rel=0.03)
    assert statistics.stdev(delays) == pytest.approx(0.04, rel=0.1)
    skew = statistics.mean(delays) - statistics.median(delays)
    if distribution == "lognormal":
        assert skew > 0.004  # the right tail pulls the mean above the median
    else:
        assert abs(skew) < 0.002


def test_control_request_sets_bandwidth_and_distribution_or_says_what_is_wrong() -> None:
    imp = DatagramImpairment(seed=1)
    reply = handle_request({"op": "set_link", "addrs": [list(A)], "latency": 0.02,
                            "jitter": 0.005, "distribution": "lognormal",
                            "bandwidth": 1e6}, imp, None)
    assert reply == {"ok": True}
    assert imp.rules()[A] == rule(latency=0.02, jitter=0.005, distribution="lognormal",
                                      bandwidth_bps=1e6)
    for bad in ({"bandwidth": -1}, {"bandwidth": "fast"}, {"distribution": "pareto"},
                {"direction": "up"}, {"burst_loss": [0.1]}, {"latency": -1}):
        reply = handle_request({"op": "set_link", "addrs": [list(A)], **bad}, imp, None)
        assert reply["ok"] is False and reply["error"]
