"""`jamsim schema` accepts what the loader accepts, and rejects what is plainly wrong.

Editors validate scenario files against the JSON Schema; if it typed ``60s`` as a
number, every valid file would be flagged. These tests validate every shipped
scenario with the ``jsonschema`` package and compare the loader and the schema
value by value.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError
from typer.testing import CliRunner

from jamsim.cli import app
from jamsim.scenario import ScenarioError, load_scenario, parse_scenario
from jamsim.scenario.units import (
    BANDWIDTH_SCHEMA,
    DURATION_RANGE_SCHEMA,
    DURATION_SCHEMA,
    FRACTION_SCHEMA,
    POSITIVE_DURATION_SCHEMA,
    parse_bandwidth,
    parse_duration,
    parse_fraction,
)

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*(ROOT / "scenarios").glob("*.yaml"),
                *(ROOT / "jamsim/scenario/builtin").glob("*.yaml")])


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    """The schema exactly as `jamsim schema` prints it."""
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(validator: Draft202012Validator, document: Any) -> list[str]:
    """Every error, including those inside ``anyOf`` branches, as ``path: message``."""
    def leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
        for error in errors:
            yield error
            yield from leaves(error.context or ())

    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in leaves(validator.iter_errors(document))]


def test_there_are_files_to_check() -> None:
    assert len(FILES) >= 7 and any("builtin" in str(p) for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_scenario_validates_against_the_schema(
        validator: Draft202012Validator, path: Path) -> None:
    load_scenario(path)  # the loader accepts it ...
    assert problems(validator, yaml.safe_load(path.read_text())) == []  # ... and so does the schema


def test_every_field_form_the_loader_accepts_validates(validator: Draft202012Validator) -> None:
    """One document using every unit field in its string form and its number form."""
    text = """
name: all-forms
duration: 10m
sample_interval: 500ms
validators: {count: 12, regions: {eu: 50%, us: 0.5}}
network:
  latency: {default: 40ms, eu-us: {median: 1m30s, jitter: 5ms, distribution: lognormal},
            us-eu: 0.1}
  loss: {model: gilbert-elliott, p: 1%, r: 0.3, bad_loss: 1e-1}
  bandwidth: 100Mbit
policy:
  preset: jamixir
  initial_retry: 2s
  max_retry: 64
  min_retry: 0s
  retry_multiplier: 1.5
  initial_retry_repeats: 2
  jitter: equal
  duplicate_rule: preferred_initiator
  serial_dials: false
  idle_timeout: null
  give_up_after: 10m
  non_validator_slots: 0
timeline:
  - {at: 1m, partition: [[eu], ["0..3", 7, v8]], one_way: true}
  - {at: 2m, churn: {fraction: 5%, downtime: 10s..40s, until: 3m}}
  - {at: 3m, link: {between: [eu, us], latency: {median: 200ms}, loss: 0.5%}}
  - {at: 4m, epoch: {rotate: 10%}}
  - {at: 5m, heal: all}
expect:
  - full_mesh: {within: 60s, after: heal}
  - reconnect_p99: {below: 40s, after: 1m}
  - max_retries_per_pair: 3
  - no_duplicate_connections: true
"""
    parse_scenario(text, "all-forms.yaml")
    assert problems(validator, yaml.safe_load(text)) == []


@pytest.mark.parametrize(("change", "where"), [
    ({"duration": "60 seconds"}, "duration"),
    ({"duration": "0s"}, "duration"),
    ({"duration": -5}, "duration"),
    ({"network": {"loss": "150%"}}, "network.loss"),
    ({"network": {"loss": 1.5}}, "network.loss"),
    ({"network": {"bandwidth": "0Mbit"}}, "network.bandwidth"),
    ({"network": {"bandwidth": "fast"}}, "network.bandwidth"),
    ({"network": {"latency": {"default": "40 parsecs"}}}, "network.latency.default"),
    ({"policy": {"jitter": "fulll"}}, "policy.jitter"),
    ({"policy": {"max_retry": "5x"}}, "policy.max_retry"),
    ({"policy": {"initial_retry": None}}, "policy.initial_retry"),
    ({"policy": {"max_retri": "8s"}}, "policy"),
    ({"validators": {"count": "many"}}, "validators.count"),
    ({"timeline": [{"at": "1 minute", "heal": "all"}]}, "timeline.0.at"),
    ({"timeline": [{"at": "1m", "churn": {"fraction": "5%", "downtime": "10s-40s"}}]},
     "timeline.0.churn.downtime"),
])
def test_plainly_wrong_values_are_rejected_by_the_schema(
        validator: Draft202012Validator, change: dict[str, Any], where: str) -> None:
    found = problems(validator, {"name": "wrong", **change})
    assert found, f"the schema accepted {change}"
    assert any(p.startswith(f"{where}:") for p in found), found


# ---------------------------------------------------------------- value by value

def accepts(schema: dict[str, Any], value: object) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


def loader_accepts(parse: Callable[[object], float], value: object,
                   positive: bool = False) -> bool:
    try:
        parsed = parse(value)
    except ValueError:
        return False
    return parsed > 0 if positive else True


def near(*pieces: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings built piece by piece: mostly well formed, often slightly wrong."""
    return st.tuples(*pieces).map("".join)


