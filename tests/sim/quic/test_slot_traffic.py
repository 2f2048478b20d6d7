"""JAM slot traffic in the ``quic`` fidelity: real UP 0 / CE 128 / CE 141 streams on
aioquic in virtual time, written as the same per-slot delivery batches as ``model``.

3x3 grid, 10 ms one-way latency: one hop (announcement, request, block) takes three
latencies plus serialisation, so a node in the author's row or column has the block
in one hop and every other node in two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.quic.keyring import DevKeyring
from jamsim.sim.quic.slot_traffic import QuicSlotTraffic
from jamsim.sim.simulation import Fidelity, Simulation
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.records import AssuranceBatch, BlockBatch, MessageBatch
from jamsim.traffic.schedule import SlotSchedule
from jamsim.traffic.simulated import SimulatedTraffic

L = 0.01
SET_SEED = 2
CONFIG = TrafficConfig(slot=1.0, assurance_lead=0.3, block_size=20_000, first_slot=2)


def in_line(a: int, b: int) -> bool:
    return a // 3 == b // 3 or a % 3 == b % 3


def run(until: float, faults: list[tuple[float, str]] = ()  # type: ignore[assignment]
        ) -> tuple[list[BlockBatch], list[AssuranceBatch], QuicSlotTraffic, Simulation]:
    sim = Simulation(ValidatorSet.dev(9, seed=SET_SEED),
                     NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, fidelity="quic",
                     on_event=None, identities=DevKeyring([SET_SEED], 9))
    blocks: list[BlockBatch] = []
    assurances: list[AssuranceBatch] = []
    traffic = QuicSlotTraffic(sim, CONFIG, 4, until, blocks.append, assurances.append)
    for at, what in faults:
        if what == "cut":
            sim.at(at, lambda: sim.partition([[0, 1, 2, 3, 4, 5], [6, 7, 8]]))
        elif what == "heal":
            sim.at(at, sim.heal)
    sim.run(until)
    traffic.finish()
    return blocks, assurances, traffic, sim


def test_blocks_cross_the_grid_in_one_or_two_hops_and_assurances_reach_the_author() -> None:
    blocks, assurances, traffic, _ = run(8.0)
    assert [b.slot for b in blocks] == list(range(2, 8))
    assert [a.slot for a in assurances] == list(range(2, 8))
    for batch in blocks:
        start = traffic.schedule.slot_start(batch.slot)
        for node, got, hops, via in zip(batch.node, batch.received_at, batch.hops, batch.via,
                                        strict=True):
            if node == batch.author:
                assert (got, hops, via) == (start, 0, -1)
                continue
            assert hops == (1 if in_line(int(node), batch.author) else 2), (batch.slot, node)
            assert in_line(int(node), int(via))
            # three one-way latencies per hop, plus a little serialisation and ACK pacing
            assert 3 * L * hops <= got - start < 3 * L * hops + 0.1
    for assured in assurances:
        start = traffic.schedule.slot_start(assured.slot)
        assert (assured.delivered_at < start).all()
        assert (assured.sent_at == traffic.schedule.assurance_time(assured.slot)).all()
    assert traffic.fetch_failures == 0


def test_a_partition_stops_blocks_and_assurances_at_the_cut() -> None:
    blocks, assurances, _traffic, _ = run(8.0, faults=[(4.5, "cut")])
    low = {0, 1, 2, 3, 4, 5}
    for batch in blocks:
        author_low = batch.author in low
        for node, got in zip(batch.node.tolist(), batch.received_at.tolist(), strict=True):
            same = (node in low) == author_low
            if batch.slot <= 4 or same:
                assert not math.isnan(got), (batch.slot, node)
            else:
                assert math.isnan(got), (batch.slot, node)
    for assured in assurances:
        if assured.slot >= 5:
            author_low = assured.author in low
            for j, got in zip(assured.assurer.tolist(), assured.delivered_at.tolist(),
                              strict=True):
                assert math.isnan(got) == ((j in low) != author_low)


def test_jamsim_run_in_the_quic_fidelity_writes_the_delivery_tables(tmp_path: Path) -> None:
    from jamsim.analysis.delivery import load_delivery
    from jamsim.scenario.runner import run_scenario

    scenario = tmp_path / "quic-traffic.yaml"
    scenario.write_text(
        "name: quic-traffic\nseed: 3\nduration: 12s\nfidelity: quic\n"
        "validators: {count: 4}\nnetwork: {latency: {default: 10ms}}\n"
        "traffic: {slot: 2s, assurance_lead: 500ms, block_size: 5000}\n"
        "expect:\n  - blocks_reached: {at_least: 99%}\n")
    result = run_scenario(scenario, out_dir=tmp_path / "run", plots=False)
    assert result.passed, result.summary
    delivery = load_delivery(tmp_path / "run")
    assert delivery is not None
    blocks = delivery.blocks
    # slots 1..5 (slot 0 is genesis), one row per validator, every block everywhere
    assert sorted(set(blocks.slot)) == [1, 2, 3, 4, 5] and len(blocks) == 5 * 4
    assert blocks.received_at.notna().all()


def test_extra_messages_ride_real_streams_of_their_kind() -> None:
    """Kind 200, 3000 bytes to every other validator 0.5 s into each slot: all arrive
    one latency plus a little pacing later while the set is whole; across the cut
    (from 4.5 s) none does, within each side all do."""
    sim = Simulation(ValidatorSet.dev(9, seed=SET_SEED),
                     NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, fidelity="quic",
                     on_event=None, identities=DevKeyring([SET_SEED], 9))
    config = TrafficConfig(slot=1.0, assurance_lead=0.3, block_size=20_000, first_slot=2,
                           extra=(ExtraMessage(kind=200, size=3000, fanout="all",
                                               offset=0.5),))
    messages: list[MessageBatch] = []
    traffic = QuicSlotTraffic(sim, config, 4, 8.0, lambda _: None, lambda _: None,
                              on_messages=messages.append)
    sim.at(4.7, lambda: sim.partition([[0, 1, 2, 3, 4, 5], [6, 7, 8]]))
    sim.run(8.0)
    traffic.finish()
    assert [m.slot for m in messages] == list(range(2, 8))
    low = {0, 1, 2, 3, 4, 5}
    for m in messages:
        at = m.slot + 0.5
        assert len(m.kind) == 72 and set(m.kind.tolist()) == {200}
        assert (m.sent_at == at).all()
        delay = m.delivered_at - at
        crossing = np.array([(s in low) != (r in low) for s, r in
                             zip(m.sender.tolist(), m.receiver.tolist(), strict=True)])
        if m.slot <= 4:
            assert ((delay > L - 1e-9) & (delay < L + 0.1)).all(), m.slot
        else:
            assert np.isnan(delay[crossing]).all(), m.slot
            assert ((delay[~crossing] > L - 1e-9) & (delay[~crossing] < L + 0.1)).all(), m.slot


# A slow one-way link: node 0 (region "a") to node 1 (region "b") carries 64 kbit/s,
# the way back is unlimited. Slots 2 and 3 of traffic, authored by node 0 (traffic
# seed 0), with one 10 kB extra message from each node to the other half a second
# in: 0's of slot 2 needs ``(10 kB + framing) * 8 / 64 kbit/s`` ~ 1.3 s, so it
# arrives in slot 3, after slot 3 started.
SLOW_BPS = 64_000
LATE_SIZE = 10_000
LATE_CONFIG = TrafficConfig(slot=1.0, assurance_lead=0.3, block_size=1000, first_slot=2,
                            extra=(ExtraMessage(kind=200, size=LATE_SIZE, fanout=1,
                                                offset=0.5),))


def run_slow_link(fidelity: Fidelity, end: float = 6.0) -> list[MessageBatch]:
    network = NetworkConfig(default=LinkSpec(LatencySpec(L)),
                            links={("a", "b"): LinkSpec(LatencySpec(L), bandwidth_bps=SLOW_BPS),
                                   ("b", "a"): LinkSpec(LatencySpec(L))},
                            regions={0: "a", 1: "b"})
    sim = Simulation(ValidatorSet.dev(2, seed=SET_SEED), network,
                     ConnectionPolicy.preset("jamnp-s"), seed=3, fidelity=fidelity,
                     on_event=None,
                     identities=DevKeyring([SET_SEED], 2) if fidelity == "quic" else None)
    messages: list[MessageBatch] = []
    source = QuicSlotTraffic if fidelity == "quic" else SimulatedTraffic
    traffic = source(sim, LATE_CONFIG, 0, 4.0, lambda _: None, lambda _: None,
                     on_messages=messages.append)
    sim.run(end)
    if isinstance(traffic, QuicSlotTraffic):
        traffic.finish()
    return messages


def test_a_message_late_for_its_slot_is_recorded_when_it_arrives_as_the_model_records_it(
        ) -> None:
    """Every runtime records a message that arrives after its slot, while the shared
    window keeps it (64 slots for an extra message, :mod:`jamsim.traffic.late`), with
    its real arrival time, not as never: ``quic`` and ``model`` alike.

    How far apart the two may be: the overlay charges ``size * 8 / bandwidth`` plus
    the latency. Over QUIC the same bytes go out in datagrams of at most 1200 bytes,
    each with its own overhead: a 1-byte first byte, the 8-byte connection id, a
    2-byte packet number, the 16-byte AEAD tag, a STREAM frame header (type, stream
    id, offset, length: at most 7 bytes here) and at most one ACK frame (7 bytes),
    41 bytes a datagram; the stream also carries the kind byte and the message's
    4-byte length prefix. The message fits the initial congestion window (ten
    1200-byte datagrams), so all of it is on the link before anything node 0 sends
    later (slot 3's assurance and block queue behind it), and the link serialises it
    in order: quic can only be later, by at most that overhead's serialisation plus
    one RTT of pacing (the tolerance the calibration tests give a message hop)."""
    model, quic = run_slow_link("model"), run_slow_link("quic")
    assert [b.slot for b in model] == [b.slot for b in quic] == [2, 3]
    schedule = SlotSchedule(2, 0, LATE_CONFIG)
    assert schedule.author(2) == 0
    m, q = model[0], quic[0]
    assert m.sender.tolist() == q.sender.tolist() == [0, 1]
    assert (q.sent_at == m.sent_at).all()
    slot_end = schedule.slot_end(2)
    late, on_time = m.delivered_at.tolist(), q.delivered_at.tolist()
    assert late[0] == pytest.approx(2.5 + L + LATE_SIZE * 8 / SLOW_BPS)
    assert late[0] > slot_end and on_time[0] > slot_end  # late in both, recorded in both
    overhead = 41
    datagrams = math.ceil((1 + 4 + LATE_SIZE) / (1200 - overhead))
    tolerance = (1 + 4 + datagrams * overhead) * 8 / SLOW_BPS + 2 * L
    assert 0 <= on_time[0] - late[0] <= tolerance, (late, on_time, tolerance)
    # the way back is fast: within the slot in both
    assert late[1] < slot_end and on_time[1] < slot_end


@pytest.mark.parametrize(("late_slots", "recorded"), [(0, False), (1, True)])
def test_the_late_window_decides_what_is_recorded(monkeypatch: pytest.MonkeyPatch,
                                                  late_slots: int, recorded: bool) -> None:
    """The slow message of slot 2 arrives in slot 3: a window of one slot records it,
    none (the slot's own end, the rule real nodes do not follow) leaves it NaN. Either
    way each slot is handed over once, in slot order."""
    import jamsim.traffic.late as late

    monkeypatch.setattr(late, "LATE_SLOTS", late_slots)
    batches = run_slow_link("quic")
    assert [b.slot for b in batches] == [2, 3]
    got = batches[0].delivered_at.tolist()
    assert math.isnan(got[0]) != recorded
    assert got[1] < 3.0


@pytest.mark.parametrize("validators", [1, 2, 7, 10])
def test_extra_receipts_are_laid_out_as_the_schedules_rows(validators: int) -> None:
    """An open slot keeps its extra messages as the rows of its batch (two floats a
    message): the rows are the schedule's, in its order, and each scheduled
    (sender, receiver) finds its own row; anything else finds none."""
    from jamsim.sim.quic.slot_traffic import _ExtraRows

    config = TrafficConfig(slot=1.0, assurance_lead=0.3, extra=(
        ExtraMessage(kind=200, size=100, fanout="all", offset=0.1),
        ExtraMessage(kind=201, size=100, fanout="grid", offset=0.2),
        ExtraMessage(kind=202, size=100, fanout=3, offset=0.3)))
    schedule = SlotSchedule(validators, 5, config)
    rows = _ExtraRows(schedule, 4)
    batch = rows.batch()
    expected = [(i, extra.kind, j, dst) for i, extra in enumerate(config.extra)
                for j in range(validators) for dst in schedule.extra_targets(4, j, i)]
    assert list(zip(batch.kind.tolist(), batch.sender.tolist(), batch.receiver.tolist(),
                    strict=True)) == [e[1:] for e in expected]
    assert [rows.row(i, j, dst) for i, _, j, dst in expected] == list(range(len(expected)))
    for i in range(len(config.extra)):
        for j in range(validators):
            others = set(range(-1, validators + 1)) - set(schedule.extra_targets(4, j, i))
            assert all(rows.row(i, j, dst) is None for dst in others)


@pytest.mark.parametrize("assurance_slots", [1, 3])
def test_an_assurance_counts_while_a_real_author_would_still_recognise_it(
        monkeypatch: pytest.MonkeyPatch, assurance_slots: int) -> None:
    """Two validators; slot 3 is authored by node 1 (traffic seed 3), whose assurance
    from node 0 goes out at 2.7 s into a cut that lasts until 5.5 s. A partition acts
    at send time, so nothing node 0 sends meanwhile arrives, and the assurance (the
    connection outlives the cut: idle timeout 15 s) arrives at the earliest at
    5.5 s + one latency, after the end of slot 4 (5.0 s). A real author looks for an
    anchor up to one slot back, so it counts no longer: NaN, whereas with a wider
    rule the same arrival is recorded with its time."""
    import jamsim.traffic.late as late

    monkeypatch.setattr(late, "ASSURANCE_LATE_SLOTS", assurance_slots)
    sim = Simulation(ValidatorSet.dev(2, seed=SET_SEED),
                     NetworkConfig(default=LinkSpec(LatencySpec(L))),
                     ConnectionPolicy.preset("jamnp-s"), seed=3, fidelity="quic",
                     on_event=None, identities=DevKeyring([SET_SEED], 2))
    assurances: list[AssuranceBatch] = []
    # the run ends at 8 s, so the run's end cuts off nothing the window keeps
    traffic = QuicSlotTraffic(sim, CONFIG, 3, 8.0, lambda _: None, assurances.append)
    assert [traffic.schedule.author(s) for s in (2, 3)] == [0, 1]
    sim.at(2.6, lambda: sim.partition([[0], [1]]))
    sim.at(5.5, sim.heal)
    sim.run(8.0)
    traffic.finish()
    assert [a.slot for a in assurances] == list(range(2, 8))
    late = assurances[1]
    assert late.sent_at.tolist() == [pytest.approx(2.7)] * 2
    from_0, own = late.delivered_at.tolist()
    assert own == pytest.approx(2.7)
    if assurance_slots == 1:
        assert math.isnan(from_0)
    else:
        assert 5.5 + L <= from_0 < traffic.schedule.slot_end(3 + assurance_slots), from_0


def test_a_fetch_waits_one_slot_for_its_block_as_on_a_real_node() -> None:
    """The real node's driver waits ``config.fetch_timeout`` (one slot) for a CE 128
    answer; the quic fidelity used to give up after half a slot, so a block between
    the two was recorded by one runtime and not the other."""
    _, _, traffic, _ = run(1.0)
    assert CONFIG.fetch_timeout == CONFIG.slot
    assert traffic.fetch_timeout == CONFIG.fetch_timeout
