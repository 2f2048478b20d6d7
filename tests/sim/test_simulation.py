"""The simulation driver: real ConnectionManagers over the model transport.

Every test runs the unchanged managers in virtual time and asserts on what they do
under one fault.
"""

from __future__ import annotations

import itertools

import pytest

from jamsim.core.errors import UsageError
from jamsim.core.policy import ConnectionPolicy
from jamsim.core.types import Direction
from jamsim.identity import ValidatorInfo, ValidatorSet, preferred_initiator
from jamsim.sim.network import LatencySpec, LinkSpec, LossSpec, NetworkConfig
from jamsim.sim.simulation import Simulation, event_log_digest
from jamsim.telemetry.records import COMPACT_ROW, EventRecord

LAN = NetworkConfig(default=LinkSpec(LatencySpec(0.05)))


def build(v: int = 6, network: NetworkConfig = LAN, policy: str = "jamnp-s", seed: int = 1,
          **overrides: object) -> tuple[Simulation, list[EventRecord]]:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(v, seed=5), network,
                     ConnectionPolicy.preset(policy, **overrides), seed=seed,
                     on_event=records.append, sample_interval=0.05)
    return sim, records


def assert_counters_match_managers(sim: Simulation) -> None:
    """The cheap incremental sample agrees with the managers' own views."""
    sample = sim.sample()
    assert sample.links_believed == len(sim.connected_pairs())
    assert sample.links_usable == len(sim.usable_pairs())


def cross(sim: Simulation, left: set[int]) -> set[tuple[int, int]]:
    return {(a, b) for a, b in sim.connected_pairs() if (a in left) != (b in left)}


def test_bootstrap_reaches_full_mesh_in_one_and_a_half_rtt() -> None:
    sim, records = build()
    sim.run(2.0)
    assert sim.is_full_mesh()
    # client established at 1 RTT (0.1 s), server after 1.5 RTT (0.15 s); the
    # sample taken at that same instant may run before the last arrival.
    ttfm = sim.time_to_full_mesh()
    assert ttfm is not None and 0.15 - 1e-9 <= ttfm <= 0.15 + 0.05 + 1e-9
    earliest = min(r.time for r in records if r.event == "connected_in")
    assert earliest == pytest.approx(0.15)
    assert_counters_match_managers(sim)
    assert {r.event for r in records} >= {"connecting_out", "connected_out", "connected_in"}
    assert sim.sample().duplicates == 0 and sim.sample().half_open == 0


@pytest.mark.parametrize("loss", [
    LossSpec.bernoulli(0.05),
    LossSpec.bursts(p_good_to_bad=0.02, p_bad_to_good=0.2),
])
def test_loss_delays_handshakes_by_probe_timeouts_but_mesh_completes(loss: LossSpec) -> None:
    sim, _ = build(12, NetworkConfig(default=LinkSpec(LatencySpec(0.05), loss)))
    sim.run(60.0)
    assert sim.is_full_mesh()
    assert_counters_match_managers(sim)
    first = sim.time_to_full_mesh()
    assert first is not None and first > 0.15  # some handshake paid a 1 s PTO


def test_latency_distribution_shapes_time_to_mesh() -> None:
    slow = NetworkConfig(default=LinkSpec(LatencySpec(0.2, 0.1, "lognormal", minimum=0.05)))
    sim, _ = build(8, slow)
    sim.run(10.0)
    assert sim.is_full_mesh()
    ttfm = sim.time_to_full_mesh()
    assert ttfm is not None and 0.15 < ttfm < 3.0


def test_bandwidth_serialisation_slows_handshakes() -> None:
    thin = NetworkConfig(default=LinkSpec(LatencySpec(0.05), bandwidth_bps=96_000))
    sim, _ = build(4, thin)
    sim.run(5.0)
    assert sim.is_full_mesh()
    ttfm = sim.time_to_full_mesh()
    assert ttfm is not None and ttfm >= 0.15 + 3 * 0.1 - 1e-9  # three packets on the wire


