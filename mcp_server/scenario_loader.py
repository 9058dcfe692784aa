"""Scenario files from disk: YAML with every key's and item's line and column kept, so each
problem reads ``file:line:col: message`` (1-based) and points at the spot to fix.

All problems of a file are reported at once (pydantic collects them); invalid YAML stops at the
first syntax error, since nothing after it can be trusted.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mcp_server.scenario_model import CHECK_KINDS, CHECK_TAG_PREFIX, Scenario

Loc = tuple[str | int, ...]
Severity = Literal["error", "warning"]
SCENARIO_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Position:
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


START = Position(1, 1)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, where it is."""

    file: str
    line: int
    col: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.col}: {prefix}{self.message}"


@dataclass
class SourceMap:
    """Where each key and each value of the document starts (1-based)."""

    keys: dict[Loc, Position] = field(default_factory=dict)
    values: dict[Loc, Position] = field(default_factory=dict)

    def key(self, loc: Loc) -> Position:
        """The key's position (a list item's own position), or the nearest enclosing one."""
        return self._nearest(self.keys, loc)

    def value(self, loc: Loc) -> Position:
        return self._nearest(self.values, loc)

    @staticmethod
    def _nearest(table: dict[Loc, Position], loc: Loc) -> Position:
        for end in range(len(loc), -1, -1):
            if loc[:end] in table:
                return table[loc[:end]]
        return START


@dataclass
class ScenarioFile:
    """A file as loaded: the scenario when it is valid, and every problem found."""

    path: Path
    display: str
    scenario: Scenario | None
    problems: list[Problem]
    source: SourceMap
    data: Any = None

    @property
    def ok(self) -> bool:
        return self.scenario is not None and not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    def problem(
        self,
        loc: Loc,
        message: str,
        *,
        at: Literal["key", "value"] = "value",
        severity: Severity = "error",
    ) -> Problem:
        """A problem at ``loc``'s key or value (or the nearest enclosing part that exists)."""
        position = self.source.key(loc) if at == "key" else self.source.value(loc)
        return Problem(self.display, position.line, position.col, message, severity)


# --- YAML with positions ------------------------------------------------------------------------


class YAMLSyntaxError(Exception):
    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def parse_yaml(text: str) -> tuple[Any, SourceMap]:
    """Plain Python data (dict, list, str, int, float, bool, None) and where each part starts."""
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        raise YAMLSyntaxError(*_describe_yaml_error(error, text)) from None
    except YAMLError as error:
        raise YAMLSyntaxError(START, f"invalid YAML: {error}") from None
    source = SourceMap()
    if isinstance(document, CommentedMap | CommentedSeq):
        root = Position(document.lc.line + 1, document.lc.col + 1)
        source.keys[()] = source.values[()] = root
    return _plain(document, (), source), source


def _describe_yaml_error(error: MarkedYAMLError, text: str) -> tuple[Position, str]:
    mark = error.problem_mark or error.context_mark
    position = START if mark is None else Position(mark.line + 1, mark.column + 1)
    problem = (error.problem or "").strip()
    if problem.startswith("found duplicate key"):
        problem = problem.split(" with value")[0]
    message = f"invalid YAML: {problem}"
    if error.context and error.context_mark is not None and error.context_mark is not mark:
        started = Position(error.context_mark.line + 1, error.context_mark.column + 1)
        message += f" ({error.context} at {started})"
    lines = text.splitlines()
    if mark is not None and mark.line < len(lines):
        message += _hint(error, lines[mark.line], mark.column)
    return position, message


def _hint(error: MarkedYAMLError, line: str, column: int) -> str:
    """The usual cause of two errors people make in scenario files."""
    if "block scalar" in (error.context or "") and re.search(r":\s*[<>]", line):
        return '; quote comparisons: expect: ">= 1"'
    value = line[:column].strip().lstrip("-").strip()
    key, separator, rest = value.partition(": ")
    if separator and not key.startswith(("'", '"')):
        value = rest.strip()
    if "found '<scalar>'" in (error.problem or "") and value.startswith(("'", '"')):
        return (
            "; text that starts with a quote must end with it: quote all of it "
            'or start with a word (- The "GPU utilization" panel shows ...)'
        )
    return ""


