"""Load a scenario YAML file into a validated :class:`Scenario`, with line numbers.

PyYAML's composer gives every node a start mark; we walk the node tree once to
build plain Python data *and* a map from field path (``("timeline", 2, "at")``) to
line. A pydantic error's ``loc`` is such a path, so every message can name the
file, the line and the dotted field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jamsim.scenario.errors import ScenarioError
from jamsim.scenario.schema import Scenario

__all__ = ["LineMap", "builtin_path", "load_scenario", "parse_scenario"]

Path_ = tuple[str | int, ...]
BUILTIN = Path(__file__).parent / "builtin"


class LineMap:
    """Field path -> 1-based line number in the source file."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path`` or of its closest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _to_python(node: yaml.Node, path: Path_, lines: LineMap, file: str) -> Any:
    lines.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if key in result:
                raise ScenarioError(f"key {key!r} appears twice", file=file,
                                    line=key_node.start_mark.line + 1,
                                    field=_dotted((*path, key)))
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, (*path, key), lines, file)
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines, file) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    """Drop pydantic's union/validator tags so the path matches the YAML."""
    cleaned: list[str | int] = []
    for part in loc:
        is_field = isinstance(part, str) and not any(c in part for c in "[](),") \
            and not part.startswith("function-") and not part[:1].isupper() \
            and part not in {"float", "str", "int", "bool"}
        if isinstance(part, int) or is_field:
            cleaned.append(part)
    return tuple(cleaned)


def _errors(exc: ValidationError, lines: LineMap, file: str) -> Iterator[ScenarioError]:
    seen: set[Path_] = set()  # one message per field: union branches repeat it
    for error in exc.errors(include_url=False):
        path = _clean_loc(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {path[-1]!r}"
            parent = path[:-1]
            message += "; check the spelling (allowed keys are in `jamsim schema`)"
            if not parent:
                message += f"; top-level keys: {', '.join(Scenario.model_fields)}"
        elif error["type"] == "missing":
            message = "this field is required here"
        elif error["type"] == "literal_error":
            message = f"{message}, got {error.get('input')!r}"
        if path in seen:
            continue
        seen.add(path)
        yield ScenarioError(message, file=file, line=lines.line_of(path), field=_dotted(path))


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Validate scenario text; raise :class:`ScenarioError` naming file, line, field."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"not valid YAML: {problem}", file=file,
                            line=mark.line + 1 if mark else None) from None
    lines = LineMap()
    data = {} if root is None else _to_python(root, (), lines, file)
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a mapping of keys (name:, validators:, ...)",
                            file=file, line=1)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = list(_errors(exc, lines, file))
        first = problems[0]
        if len(problems) > 1:
            first = ScenarioError(
                first.message + "".join(f"\n  also {p}" for p in problems[1:]),
                file=first.file, line=first.line, field=first.field)
        raise first from None
    from jamsim.scenario.resolve import check_references

    check_references(scenario, lines, file)
    return scenario


def builtin_path(name: str) -> Path:
    return BUILTIN / f"{name}.yaml"


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (``quickstart`` names the built-in one)."""
    candidate = Path(path)
    if not candidate.exists() and builtin_path(str(path)).exists():
        candidate = builtin_path(str(path))
    try:
        text = candidate.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario: {exc.strerror}; "
                            "give a path to a .yaml file or a built-in name "
                            f"({', '.join(sorted(p.stem for p in BUILTIN.glob('*.yaml')))})",
                            file=str(path)) from None
    return parse_scenario(text, str(candidate))