def test_partition_drops_cross_links_retries_within_policy_bounds_and_heals() -> None:
    sim, records = build(6)
    left = {0, 1, 2}
    sim.at(5.0, lambda: sim.partition([sorted(left), [3, 4, 5]]))
    sim.run(5.0 + 15.0 - 0.5)
    assert len(cross(sim, left)) == 9  # idle timeout (15 s) not yet expired
    sim.run(5.0 + 15.0 + 1.0)
    assert cross(sim, left) == set()
    assert sim.sample().components == 2
    sim.at(120.0, sim.heal)
    policy = sim.policy
    sim.run(120.0 + policy.max_retry + policy.connect_timeout + 2.0)
    assert sim.is_full_mesh()
    assert_counters_match_managers(sim)
    # Redials across the cut fail by timeout, spaced by the backoff schedule. (They
    # were fast-forwarded: recorded when the heal opened the path, at their times.)
    for node in left:
        dials = [r.time for r in records if r.node == node and r.event == "connecting_out"
                 and r.time > 5.0 and r.peer not in left]
        assert dials, f"node {node} never redialled across the partition"
    fails = [r for r in records if r.event == "connect_out_failed" and r.time > 5.0]
    assert fails and all(r.reason == "timeout" for r in fails)
    per_pair: dict[tuple[int, int], list[float]] = {}
    for r in records:
        if r.event == "connecting_out" and r.time > 20.0:
            per_pair.setdefault((r.node, r.peer), []).append(r.time)
    for times in per_pair.values():
        for a, b in itertools.pairwise(times):
            gap = b - a - policy.connect_timeout  # dial time plus retry delay
            assert policy.min_retry - 1e-6 <= gap <= policy.max_retry + 1e-6


def test_one_way_partition_still_breaks_the_connections_and_heals() -> None:
    sim, _ = build(4)
    sim.at(2.0, lambda: sim.partition([[0, 1], [2, 3]], one_way=True))
    sim.run(2.0 + 2 * 15.0 + 1.0)
    assert cross(sim, {0, 1}) == set()
    assert sim.connected_pairs() >= {(0, 1), (2, 3)}
    sim.heal()
    sim.run(sim.now + sim.policy.max_retry + sim.policy.connect_timeout + 2.0)
    assert sim.is_full_mesh()


def test_crashed_peer_is_noticed_by_idle_timeout_and_redialled_after_restart() -> None:
    sim, records = build(5)
    sim.at(3.0, lambda: sim.crash(0))
    # The survivors' idle clocks start at their first keep-alive PING into the
    # silence (ticks every min(5 s, 15 s / 3) from boot; jamsim/core/keepalive.py).
    # Those that dialled node 0 PING at their next tick, 5 s, and time out at 20 s;
    # those node 0 dialled PING once it has been silent for 1.5 intervals: it was
    # last heard at the handshake (its first tick, 5 s, came after the crash), so
    # at the 10 s tick, and they time out at 25 s.
    key0 = sim.nodes[0].key
    sim.run(3.0)
    dialled_0 = {i for i in range(1, 5)
                 if sim.manager(i).connections()[key0].direction is Direction.OUTBOUND}
    assert dialled_0 and dialled_0 != set(range(1, 5))
    sim.run(5.0 + 15.0 - 0.1)
    assert all(sim.manager(i).live_connection(key0) is not None for i in range(1, 5))
    assert sim.sample().half_open == 4
    sim.run(5.0 + 15.0 + 0.1)
    assert {i for i in range(1, 5) if sim.manager(i).live_connection(key0) is None} == \
        dialled_0
    sim.run(10.0 + 15.0 - 0.1)
    assert all(sim.manager(i).live_connection(key0) is not None
               for i in set(range(1, 5)) - dialled_0)
    sim.run(10.0 + 15.0 + 0.1)
    assert all(sim.manager(i).live_connection(key0) is None for i in range(1, 5))
    assert [r.reason for r in records if r.event == "disconnected" and r.time > 3.0] == \
        ["idle timeout"] * 4
    sim.at(30.0, lambda: sim.restart(0))
    sim.run(30.0 + sim.policy.max_retry + sim.policy.connect_timeout + 2.0)
    assert sim.is_full_mesh()


def test_jamixir_never_notices_a_crash_and_its_non_preferred_side_never_dials() -> None:
    sim, records = build(6, policy="jamixir")
    sim.at(3.0, lambda: sim.crash(0))
    sim.run(60.0)
    assert sim.sample().half_open == 5  # idle_timeout None: the peers never notice
    keys = [n.key for n in sim.nodes]
    for r in records:
        if r.event == "connecting_out":
            assert preferred_initiator(keys[r.node], keys[r.peer]) == keys[r.node]


