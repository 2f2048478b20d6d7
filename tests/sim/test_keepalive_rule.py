"""Both simulator fidelities PING the way real nodes do (jamsim/core/keepalive.py).

A real node PINGs the connections it dialled at every keep-alive tick, and an
accepted connection only once its peer has been silent for 1.5 intervals. So on a
healthy connection the accepting end never PINGs, and after its dialler crashes
it notices later than the dialling ends of the crashed node's other connections.

Setup: 6 validators, 50 ms one-way latency, jamnp-s (idle timeout 15 s, keep-alive
interval 5 s); every node boots at 0 and ticks at 5, 10, 15, ... s (in the quic
fidelity the loop starts with the node's first dial, also at 0).
"""

from __future__ import annotations

from collections import Counter

import pytest

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.quic.trimmed_connection import SimQuicConnection
from jamsim.sim.simulation import Fidelity, Simulation
from jamsim.telemetry.records import EventRecord

V = 6
SET_SEED = 5
LATENCY = 0.05
POLICY = ConnectionPolicy.preset("jamnp-s")
IDLE = 15.0
INTERVAL = 5.0
CRASHED = 2


def build(fidelity: Fidelity) -> tuple[Simulation, list[EventRecord]]:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(V, seed=SET_SEED),
                     NetworkConfig(default=LinkSpec(LatencySpec(LATENCY))), POLICY,
                     fidelity=fidelity, seed=1, on_event=records.append, sample_interval=0.05,
                     identities=DevKeyring([SET_SEED], V) if fidelity == "quic" else None)
    assert (sim.policy.idle_timeout, sim.keepalive_interval) == (IDLE, INTERVAL)
    return sim, records


class CountingPings(SimQuicConnection):
    """The fidelity's connection class, counting the PINGs each side sends."""

    sent: Counter[bool] = Counter()  # is_client -> PINGs

    def send_ping(self, uid: int) -> None:
        CountingPings.sent[self._is_client] += 1
        super().send_ping(uid)


def test_on_a_healthy_mesh_only_the_dialling_ends_ping() -> None:
    sim, _ = build("quic")
    assert sim.quic is not None
    sim.quic.connection_class = CountingPings
    CountingPings.sent.clear()
    sim.run(41.0)
    assert sim.is_full_mesh() and not sim.quic.terminations
    pairs = sim.expected_pairs()
    # Ticks at 5, 10, ..., 40 s: 8 per dialling end. The acceptor hears a PING every
    # interval, so its peer is never silent for 1.5 intervals and it never PINGs
    # (keep-alives from both ends would have sent as many again).
    assert CountingPings.sent == Counter({True: 8 * pairs})


def detections(fidelity: Fidelity, crash: float) -> tuple[list[float], list[float]]:
    """Times at which the peers of the crashed node notice, as (diallers, acceptors)."""
    sim, records = build(fidelity)
    sim.at(crash, lambda: sim.crash(CRASHED))
    sim.run(crash + 2.5 * INTERVAL + IDLE + 1.0)
    lost = [r for r in records if r.event == "disconnected" and r.peer == CRASHED]
    assert len(lost) == V - 1 and all(r.reason == "idle timeout" for r in lost)
    return ([r.time for r in lost if r.direction == "out"],
            [r.time for r in lost if r.direction == "in"])


@pytest.mark.parametrize("crash", [2.0, 12.0, 14.9])
def test_a_crashed_dialler_is_noticed_when_the_rule_says_in_both_fidelities(
        crash: float) -> None:
    # The crashed node's last PING left at its last tick before the crash (or, before
    # its first tick at 5 s, the handshake ended at 1.5 RTT = 0.15 s); its acceptors
    # heard it one latency later and PING at their first tick 1.5 intervals after.
    last_ping = max(0.15, (crash // INTERVAL) * INTERVAL + LATENCY)
    acceptor_ping = -(-(last_ping + 1.5 * INTERVAL) // INTERVAL) * INTERVAL
    dialler_ping = -(-crash // INTERVAL) * INTERVAL
    results = {fidelity: detections(fidelity, crash) for fidelity in ("model", "quic")}
    for diallers, acceptors in results.values():
        assert diallers and acceptors
        # RFC 9000 10.1: idle timeout after each end's first PING into the silence.
        assert all(t == pytest.approx(dialler_ping + IDLE, abs=1e-6) for t in diallers)
        assert all(t == pytest.approx(acceptor_ping + IDLE, abs=1e-6) for t in acceptors)
        # The bounds of docs/real-nodes.md: the dialler within crash + 1 interval +
        # idle, the acceptor no earlier than 0.5 interval + idle (it last heard the
        # crashed node at most one interval before the crash) and at most 2.5.
        assert all(crash + IDLE <= t <= crash + INTERVAL + IDLE for t in diallers)
        assert all(crash + 0.5 * INTERVAL + IDLE <= t <= crash + 2.5 * INTERVAL + IDLE
                   for t in acceptors)
        # Keep-alives from both ends would have let the acceptor notice with the
        # diallers, one idle timeout after the first tick after the crash.
        assert min(acceptors) > dialler_ping + IDLE
    # The fidelities agree to within the quic keep-alive loop's phase (it starts
    # with the node's first connection: at most one handshake, 3 latencies), the
    # tolerance of tests/sim/test_calibration.py.
    (model_d, model_a), (quic_d, quic_a) = results["model"], results["quic"]
    assert len(model_d) == len(quic_d) and len(model_a) == len(quic_a)
    assert all(abs(m - q) <= 3 * LATENCY + 1e-9
               for m, q in zip(sorted(model_d) + sorted(model_a),
                               sorted(quic_d) + sorted(quic_a), strict=True))