NUMBER = st.sampled_from(["0", "1", "5", "10", "0.5", "00", ".5", "5.", "1.0", ""])
SPACE = st.sampled_from(["", "", " "])
DURATION_TEXT = st.one_of(
    st.lists(near(NUMBER, SPACE, st.sampled_from(["us", "ms", "s", "m", "h", "x", ""]), SPACE),
             min_size=1, max_size=3).map("".join),
    st.text(alphabet="015.mshu ", max_size=6))
FRACTION_TEXT = st.one_of(
    near(SPACE, NUMBER, st.sampled_from(["", "0", "00", "e-3", "E+1"]), SPACE,
         st.sampled_from(["%", "%", "", "x"]), SPACE),
    st.text(alphabet="0159.% e-", max_size=6))
BANDWIDTH_TEXT = st.one_of(
    near(SPACE, NUMBER, SPACE, st.sampled_from(["", "k", "M", "G", "m", "x"]),
         st.sampled_from(["bit", "bit", "bps", "b", "B", ""]),
         st.sampled_from(["", "", "/s", "/"]), SPACE),
    st.text(alphabet="015.kMbitps/ ", max_size=6))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(DURATION_TEXT)
def test_duration_strings_schema_equals_loader(text: str) -> None:
    assert accepts(DURATION_SCHEMA, text) == loader_accepts(parse_duration, text), text
    assert accepts(POSITIVE_DURATION_SCHEMA, text) == \
        loader_accepts(parse_duration, text, positive=True), text


@settings(max_examples=400, deadline=None, derandomize=True)
@given(FRACTION_TEXT)
def test_fraction_strings_schema_equals_loader(text: str) -> None:
    """Equal except for exponent forms out of range (``1e5%``): the schema lets
    every exponent form through, the loader checks its range."""
    if loader_accepts(parse_fraction, text):
        assert accepts(FRACTION_SCHEMA, text), text
    elif "e" not in text.lower():
        assert not accepts(FRACTION_SCHEMA, text), text


@settings(max_examples=400, deadline=None, derandomize=True)
@given(BANDWIDTH_TEXT)
def test_bandwidth_strings_schema_equals_loader(text: str) -> None:
    assert accepts(BANDWIDTH_SCHEMA, text) == loader_accepts(parse_bandwidth, text), text


def draws(strategy: st.SearchStrategy[str], count: int = 200) -> list[str]:
    drawn: list[str] = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=True)
    @given(strategy)
    def draw(text: str) -> None:
        drawn.append(text)

    draw()
    return drawn


def test_the_generated_strings_include_valid_ones() -> None:
    """Guard against the properties above passing on rejects only."""
    for strategy, parse in ((DURATION_TEXT, parse_duration), (FRACTION_TEXT, parse_fraction),
                            (BANDWIDTH_TEXT, parse_bandwidth)):
        drawn = draws(strategy)
        valid = sum(loader_accepts(parse, text) for text in drawn)
        assert valid >= len(drawn) // 10, (parse.__name__, valid, len(drawn))


@pytest.mark.parametrize("number", [-1, -0.5, 0, 0.25, 1, 1.5, 100, 10**9])
def test_numbers_schema_equals_loader(number: float) -> None:
    for schema, parse in ((DURATION_SCHEMA, parse_duration), (FRACTION_SCHEMA, parse_fraction),
                          (BANDWIDTH_SCHEMA, parse_bandwidth)):
        assert accepts(schema, number) == loader_accepts(parse, number), (schema, number)
    assert not accepts(DURATION_SCHEMA, True) and not loader_accepts(parse_duration, True)


