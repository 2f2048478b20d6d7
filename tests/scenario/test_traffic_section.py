"""The scenario's ``traffic:`` section: default on, ``none`` off, located errors."""

from __future__ import annotations

import pytest
import yaml

from jamsim.scenario.errors import ScenarioError
from jamsim.scenario.loader import parse_scenario
from jamsim.scenario.resolve import traffic_config
from jamsim.scenario.schema import Scenario
from jamsim.traffic.config import ExtraMessage, TrafficConfig


def load(text: str) -> Scenario:
    return parse_scenario(text, "t.yaml", [])


def test_traffic_is_on_by_default() -> None:
    assert traffic_config(load("name: x\n")) == TrafficConfig()


@pytest.mark.parametrize("off", ["none", "off", "null", "false"])
def test_traffic_none_turns_it_off_and_survives_a_dump(off: str) -> None:
    scenario = load(f"name: x\ntraffic: {off}\n")
    assert traffic_config(scenario) is None
    dumped = yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True))
    assert traffic_config(load(dumped)) is None


def test_fields_resolve_into_the_config() -> None:
    scenario = load("name: x\ntraffic:\n  slot: 3s\n  assurance_lead: 500ms\n"
                    "  block_size: 5000\n  cores: 16\n"
                    "  extra:\n    - {kind: 200, size: 10, fanout: grid, offset: 1s}\n")
    assert traffic_config(scenario) == TrafficConfig(
        slot=3.0, assurance_lead=0.5, block_size=5000, core_count=16,
        extra=(ExtraMessage(kind=200, size=10, fanout="grid", offset=1.0),))


@pytest.mark.parametrize(("text", "line", "field"), [
    ("traffic:\n  slot: 3s\n  assurance_lead: 4s\n", 4, "traffic.assurance_lead"),
    ("traffic:\n  extra:\n    - {offset: 9s}\n", 4, "traffic.extra[0].offset"),
    ("traffic:\n  blok: 1\n", 3, "traffic.blok"),
    ("traffic:\n  extra:\n    - {kind: 5}\n", 4, "traffic.extra[0].kind"),
    ("traffic:\n  extra:\n    - {kind: 141}\n", 4, "traffic.extra[0].kind"),
    ("traffic:\n  extra:\n    - {kind: 200}\n    - {kind: 200, size: 9}\n", 5,
     "traffic.extra[1].kind"),
])
def test_errors_name_file_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load("name: x\n" + text)
    assert (info.value.file, info.value.line, info.value.field) == ("t.yaml", line, field)


def test_delivery_expectations_parse() -> None:
    scenario = load("name: x\ntimeline:\n  - {at: 10s, heal: all}\nexpect:\n"
                    "  - block_propagation_p99: {below: 2s, after: heal}\n"
                    "  - blocks_reached: {at_least: 99%, after: heal}\n"
                    "  - assurances_delivered: {at_least: 95%}\n"
                    "  - messages_delivered: {at_least: 90%, after: heal}\n")
    kinds = [e.kind for e in scenario.expect]
    assert kinds == ["block_propagation_p99", "blocks_reached", "assurances_delivered",
                     "messages_delivered"]
    reached = scenario.expect[1].blocks_reached
    assert reached is not None and reached.at_least == pytest.approx(0.99)