def _plain(node: Any, loc: Loc, source: SourceMap) -> Any:
    if isinstance(node, CommentedMap):
        plain: dict[str, Any] = {}
        for key, value in node.items():
            name = str(key)
            key_line, key_col = node.lc.key(key)
            value_line, value_col = node.lc.value(key)
            source.keys[(*loc, name)] = Position(key_line + 1, key_col + 1)
            source.values[(*loc, name)] = Position(value_line + 1, value_col + 1)
            plain[name] = _plain(value, (*loc, name), source)
        return plain
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            line, col = node.lc.item(index)
            source.keys[(*loc, index)] = source.values[(*loc, index)] = Position(line + 1, col + 1)
            items.append(_plain(value, (*loc, index), source))
        return items
    if isinstance(node, TaggedScalar):
        return node.value
    if isinstance(node, dt.date | dt.datetime):
        return node.isoformat()
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# --- Loading ------------------------------------------------------------------------------------


def load_text(text: str, path: Path, display: str | None = None) -> ScenarioFile:
    """Parse and validate one scenario's text; never raises for a bad scenario."""
    shown = display if display is not None else str(path)
    try:
        data, source = parse_yaml(text)
    except YAMLSyntaxError as error:
        problem = Problem(shown, error.position.line, error.position.col, error.message)
        return ScenarioFile(path, shown, None, [problem], SourceMap())
    loaded = ScenarioFile(path, shown, None, [], source, data)
    if data is None:
        loaded.problems.append(Problem(shown, 1, 1, _EMPTY))
        return loaded
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the value {data!r}"
        loaded.problems.append(
            Problem(shown, *_first(source), f"a scenario is a mapping of keys; found {kind}")
        )
        return loaded
    try:
        loaded.scenario = Scenario.model_validate(data)
    except ValidationError as error:
        loaded.problems.extend(_problems(error, loaded))
    return loaded


_EMPTY = "the file is empty: a scenario needs at least name, dashboard and checks or expect"


def _first(source: SourceMap) -> tuple[int, int]:
    position = source.value(())
    return position.line, position.col


def load_file(path: Path, display: str | None = None) -> ScenarioFile:
    shown = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        return _unreadable(path, shown, f"not UTF-8 text ({error.reason} at byte {error.start})")
    except OSError as error:
        return _unreadable(path, shown, f"cannot read it: {error.strerror or error}")
    return load_text(text, path, shown)


def _unreadable(path: Path, shown: str, message: str) -> ScenarioFile:
    return ScenarioFile(path, shown, None, [Problem(shown, 1, 1, message)], SourceMap())


