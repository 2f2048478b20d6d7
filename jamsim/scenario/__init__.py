"""Scenario files: schema, loading with line-accurate errors, runner."""

from jamsim.scenario.errors import ScenarioError
from jamsim.scenario.loader import load_scenario, parse_scenario
from jamsim.scenario.schema import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario"]