@pytest.mark.parametrize(("text", "ok"), [
    ("30s..2m", True), ("1m30s..2m", True), ("30s .. 2m", True), ("45s", True),
    ("30s..", False), ("..2m", False), ("30s-2m", False), ("30..60", False),
])
def test_downtime_range_pattern(text: str, ok: bool) -> None:
    assert accepts(DURATION_RANGE_SCHEMA, text) is ok


SAMPLES = ["60s", "1m30s", "1m 30s", " 2h ", "0s", "0.5s", "5", "1s2", "5%", "0.5%", "100%",
           "101%", "0.05", "1e-5", "100Mbit", "0Mbit", "10 kbit/s", "1.5Gbps", "x"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for ECMA-262 regexes")
def test_patterns_mean_the_same_in_ecma_262() -> None:
    """Editors run the patterns as JavaScript regexes; Python's must agree with them."""
    schemas = [DURATION_SCHEMA, POSITIVE_DURATION_SCHEMA, FRACTION_SCHEMA, BANDWIDTH_SCHEMA]
    patterns = [s["anyOf"][1]["pattern"] for s in schemas] + [DURATION_RANGE_SCHEMA["pattern"]]
    script = ("const [p, s] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "console.log(JSON.stringify(p.map(x => s.map(t => new RegExp(x, 'u').test(t)))));")
    out = subprocess.run(["node", "-e", script], input=json.dumps([patterns, SAMPLES]),
                         capture_output=True, text=True, timeout=30, check=True).stdout
    python = [[re.search(p, t) is not None for t in SAMPLES] for p in patterns]
    assert json.loads(out) == python


def _doc_snippets() -> list[tuple[str, str, str]]:
    """Every ```yaml block of README.md and docs/*.md, as (``file:line``, text,
    expected error). A block the docs show failing is followed by a ```console
    block running ``jamsim validate`` whose ``error:`` line is the expected error
    (without its ``file:line: ``), so the docs' message is checked too."""
    found = []
    block = re.compile(r"```(\w*)\n(.*?)```", re.S)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        blocks = list(block.finditer(text))
        for i, match in enumerate(blocks):
            if match.group(1) not in ("yaml", "yml"):
                continue
            line = text.count("\n", 0, match.start()) + 2
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            expected = ""
            if following is not None and following.group(1) == "console" \
                    and "$ jamsim validate" in following.group(2):
                error = next((x for x in following.group(2).splitlines()
                              if x.startswith("error: ")), None)
                if error is not None:  # a validate run the docs show passing: no error
                    expected = error.split(": ", 2)[2]
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(2), expected))
    return found


SNIPPETS = _doc_snippets()
SECTIONS = {"network": ("loss", "latency", "bandwidth")}
"""A snippet showing part of a section (``loss: ...``) is checked inside that section."""


def as_scenario(snippet: Any) -> Any:
    """The snippet as a whole scenario document: wrapped in its section if it is one."""
    if isinstance(snippet, dict):
        for section, keys in SECTIONS.items():
            if snippet and set(snippet) <= set(keys):
                return {section: snippet}
    return snippet


def test_the_docs_have_scenario_snippets() -> None:
    assert sum(1 for _, text, _ in SNIPPETS if "timeline:" in text) >= 3
    assert any(expected for _, _, expected in SNIPPETS)


@pytest.mark.parametrize(("where", "text", "expected"), SNIPPETS,
                         ids=[w for w, _, _ in SNIPPETS])
def test_every_docs_snippet_validates_against_the_schema_and_the_loader(
        validator: Draft202012Validator, where: str, text: str, expected: str) -> None:
    data = yaml.safe_load(text)
    if data is None:  # a comment-only block, e.g. the editor's schema line
        assert text.lstrip().startswith("#")
        return
    if expected:  # shown failing: it must fail with the message the docs print
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, where)
        assert str(info.value).split(": ", 1)[1] == expected
        return
    document = as_scenario(data)
    assert problems(validator, document) == [], where
    parse_scenario(yaml.safe_dump(document), where)


def test_the_schema_declares_its_draft() -> None:
    result = CliRunner().invoke(app, ["schema"])
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert Draft202012Validator.META_SCHEMA["$id"] == schema["$schema"]