def discover(paths: Iterable[Path]) -> list[Path]:
    """Scenario files named by ``paths``: files as given, folders searched for *.yaml / *.yml.

    Raises FileNotFoundError naming the first path that does not exist.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    candidate
                    for candidate in path.rglob("*")
                    if candidate.suffix in SCENARIO_SUFFIXES
                    and candidate.is_file()
                    and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for path in found:  # a file named twice (as itself and in its folder) is loaded once
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def load_paths(paths: Iterable[Path]) -> list[ScenarioFile]:
    """Every scenario under ``paths``, each with its problems; names must be unique across them."""
    files = [load_file(path) for path in discover(paths)]
    first_by_name: dict[str, ScenarioFile] = {}
    for loaded in files:
        if loaded.scenario is None:
            continue
        name = loaded.scenario.name
        earlier = first_by_name.setdefault(name, loaded)
        if earlier is not loaded:
            where = earlier.source.value(("name",))
            loaded.problems.append(
                loaded.problem(
                    ("name",),
                    f"name {name!r} is already used by {earlier.display}:{where}; "
                    "scenario names must be unique",
                )
            )
    return files


# --- pydantic errors -> problems ----------------------------------------------------------------

_TYPE_MESSAGES = {
    "string_type": "must be text (a string)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping (write {} when there is nothing to set)",
    "model_attributes_type": "must be a mapping (write {} when there is nothing to set)",
}

_PATTERN_MESSAGES = {
    "name": "must be a slug: lowercase letters and digits joined by '-' or '_' "
    "(e.g. gpu-overview-healthy)",
    "dashboard": "must be a Grafana dashboard uid: up to 40 letters, digits, '-' or '_'",
    "tags": "a tag is an identifier (letters, digits, '_'; it becomes a pytest marker)",
    "variables": "a variable name is an identifier (letters, digits, '_')",
    "within": "must be a duration such as 30s, 2m or 1m30s",
    "expect": "an expectation must say something",
}


def _problems(error: ValidationError, loaded: ScenarioFile) -> list[Problem]:
    problems = [_problem(detail, loaded) for detail in error.errors()]
    unique = {(problem.line, problem.col, problem.message): problem for problem in problems}
    return sorted(unique.values(), key=lambda problem: (problem.line, problem.col))


def _problem(detail: ErrorDetails, loaded: ScenarioFile) -> Problem:
    tagged_loc = tuple(detail["loc"])
    loc = _strip_tags(tagged_loc)
    where = _dotted(loc)
    kind = detail["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(tagged_loc[:-1])
        owner = _dotted(loc[:-1]) or "the scenario"
        message = f"unknown key {key!r} in {owner}"
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message += f"{hint}; allowed keys: {', '.join(allowed)}"
        return loaded.problem(loc, message, at="key")
    if kind == "missing":
        key = str(loc[-1])
        owner = _dotted(loc[:-1]) or "the scenario"
        return loaded.problem(loc[:-1], f"missing required key {key!r} in {owner}", at="key")
    if kind == "check_kind":
        return _check_kind_problem(loc, loaded)
    message = _message(detail, loc)
    return loaded.problem(loc, f"{where}: {message}" if where else message)


def _message(detail: ErrorDetails, loc: Loc) -> str:
    kind = detail["type"]
    if kind == "too_short" and loc == ("expect",):
        return (
            "the expectation list is empty: list at least one expectation, "
            "or leave 'expect' out for a checks-only scenario"
        )
    if kind == "too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        for part in reversed(loc):
            if isinstance(part, str) and part in _PATTERN_MESSAGES:
                return f"{_PATTERN_MESSAGES[part]}; got {detail.get('input')!r}"
    if kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        return f"must be {expected}; got {_shown(detail.get('input'))}"
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]}; got {_shown(detail.get('input'))}"
    message = detail["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _check_kind_problem(loc: Loc, loaded: ScenarioFile) -> Problem:
    kinds = ", ".join(CHECK_KINDS)
    item = _at(loaded.data, loc)
    where = _dotted(loc)
    if isinstance(item, dict):
        named = [key for key in item if key in CHECK_KINDS]
        if len(named) > 1:
            return loaded.problem(
                (*loc, named[1]),
                f"{where}: one check per list item; found {' and '.join(named)}: "
                "start each with its own '-'",
                at="key",
            )
        unknown = next(iter(item), None)
        if unknown is not None:
            close = difflib.get_close_matches(str(unknown), list(CHECK_KINDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return loaded.problem(
                (*loc, unknown),
                f"{where}: unknown check {unknown!r}{hint}; checks are: {kinds}",
                at="key",
            )
    return loaded.problem(
        loc, f"{where}: a check is a mapping naming one of: {kinds} (e.g. no_panel_errors: {{}})"
    )


def _at(data: Any, loc: Loc) -> Any:
    for part in loc:
        inside_dict = isinstance(data, dict) and part in data
        inside_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if not (inside_dict or inside_list):
            return None
        data = data[part]
    return data


def _strip_tags(loc: Loc) -> Loc:
    return tuple(
        part for part in loc if not (isinstance(part, str) and part.startswith(CHECK_TAG_PREFIX))
    )


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _allowed_keys(tagged_loc: Loc) -> list[str]:
    """The keys the model at ``tagged_loc`` accepts (by their YAML names)."""
    annotation: Any = Scenario
    for part in tagged_loc:
        annotation = _unwrap(annotation)
        if isinstance(part, str) and part.startswith(CHECK_TAG_PREFIX):
            annotation = CHECK_KINDS.get(part.removeprefix(CHECK_TAG_PREFIX))
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = _field_annotation(annotation, str(part))
        elif typing.get_origin(annotation) in (list, Sequence):
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) in (dict, Mapping):
            annotation = typing.get_args(annotation)[1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [info.alias or name for name, info in annotation.model_fields.items()]
    return []


def _field_annotation(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] until a model, list, dict or union of checks."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation
