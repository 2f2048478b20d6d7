"""Load a scenario YAML file into a validated :class:`Scenario`, with line numbers.

PyYAML's composer gives every node a start mark; we walk the node tree once to
build plain Python data *and* a map from field path (``("timeline", 2, "at")``) to
line. A pydantic error's ``loc`` is such a path, so every message can name the
file, the line and the dotted field.

Command-line overrides (``--set policy.max_retry=8s``) are applied to that plain
data before validation, and the line map remembers which paths they wrote: an
error in an overridden value names the override as the user typed it, not a line
of some intermediate file.

A scenario file may come from anywhere (a bug report, a generator), so reading
it is bounded: at most :data:`MAX_FILE_BYTES`, UTF-8 text only, and YAML aliases
may not expand the document beyond :data:`MAX_VALUES` values or
:data:`MAX_DEPTH` levels (an "alias bomb" of nine nested levels of nine aliases
would otherwise expand to 387 million values). Every problem found is reported
at once, up to :data:`jamsim.scenario.errors.MAX_LISTED`.
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

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_VALUES", "LineMap", "Override",
           "builtin_path", "decode_scenario", "load_scenario", "load_yaml", "parse_scenario"]

Path_ = tuple[str | int, ...]
BUILTIN = Path(__file__).parent / "builtin"

MAX_FILE_BYTES = 1 << 20
"""A scenario is a page of YAML; the largest example is a few KiB."""
MAX_VALUES = 100_000
"""Values (mappings, sequences, scalars) a document may expand to, aliases included."""
MAX_DEPTH = 40
"""Nesting levels a document may have, aliases included (scenarios use about 6)."""
_VALIDATION_PASSES = 4
"""Validation reruns without the fields already at fault, to find errors that the
first pass could not see (a policy invariant is only checked once every policy
field parsed)."""

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
        source = f"{option} {text}"
        try:
            value = load_yaml(raw, source)
        except ScenarioError as exc:
            raise UsageError(f"{source}: the value is not valid YAML "
                             f"({exc.message.removeprefix('not valid YAML: ')}); "
                             "quote it, e.g. --set 'expect=[{max_retries_per_pair: 1}]'"
                             ) from None
        return cls(key, value, source)


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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing nodes while counting what aliases expand to.

    The composer links an alias to the node it names, so the node graph stays as
    small as the text; the cost explodes only when that graph is walked as a tree.
    Each finished node's expanded size and depth are therefore computed from its
    children's (memoised by node identity), and composing stops with a located
    error as soon as either passes its bound, before anything walks the tree.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.sizes: dict[int, tuple[int, int]] = {}
        self.nesting = 0

    def fail(self, message: str, mark: Any) -> ScenarioError:
        return ScenarioError(message, file=self.file,
                             line=mark.line + 1 if mark is not None else None)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if node is None or id(node) not in self.sizes:
                raise self.fail(f"the alias *{event.anchor} refers to a value that "
                                "contains it; a scenario cannot be recursive",
                                event.start_mark)
            size, depth = self.sizes[id(node)]
            self._check(size, depth, event.start_mark, f" (at the alias *{event.anchor})")
            return node
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.fail(f"the YAML is nested more than {MAX_DEPTH} levels deep; "
                            "a scenario needs far fewer", event.start_mark)
        node = super().compose_node(parent, index)
        self.nesting -= 1
        if node is None:
            return None
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        measured = [self.sizes[id(child)] for child in children]
        size = 1 + sum(s for s, _ in measured)
        depth = 1 + max((d for _, d in measured), default=0)
        self._check(size, depth, node.start_mark, "")
        self.sizes[id(node)] = (size, depth)
        return node

    def _check(self, size: int, depth: int, mark: Any, where: str) -> None:
        if size > MAX_VALUES:
            raise self.fail(f"YAML aliases expand this document to more than {MAX_VALUES:,} "
                            f"values{where}; a scenario needs far fewer: write the values "
                            "out or use fewer, less nested aliases", mark)
        if depth > MAX_DEPTH:
            raise self.fail(f"YAML aliases nest this document more than {MAX_DEPTH} levels "
                            f"deep{where}; a scenario needs far fewer", mark)


def _compose(text: str, file: str) -> tuple[yaml.Node | None, _BoundedLoader]:
    """The single document's node tree (None for an empty one), bounded."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text, file)  # the reader checks the characters here
        return loader.get_single_node(), loader
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ScenarioError(f"contains the control character {code:#04x}, which "
                            "YAML does not allow; is this a text file?", file=file,
                            line=line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"not valid YAML: {problem}", file=file,
                            line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise ScenarioError(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)",
                            file=file) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(text: str, file: str = "<yaml>") -> Any:
    """Plain Python data from YAML ``text``, with the same bounds as a scenario file
    (used for ``--set`` and ``--param`` values, which are YAML too)."""
    root, loader = _compose(text, file)
    if root is None:
        return None
    problems: list[ScenarioError] = []
    data = _to_python(root, (), LineMap(file), loader, problems)
    if problems:
        raise ScenarioError.several(problems)
    return data


