"""Harness side of real-node traffic: node options, receipts -> delivery rows."""

from __future__ import annotations

import math
from pathlib import Path

from jamsim.telemetry.writer import read_table
from jamsim.testnet.base import TestnetSpec as Spec
from jamsim.testnet.shared import traffic_options, with_traffic_start
from jamsim.testnet.traffic import TrafficReceipts, write_delivery_tables
from jamsim.traffic.config import ExtraMessage, TrafficConfig
from jamsim.traffic.records import MESSAGE_SCHEMA
from jamsim.traffic.schedule import SlotSchedule

CONFIG = TrafficConfig(slot=2.0, assurance_lead=0.5, block_size=1000, first_slot=1)


def test_node_options_carry_one_shared_slot_clock() -> None:
    spec = Spec(validators=4, seed=9, run_dir=Path("runs/x"))
    assert traffic_options(spec) == [] and with_traffic_start(spec) is spec
    fixed = with_traffic_start(Spec(validators=4, seed=9, traffic=CONFIG))
    assert fixed.traffic_start is not None
    options = traffic_options(fixed)
    assert options[:4] == ["--traffic-start", repr(fixed.traffic_start), "--traffic-seed", "9"]
    assert traffic_options(fixed) == options  # a restarted node gets the same clock
    assert "--traffic-block-size" in options and "1000" in options


def test_receipts_become_rows_with_hops_from_the_via_chain() -> None:
    schedule = SlotSchedule(4, 1, CONFIG)
    slot = 2
    author = schedule.author(slot)
    others = [i for i in range(4) if i != author]
    a, b, c = others
    start = 1000.0
    r = TrafficReceipts(schedule, start)
    t0 = start + schedule.slot_start(slot)
    r.update(author, {"blocks": [[slot, t0, -1]], "assured": [[slot, t0 - 0.5]],
                      "assurances": [[slot, author, t0 - 0.5], [slot, a, t0 - 0.4]]})
    r.update(a, {"blocks": [[slot, t0 + 0.1, author]], "assured": [[slot, t0 - 0.5]]})
    r.update(b, {"blocks": [[slot, t0 + 0.3, a]], "assured": [[slot, t0 - 0.5]]})
    r.update(c, None)  # c never answered
    r.update(b, {"blocks": [[slot, t0 + 9.0, a]]})  # a later report does not move the first
    batch = r.blocks(slot)
    rows = {int(n): (t, int(h), int(v)) for n, t, h, v in
            zip(batch.node, batch.received_at, batch.hops, batch.via, strict=True)}
    assert rows[author] == (schedule.slot_start(slot), 0, -1)
    assert rows[a][1:] == (1, author) and math.isclose(rows[a][0], 4.1)
    assert rows[b][1:] == (2, a) and math.isclose(rows[b][0], 4.3)
    assert math.isnan(rows[c][0]) and rows[c][1:] == (-1, -1)
    asr = r.assurances(slot)
    delivered = dict(zip(asr.assurer.tolist(), asr.delivered_at.tolist(), strict=True))
    assert math.isclose(delivered[a], 3.6) and math.isclose(delivered[author], 3.5)
    assert math.isnan(delivered[b]) and math.isnan(delivered[c])
    sent = dict(zip(asr.assurer.tolist(), asr.sent_at.tolist(), strict=True))
    assert math.isnan(sent[c]) and math.isclose(sent[b], 3.5)


def test_only_slots_that_ended_within_the_run_are_measured() -> None:
    r = TrafficReceipts(SlotSchedule(4, 1, CONFIG), 0.0)
    assert r.slots(9.9) == range(1, 4)  # slot 4 ends at 10 s
    assert r.slots(10.0) == range(1, 5)


EXTRA = ExtraMessage(kind=200, size=64, fanout="all", offset=1.0)


def test_node_options_carry_the_extra_messages() -> None:
    spec = with_traffic_start(Spec(validators=4, seed=9, traffic=TrafficConfig(
        slot=2.0, assurance_lead=0.5, extra=(EXTRA, ExtraMessage(kind=201, fanout="grid")))))
    options = traffic_options(spec)
    values = [options[i + 1] for i, o in enumerate(options) if o == "--traffic-extra"]
    assert values == ["200:64:all:1.0", "201:1024:grid:1.0"]
    assert [ExtraMessage.parse(v) for v in values] == [EXTRA, ExtraMessage(kind=201,
                                                                           fanout="grid")]


def test_extra_receipts_become_message_rows(tmp_path: Path) -> None:
    schedule = SlotSchedule(3, 1, TrafficConfig(slot=2.0, assurance_lead=0.5, first_slot=1,
                                                extra=(EXTRA,)))
    start = 1000.0
    r = TrafficReceipts(schedule, start)
    t = start + schedule.slot_start(2) + 1.0
    r.update(0, {"extra_sent": [[2, 200, t]], "extras": [[2, 200, 1, t + 0.02]]})
    r.update(1, {"extra_sent": [[2, 200, t]], "extras": [[2, 200, 0, t + 0.03]]})
    r.update(2, {"extras": [[2, 200, 0, t + 0.05]]})  # node 2 sent nothing (down)
    batch = r.messages(2)
    rows = {(s, d): (a, b) for s, d, a, b in zip(
        batch.sender.tolist(), batch.receiver.tolist(), batch.sent_at.tolist(),
        batch.delivered_at.tolist(), strict=True)}
    assert set(rows) == {(s, d) for s in range(3) for d in range(3) if s != d}
    assert math.isclose(rows[(0, 1)][1], 5.03) and math.isclose(rows[(0, 2)][1], 5.05)
    assert math.isclose(rows[(1, 0)][0], 5.0) and math.isclose(rows[(1, 0)][1], 5.02)
    assert math.isnan(rows[(1, 2)][1])
    assert math.isnan(rows[(2, 0)][0]) and math.isnan(rows[(2, 0)][1])
    write_delivery_tables(r, tmp_path, 8.0)
    table = read_table(tmp_path / "messages.parquet", MESSAGE_SCHEMA).to_pandas()
    assert sorted(set(table["slot"])) == [1, 2, 3] and len(table) == 3 * 6