def test_short_pause_keeps_connections_long_pause_loses_them_then_recovers() -> None:
    sim, records = build(4)
    sim.at(2.0, lambda: sim.pause(0))
    sim.at(7.0, lambda: sim.resume(0))
    sim.run(10.0)
    assert sim.is_full_mesh()
    assert not [r for r in records if r.event == "disconnected"]
    sim.at(12.0, lambda: sim.pause(0))
    sim.at(40.0, lambda: sim.resume(0))
    sim.run(39.0)
    assert all((0, j) not in sim.connected_pairs() for j in range(1, 4))
    sim.run(40.0 + sim.policy.max_retry + sim.policy.connect_timeout + 2.0)
    assert sim.is_full_mesh()
    # The paused node itself noticed on resume, by its own expired idle timer.
    assert [r.time for r in records if r.node == 0 and r.event == "disconnected"] == [40.0] * 3


def test_link_change_mid_run_applies_to_new_packets() -> None:
    sim, _ = build(4)
    sim.run(1.0)
    sim.set_link("default", "default", LinkSpec(LatencySpec(0.05), LossSpec.bernoulli(1.0)))
    sim.crash(3)
    sim.restart(3)
    sim.run(20.0)
    assert all(3 not in pair for pair in sim.connected_pairs())
    sim.set_link("default", "default", LinkSpec(LatencySpec(0.05)))
    sim.run(20.0 + 2 * sim.policy.max_retry + 2 * sim.policy.connect_timeout)
    assert sim.is_full_mesh()


def test_epoch_rotation_new_keys_join_and_old_ones_leave() -> None:
    sim, _ = build(4)
    sim.run(2.0)
    old = ValidatorSet.dev(4, seed=5)
    six = list(ValidatorSet.dev(6, seed=5))  # same first four keys, two more
    rotated = ValidatorSet(
        ValidatorInfo(i, v.key, v.address, v.region) for i, v in enumerate(six[2:])
    )
    # During the transition previous+current are kept: all six connect.
    sim.at(3.0, lambda: sim.change_validator_set(old, rotated, None))
    sim.run(8.0)
    assert len(sim.nodes) == 6
    assert sim.is_full_mesh() and len(sim.connected_pairs()) == 15
    # Next epoch: the first two keys are in none of the sets and shut down.
    sim.at(9.0, lambda: sim.change_validator_set(rotated, rotated, None))
    sim.run(12.0)
    assert sim.manager(0).is_shut_down and sim.manager(1).is_shut_down
    assert sim.connected_pairs() == {(a, b) for a in range(2, 6) for b in range(a + 1, 6)}
    assert sim.is_full_mesh()


def test_same_seed_gives_byte_identical_event_logs() -> None:
    lossy = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.02, "lognormal"),
                                           LossSpec.bernoulli(0.05)))

    def run(seed: int) -> str:
        sim, records = build(8, lossy, seed=seed)
        sim.at(4.0, lambda: sim.partition([[0, 1, 2], [3, 4, 5, 6, 7]]))
        sim.at(30.0, sim.heal)
        sim.run(60.0)
        return event_log_digest(records)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_quic_fidelity_without_private_keys_is_refused_clearly() -> None:
    """TLS needs each validator's private key; a ValidatorSet only has public ones."""
    with pytest.raises(UsageError, match="identities"):
        Simulation(ValidatorSet.dev(2, seed=1), LAN, fidelity="quic")


