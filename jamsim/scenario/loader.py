"""Load a scenario YAML file into a validated :class:`Scenario`, with line numbers.

PyYAML's composer gives every node a start mark; we walk the node tree once to
build plain Python data *and* a map from field path (``("timeline", 2, "at")``) to
line. A pydantic error's ``loc`` is such a path, so every message can name the
file, the line and the dotted field.

Command-line overrides (``--set policy.max_retry=8s``) are applied to that plain
data before validation, and the line map remembers which paths they wrote: an
error in an overridden value names the override as the user typed it, not a line
of some intermediate file.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from jamsim.core.errors import UsageError
from jamsim.scenario.errors import ScenarioError
from jamsim.scenario.schema import LOCATED, Scenario

__all__ = ["LineMap", "Override", "builtin_path", "load_scenario", "parse_scenario"]

Path_ = tuple[str | int, ...]
BUILTIN = Path(__file__).parent / "builtin"

# pydantic errors that only say "this was not a mapping": when another branch of
# the same union said something more specific about the same field, that wins.
_SHAPE_ERRORS = {"model_type", "model_attributes_type", "dict_type", "list_type",
                 "tuple_type"}


@dataclass(frozen=True, slots=True)
class Override:
    """One command-line change to a scenario field.

    ``key`` is the dotted field path (``policy.max_retry``), ``value`` the parsed
    YAML value, ``source`` what the user typed (``--set policy.max_retry=8s``):
    errors about the value quote ``source`` so the user knows which flag to fix.
    """

    key: str
    value: Any
    source: str

    @classmethod
    def parse(cls, text: str, option: str = "--set") -> Override:
        """``"policy.max_retry=8s"`` -> Override; the value is parsed as YAML."""
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{option} takes key=value (e.g. {option} policy.preset=jamixir),"
                             f" got {text!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise UsageError(f"{option} {text}: the value is not valid YAML ({problem}); "
                             "quote it, e.g. --set 'expect=[{max_retries_per_pair: 1}]'"
                             ) from None
        return cls(key, value, f"{option} {text}")


class LineMap:
    """Field path -> where it was written: a 1-based line of ``file``, or an override."""

    def __init__(self, file: str = "<scenario>") -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.origins: dict[Path_, str] = {}
        """Paths written by an override -> the override's ``source``."""

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path`` or of its closest ancestor that exists in the file."""
        return self.locate(path)[1]

    def locate(self, path: Path_) -> tuple[str, int | None]:
        """``(file, line)`` of ``path`` or its closest known ancestor; for a value an
        override wrote, ``(override source, None)``."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.origins:
                return self.origins[prefix], None
            if prefix in self.lines:
                return self.file, self.lines[prefix]
        return self.file, None

    def error(self, message: str, path: Path_) -> ScenarioError:
        """A ScenarioError at ``path``, naming the other overrides applied: one of
        them may be what made this value wrong (``validators.count`` for ``v7``)."""
        where, line = self.locate(path)
        others = [source for source in dict.fromkeys(self.origins.values()) if source != where]
        if others:
            message += f" (with {', '.join(others)})"
        return ScenarioError(message, file=where, line=line, field=_dotted(path))

    def override(self, path: Path_, source: str) -> None:
        """Record that ``path`` now holds a value from ``source``; forget the file's
        lines below it, which describe the value that was replaced."""
        for known in [p for p in self.lines if p[:len(path)] == path]:
            del self.lines[known]
        self.origins[path] = source


def _to_python(node: yaml.Node, path: Path_, lines: LineMap) -> Any:
    lines.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            if key in result:
                raise ScenarioError(f"key {key!r} appears twice", file=lines.file,
                                    line=key_node.start_mark.line + 1,
                                    field=_dotted((*path, key)))
            result[key] = _to_python(value_node, (*path, key), lines)
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _apply_overrides(data: dict[str, Any], overrides: Iterable[Override],
                     lines: LineMap) -> None:
    """Write each override into the plain data, as if the user had edited the file."""
    for item in overrides:
        parts = item.key.split(".")
        target: Any = data
        for depth, part in enumerate(parts[:-1]):
            if part not in target:
                target[part] = {}
                lines.override(tuple(parts[:depth + 1]), item.source)
            target = target[part]
            if not isinstance(target, dict):
                raise ScenarioError(
                    f"cannot set {item.key!r}: {'.'.join(parts[:depth + 1])!r} is not a "
                    "section; replace the whole value instead (e.g. "
                    "--set 'timeline=[{at: 20s, heal: all}]')", file=item.source)
        target[parts[-1]] = item.value
        lines.override(tuple(parts), item.source)


def _clean_loc(loc: tuple[Any, ...], data: Any) -> Path_:
    """Drop pydantic's union/validator tags so the path matches the YAML.

    A part that is a key (or index) of the data at that point is kept whatever it
    looks like (a region pair ``EU-US`` is a key); anything else is kept only if
    it looks like a field name (a missing field), not a tag like ``float`` or
    ``function-before[...]``.
    """
    cleaned: list[str | int] = []
    node = data
    for part in loc:
        in_data = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if in_data:
            cleaned.append(part)
            node = node[part]
        elif isinstance(part, str) and not any(c in part for c in "[](),") \
                and not part.startswith("function-") and not part[:1].isupper() \
                and part not in {"float", "str", "int", "bool", "none"}:
            cleaned.append(part)
            node = None
    return tuple(cleaned)


