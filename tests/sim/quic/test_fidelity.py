"""The ``quic`` fidelity: real aioquic connections under the simulated network's faults.

Every test runs the unchanged managers over real TLS 1.3 / QUIC in virtual time and
asserts on what the managers and the QUIC stack did.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from aioquic import tls

from jamsim.core.errors import UsageError
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorIdentity, ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.quic.handshake_stand_ins import DISCARDED_SPACE, PostHandshakeTls
from jamsim.sim.quic.keyring import DevKeyring, IdentityResolver
from jamsim.sim.quic.transport import QuicTransport
from jamsim.sim.quic.trimmed_connection import memory_trims_report
from jamsim.sim.simulation import Simulation, event_log_digest
from jamsim.telemetry.records import EventRecord

LAN = NetworkConfig(default=LinkSpec(LatencySpec(0.05)))
SET_SEED = 5


def build(v: int = 6, network: NetworkConfig = LAN, seed: int = 1,
          identities: IdentityResolver | None = None,
          **overrides: object) -> tuple[Simulation, list[EventRecord]]:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(v, seed=SET_SEED), network,
                     ConnectionPolicy.preset("jamnp-s", **overrides), fidelity="quic",
                     seed=seed, on_event=records.append, sample_interval=0.05,
                     identities=identities or DevKeyring([SET_SEED], v))
    return sim, records


def quic_connections(sim: Simulation) -> list[Any]:
    """The aioquic connections of every live transport end."""
    conns: list[Any] = []
    for transport in sim.transports.values():
        assert isinstance(transport, QuicTransport)
        conns.extend(end.conn.quic for end in (transport.client, transport.server)
                     if end.conn is not None)
    return conns


def retired_handshake_state(quic: Any) -> bool:
    return isinstance(quic.tls, PostHandshakeTls) and all(
        quic._spaces[epoch] is DISCARDED_SPACE
        for epoch in (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE))


def cross(sim: Simulation, left: set[int]) -> set[tuple[int, int]]:
    return {(a, b) for a, b in sim.connected_pairs() if (a in left) != (b in left)}


def test_quic_fidelity_needs_private_keys() -> None:
    with pytest.raises(UsageError, match="identities"):
        Simulation(ValidatorSet.dev(2, seed=1), LAN, fidelity="quic")
    with pytest.raises(UsageError, match="no private key"):
        Simulation(ValidatorSet.dev(2, seed=1), LAN, fidelity="quic",
                   identities=DevKeyring([99], 2))


def test_memory_trims_still_apply_to_installed_aioquic() -> None:
    report = memory_trims_report()
    assert report and all(report.values()), report


def test_bootstrap_reaches_full_mesh_with_up0_handshakes_and_keepalive_holds_it() -> None:
    sim, records = build()
    sim.run(1.0)
    assert sim.is_full_mesh()
    fabric = sim.quic
    assert fabric is not None
    # Real 1-RTT handshake: dialer established after 1 RTT, acceptor verifies the
    # client certificate on the client's Finished after 1.5 RTT (RTT = 100 ms).
    assert min(r.time for r in records if r.event == "connected_out") == pytest.approx(0.1)
    assert min(r.time for r in records if r.event == "connected_in") == pytest.approx(0.15)
    pairs = sim.expected_pairs()
    assert fabric.up0_handshakes == 2 * pairs  # both ends received the peer's UP 0 handshake
    assert sim.sample().links_usable == len(sim.connected_pairs()) == pairs
    assert not fabric.rejections
    # From here on every connection runs on its retired handshake state (shared
    # stand-ins, no TLS context): the keep-alive below exercises trimmed connections.
    assert all(retired_handshake_state(quic) for quic in quic_connections(sim))
    # 40 s > idle timeout (15 s): keep-alive PINGs keep quiet connections open.
    before = fabric.datagrams
    sim.run(40.0)
    assert sim.is_full_mesh()
    assert not fabric.terminations
    assert fabric.datagrams > before + pairs * 2 * 6  # >= 6 PINGs (+ACKs) per end
    assert Counter(r.event for r in records)["connected_out"] == pairs


def test_partition_is_noticed_by_idle_timeout_and_heal_recovers() -> None:
    sim, records = build()
    left = {0, 1, 2}
    sim.at(2.0, lambda: sim.partition([sorted(left), [3, 4, 5]]))
    sim.at(30.0, sim.heal)
    sim.run(1.9)
    assert all(retired_handshake_state(quic) for quic in quic_connections(sim))
    sim.run(16.0)
    assert len(cross(sim, left)) == 9  # idle timeout (15 s) has not expired yet
    sim.run(25.0)
    assert cross(sim, left) == set()
    assert sim.quic is not None and sim.quic.terminations["idle timeout"] >= 9
    lost = [r for r in records if r.event == "disconnected" and r.reason == "idle timeout"]
    assert len(lost) >= 9
    sim.run(60.0)
    assert sim.is_full_mesh()
    healed = sim.time_to_full_mesh(after=30.0)
    assert healed is not None and healed < 45.0


def test_ten_percent_loss_still_converges_with_visible_retransmissions() -> None:
    lossy = NetworkConfig(default=LinkSpec(LatencySpec(0.05), LossSpec.bernoulli(0.10)))
    sim, _ = build(network=lossy, seed=2)
    clean, _ = build(seed=2)
    sim.run(30.0)
    clean.run(30.0)
    assert sim.is_full_mesh()
    assert sim.network.lost > 0
    ttfm, clean_ttfm = sim.time_to_full_mesh(), clean.time_to_full_mesh()
    assert ttfm is not None and clean_ttfm is not None and ttfm > clean_ttfm
    assert sim.quic is not None and clean.quic is not None
    # aioquic retransmitted: more datagrams left the senders than in the clean run.
    assert sim.quic.datagrams > clean.quic.datagrams


def test_impostor_with_an_unknown_key_is_rejected_with_a_reason() -> None:
    """Node 5 presents a certificate for a key outside the validator set."""
    keyring = DevKeyring([SET_SEED], 6)
    impostor_key = ValidatorSet.dev(6, seed=SET_SEED)[5].key
    stranger = ValidatorIdentity.generate_dev("stranger", 0)

    def identities(key: bytes) -> ValidatorIdentity:
        return stranger if key == impostor_key else keyring(key)

    sim, records = build(identities=identities)
    sim.run(3.0)
    assert sim.connected_pairs() == {(a, b) for a in range(5) for b in range(a + 1, 5)}
    assert sim.quic is not None and sim.quic.rejections["unknown-key"] >= 5
    failures = [r for r in records
                if r.event in ("connect_out_failed", "connect_in_failed") and
                "unknown-key" in r.reason]
    assert failures, Counter(r.event for r in records)


def test_crash_is_noticed_by_idle_timeout_and_restart_reconnects() -> None:
    crash, restart = 2.0, 30.0
    sim, records = build()
    sim.at(crash, lambda: sim.crash(2))
    sim.at(restart, lambda: sim.restart(2))
    sim.run(10.0)
    assert len(sim.connected_pairs()) == 10  # peers have not noticed yet
    sim.run(restart - 1.0)
    lost = [r for r in records if r.event == "disconnected" and r.peer == 2]
    assert len(lost) == 5 and all(r.reason == "idle timeout" for r in lost)
    idle, interval = sim.policy.idle_timeout, sim.keepalive_interval
    assert idle == 15.0 and interval == 5.0
    # RFC 9000 10.1: the idle timer restarts at the first ack-eliciting packet sent
    # after the last one received, i.e. the end's first keep-alive PING after the
    # crash (jamsim/core/keepalive.py). Peers that dialled node 2 PING at their next
    # tick: noticed in [crash + idle, crash + interval + idle] = [17, 22] s.
    diallers = [r.time for r in lost if r.direction == "out"]
    assert diallers and all(crash + idle <= t <= crash + interval + idle + 1e-6
                            for t in diallers)
    # Peers node 2 dialled PING only once it has been silent for 1.5 intervals:
    # it was last heard at most one interval before the crash (its own PING) or at
    # the handshake, so they notice in [crash + 0.5 interval + idle, crash + 2.5
    # intervals + idle] = [19.5, 29.5] s. Here node 2 crashed before its first tick
    # (5 s), so it was last heard at the handshake (0.25 s): their first tick with
    # 1.5 intervals of silence is 10 s and they notice at 25 s, later than a dialler
    # can (keep-alives from both ends would have noticed at 20 s).
    acceptors = [r.time for r in lost if r.direction == "in"]
    assert acceptors and all(crash + 0.5 * interval + idle - 1e-6 <= t
                             <= crash + 2.5 * interval + idle + 1e-6 for t in acceptors)
    assert all(t == pytest.approx(2 * interval + idle) for t in acceptors)
    sim.run(50.0)
    assert sim.is_full_mesh()


def test_short_pause_keeps_connections_long_pause_loses_them_then_recovers() -> None:
    sim, records = build()
    sim.at(2.0, lambda: sim.pause(1))
    sim.at(6.0, lambda: sim.resume(1))
    sim.run(12.0)
    assert sim.is_full_mesh()
    assert not [r for r in records if r.event == "disconnected"]
    sim.at(12.0, lambda: sim.pause(1))
    sim.at(40.0, lambda: sim.resume(1))
    sim.run(38.0)
    assert all(1 not in pair for pair in sim.connected_pairs())
    sim.run(70.0)
    assert sim.is_full_mesh()
    assert sim.quic is not None and sim.quic.terminations["idle timeout"] >= 5


def test_same_seed_gives_identical_event_digest() -> None:
    lossy = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.02, "lognormal"),
                                           LossSpec.bernoulli(0.05)))

    def run(seed: int) -> str:
        sim, records = build(network=lossy, seed=seed)
        sim.at(3.0, lambda: sim.partition([[0, 1, 2], [3, 4, 5]]))
        sim.at(25.0, sim.heal)
        sim.run(45.0)
        return event_log_digest(records)

    assert run(3) == run(3)
    assert run(3) != run(4)