def _to_python(node: yaml.Node, path: Path_, lines: LineMap, loader: _BoundedLoader,
               problems: list[ScenarioError]) -> Any:
    """Plain data from a bounded node tree; duplicate keys are added to ``problems``
    (the first value is kept, so the rest of the file is still checked)."""
    lines.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(ScenarioError(
                    "a key must be a plain value (a name or a number), not a list or "
                    "mapping", file=lines.file, line=key_line, field=_dotted(path)))
                continue
            key = loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            if key in result:
                problems.append(ScenarioError(
                    f"key {key!r} appears twice (first on line "
                    f"{lines.lines.get((*path, key), '?')}); the first value is used",
                    file=lines.file, line=key_line, field=_dotted((*path, key))))
                continue
            result[key] = _to_python(value_node, (*path, key), lines, loader, problems)
            lines.lines[(*path, key)] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines, loader, problems)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node)


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
    naming file, line and field, or the override at fault, for every problem found."""
    root, loader = _compose(text, file)
    if root is None:
        raise ScenarioError("the file is empty (or only comments); a scenario needs at "
                            "least a `name:` line, e.g. `name: my-test`", file=file)
    lines = LineMap(file)
    problems: list[ScenarioError] = []
    data = _to_python(root, (), lines, loader, problems)
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a mapping of keys (name:, validators:, ...)",
                            file=file, line=1)
    _apply_overrides(data, overrides, lines)
    scenario = _validate(data, lines, problems)
    if problems:
        raise ScenarioError.several(_in_file_order(problems, lines))
    assert scenario is not None
    from jamsim.scenario.resolve import check_references

    check_references(scenario, lines)
    return scenario


def _validate(data: dict[str, Any], lines: LineMap,
              problems: list[ScenarioError]) -> Scenario | None:
    """The Scenario, or None with every problem added to ``problems``.

    pydantic stops checking a model at its first broken field, so a policy with a
    misspelt ``jitter`` never reaches its ``max_retry`` invariant. After a failed
    pass the fields at fault are removed (their defaults apply) and validation
    runs again, collecting errors at fields not yet reported, so one run of
    ``jamsim validate`` lists what would otherwise take several.
    """
    reported: set[str] = {p.field for p in problems}
    attempt: Any = data
    for _ in range(_VALIDATION_PASSES):
        try:
            scenario = Scenario.model_validate(attempt)
        except ValidationError as exc:
            found = _errors(exc, attempt, lines)
        else:
            return None if problems else scenario
        new = [p for p in found if p.field not in reported
               and not any(p.field.startswith(r + ".") for r in reported if r)]
        if not new:
            break
        problems.extend(new)
        reported.update(p.field for p in new)
        attempt = _without(attempt, [p.field for p in new])
        if attempt is None:
            break
    return None


def _without(data: dict[str, Any], fields: list[str]) -> dict[str, Any] | None:
    """A deep copy of ``data`` without the mapping keys named by ``fields``
    (dotted paths as in errors); None if none of them could be removed."""
    import copy

    pruned = copy.deepcopy(data)
    removed = False
    for field in fields:
        path = _undotted(field)
        if not path or not isinstance(path[-1], str):
            continue
        target: Any = pruned
        for part in path[:-1]:
            try:
                target = target[part]
            except (KeyError, IndexError, TypeError):
                target = None
                break
        if isinstance(target, dict) and path[-1] in target:
            del target[path[-1]]
            removed = True
    return pruned if removed else None


def _undotted(field: str) -> Path_:
    """Inverse of :func:`_dotted` for the paths it produces (``a.b[2].c``)."""
    import re

    path: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        path.append(int(index) if index else name)
    return tuple(path)


def _in_file_order(problems: list[ScenarioError], lines: LineMap) -> list[ScenarioError]:
    """The file's problems by line, then those of overrides."""
    return sorted(problems, key=lambda e: (e.file != lines.file, e.line or 0))


def builtin_path(name: str) -> Path:
    return BUILTIN / f"{name}.yaml"


def load_scenario(path: str | Path, overrides: Sequence[Override] = ()) -> Scenario:
    """Read and validate a scenario file (``quickstart`` names the built-in one),
    with command-line ``overrides`` applied before validation."""
    candidate = Path(path)
    if not candidate.exists() and builtin_path(str(path)).exists():
        candidate = builtin_path(str(path))
    try:
        with candidate.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario: {exc.strerror}; "
                            "give a path to a .yaml file or a built-in name "
                            f"({', '.join(sorted(p.stem for p in BUILTIN.glob('*.yaml')))})",
                            file=str(path)) from None
    return parse_scenario(decode_scenario(raw, str(candidate)), str(candidate), overrides)


def decode_scenario(raw: bytes, file: str) -> str:
    """The text of a scenario file, refusing what cannot be one: more than
    :data:`MAX_FILE_BYTES`, binary data, or bytes that are not UTF-8."""
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; a "
                            "scenario is a short YAML file", file=file)
    if b"\0" in raw:
        offset = raw.index(b"\0")
        raise ScenarioError("this is a binary file, not YAML text (it contains a NUL "
                            f"byte at offset {offset})", file=file,
                            line=raw.count(b"\n", 0, offset) + 1)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text: byte {raw[exc.start]:#04x} at offset "
                            f"{exc.start} cannot be decoded; save the scenario as UTF-8",
                            file=file, line=raw.count(b"\n", 0, exc.start) + 1) from None