def _flatten(annotation: Any) -> Iterator[Any]:
    """The concrete types inside ``Annotated[...]`` and unions."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _flatten(typing.get_args(annotation)[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _flatten(arg)
    else:
        yield annotation


def _models_at(path: Path_) -> list[type[BaseModel]]:
    """The model classes a mapping at ``path`` can be (several for unions)."""
    current: list[Any] = [Scenario]
    for part in path:
        following: list[Any] = []
        for annotation in current:
            for kind in _flatten(annotation):
                origin, args = typing.get_origin(kind), typing.get_args(kind)
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    if isinstance(part, str) and part in kind.model_fields:
                        following.append(kind.model_fields[part].annotation)
                elif origin is dict and isinstance(part, str):
                    following.append(args[1])
                elif origin in (list, tuple) and isinstance(part, int):
                    following.extend(a for a in args if a is not Ellipsis)
        current = following
    return [kind for annotation in current for kind in _flatten(annotation)
            if isinstance(kind, type) and issubclass(kind, BaseModel)]


def _unknown_key(path: Path_) -> str:
    key = path[-1]
    allowed = list(dict.fromkeys(k for model in _models_at(path[:-1])
                                 for k in model.model_fields))
    message = f"unknown key {key!r}"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    if allowed:
        message += f"; allowed here: {', '.join(allowed)}"
    return message


def _quotes_input(error: dict[str, Any]) -> bool:
    """Should the message show the value? Yes for a wrong scalar, unless it does."""
    kind = error["type"]
    wrong_scalar = kind in {"literal_error", "enum"} or kind.endswith(("_type", "_parsing"))
    value = error.get("input")
    return wrong_scalar and not isinstance(value, dict | list) and repr(value) not in \
        error["msg"]


def _errors(exc: ValidationError, data: Any, lines: LineMap) -> list[ScenarioError]:
    """One ScenarioError per field at fault, in file order (overrides last)."""
    found = list(_each_error(exc, data, lines))
    return sorted(found, key=lambda e: (e.file != lines.file, e.line or 0))


def _each_error(exc: ValidationError, data: Any, lines: LineMap) -> Iterator[ScenarioError]:
    found: list[tuple[Path_, dict[str, Any]]] = []
    for details in exc.errors(include_url=False):
        path = _clean_loc(details["loc"], data)
        if details["type"] == LOCATED:
            context = details.get("ctx", {})
            found.append(((*path, *context["path"]), dict(details)))
            found.extend(((*path, *where), {**details, "msg": message})
                         for where, message in context["more"])
            continue
        found.append((path, dict(details)))
    # A union reports every branch. Drop a branch's complaint about a whole mapping
    # or list when another branch got inside it (its complaint is the useful one),
    # and bare "not a mapping" complaints when something more specific was said.
    paths = [path for path, _ in found]
    kept = [(path, error) for path, error in found
            if not (isinstance(error.get("input"), dict | list)
                    and any(len(p) > len(path) and p[:len(path)] == path for p in paths))]
    kept.sort(key=lambda item: item[1]["type"] in _SHAPE_ERRORS)
    seen: set[Path_] = set()  # one message per field
    for path, error in kept:
        if path in seen:
            continue
        seen.add(path)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = _unknown_key(path)
        elif error["type"] == "missing":
            message = "this field is required here"
        elif _quotes_input(error):
            message = f"{message}, got {error['input']!r}"
        yield lines.error(message, path)


def parse_scenario(text: str, file: str = "<scenario>",
                   overrides: Sequence[Override] = ()) -> Scenario:
    """Validate scenario text (with ``overrides`` applied); raise :class:`ScenarioError`
    naming file, line and field, or the override at fault."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"not valid YAML: {problem}", file=file,
                            line=mark.line + 1 if mark else None) from None
    lines = LineMap(file)
    data = {} if root is None else _to_python(root, (), lines)
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a mapping of keys (name:, validators:, ...)",
                            file=file, line=1)
    _apply_overrides(data, overrides, lines)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = _errors(exc, data, lines)
        first = problems[0]
        if len(problems) > 1:
            first = ScenarioError(
                first.message + "".join(f"\n  also {p}" for p in problems[1:]),
                file=first.file, line=first.line, field=first.field)
        raise first from None
    from jamsim.scenario.resolve import check_references

    check_references(scenario, lines)
    return scenario


def builtin_path(name: str) -> Path:
    return BUILTIN / f"{name}.yaml"


def load_scenario(path: str | Path, overrides: Sequence[Override] = ()) -> Scenario:
    """Read and validate a scenario file (``quickstart`` names the built-in one),
    with command-line ``overrides`` applied before validation."""
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
    return parse_scenario(text, str(candidate), overrides)