def test_incremental_counters_agree_with_managers_through_mixed_faults() -> None:
    lossy = NetworkConfig(default=LinkSpec(LatencySpec(0.05, 0.03, "lognormal"),
                                           LossSpec.bursts(0.02, 0.3)))
    sim, _ = build(10, lossy, seed=11)
    sim.at(5.0, lambda: sim.partition([[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]))
    sim.at(12.0, lambda: sim.crash(5))
    sim.at(14.0, lambda: sim.pause(7))
    sim.at(25.0, sim.heal)
    sim.at(33.0, lambda: sim.resume(7))
    sim.at(40.0, lambda: sim.restart(5))
    sim.at(45.0, lambda: sim.isolate(2))
    sim.at(70.0, sim.heal)
    for t in range(2, 140, 3):
        sim.run(float(t))
        assert_counters_match_managers(sim)
        assert sim.sample().duplicates == 0
    assert sim.is_full_mesh()


@pytest.mark.parametrize(("heal_at", "first_probe_through"), [(0.5, 1.0), (2.5, 3.0), (6.5, 7.0)])
def test_dial_across_a_cut_path_keeps_its_probe_schedule_when_the_path_heals(
        heal_at: float, first_probe_through: float) -> None:
    """A dial parked on a cut path resumes exactly where RFC 9002 probing would be.

    Initial at 0, probes at 0+1, 1+2, 3+4 s (PTO 1 s, doubling); the first probe
    sent after the heal gets through and the dialer is established one RTT later.
    """
    sim, records = build(2, connect_timeout=10.0, fallback_after=100.0)
    sim.partition([[0], [1]])
    sim.at(heal_at, sim.heal)
    sim.run(12.0)
    established = [r.time for r in records if r.event == "connected_out"]
    assert established == [pytest.approx(first_probe_through + 0.1)]
    assert not [r for r in records if r.event == "connect_out_failed"]
    # Parked: only the first Initial met the cut; the doomed probes were not simulated.
    assert sim.network.dropped_partition == 1


def test_dial_limit_spreads_the_bootstrap_and_still_heals_a_partition() -> None:
    unlimited, _ = build(12)
    unlimited.run(10.0)
    limited, records = build(12, max_parallel_dials=1)
    assert not limited.fast_forward  # attempts wait on each other: simulate each one
    limited.run(10.0)
    assert unlimited.is_full_mesh() and limited.is_full_mesh()
    fast, slow = unlimited.time_to_full_mesh(), limited.time_to_full_mesh()
    assert fast is not None and slow is not None and slow > 2 * fast
    # One dial at a time per node: a node's outbound dials never overlap.
    opened: dict[int, list[tuple[float, str]]] = {}
    for record in records:
        if record.event in ("connecting_out", "connected_out", "connect_out_failed"):
            opened.setdefault(record.node, []).append((record.time, record.event))
    assert len(opened) >= 6
    for timeline in opened.values():
        in_flight = 0
        for _, event in sorted(timeline, key=lambda item: (item[0], item[1] != "connected_out")):
            in_flight += 1 if event == "connecting_out" else -1
            assert in_flight <= 1
    limited.at(12.0, lambda: limited.partition([range(6), range(6, 12)]))
    limited.at(40.0, limited.heal)
    limited.run(120.0)
    assert limited.is_full_mesh()
    assert_counters_match_managers(limited)


def test_packed_rows_are_the_compact_rows_in_blocks() -> None:
    """``on_rows`` (packed blocks, the recording path) hands over exactly the rows
    ``on_row`` gets one by one, in order, lifecycle rows and caught-up attempts
    (stamped with their own times) included, whatever the block size."""
    rows: list[tuple[float | int, ...]] = []
    blocks: list[bytearray] = []
    sim = Simulation(ValidatorSet.dev(8, seed=5), LAN, ConnectionPolicy.preset("jamnp-s"),
                     seed=2, on_row=rows.append, on_rows=blocks.append, rows_per_block=7)
    sim.at(4.0, lambda: sim.partition([[0, 1, 2], [3, 4, 5, 6, 7]]))
    sim.at(6.0, lambda: sim.crash(4))
    sim.at(9.0, lambda: sim.restart(4))
    sim.at(40.0, sim.heal)
    sim.run(20.0)
    sim.flush_rows()
    sim.run(60.0)
    sim.flush_rows()
    sizes = [len(b) // COMPACT_ROW.size for b in blocks]
    assert all(len(b) % COMPACT_ROW.size == 0 for b in blocks)
    assert max(sizes) == 7 and min(sizes[:-1]) < 7  # full blocks, and the mid-run hand-over
    unpacked = [row for block in blocks for row in COMPACT_ROW.iter_unpack(block)]
    assert len(unpacked) == len(rows) == sim.events_emitted + 2  # + crash, restart
    assert unpacked == [tuple(float(v) if i == 0 else v for i, v in enumerate(row))
                        for row in rows]
    assert {row[3] for row in unpacked} >= {240, 243}  # node_crashed, node_restarted
