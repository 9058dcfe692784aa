"""The metric names a PromQL expression reads, found by a small tokenizer (tests only).

Skipped: function and aggregation names, keywords (by, without, on, ignoring, group_left,
group_right, bool, offset, and, or, unless...), the label lists after by/without/on/ignoring/
group_left/group_right, everything inside ``{...}`` except a ``__name__="..."`` matcher, string
literals, numbers and durations, and whatever sits inside ``[...]`` (ranges and subqueries).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[a-zA-Z0-9_]*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|\S)
    """,
    re.VERBOSE,
)

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "atan2",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        # aggregation operators: their label list may come before the parenthesis
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
_LABEL_LIST_BEFORE = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$", re.S
)


def metric_names(expr: str) -> set[str]:
    """Every metric name ``expr`` selects."""
    tokens = [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr)]
    names: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if text == "{":
            index = _read_matchers(tokens, index, names)
            continue
        if text == "[":
            index = _skip_group(tokens, index, "[", "]")
            continue
        if kind == "ident":
            lowered = text.lower()
            if lowered in _LABEL_LIST_BEFORE and following == "(":
                index = _skip_group(tokens, index + 1, "(", ")")
                continue
            if lowered not in _KEYWORDS and following != "(":
                names.add(text)
        index += 1
    return names


def variable_selector(query: str) -> str | None:
    """The selector of a Grafana ``label_values(selector, label)`` variable query, if it has one."""
    match = _LABEL_VALUES.match(query)
    return match.group("selector").strip() if match else None


def _skip_group(tokens: list[tuple[str, str]], start: int, opening: str, closing: str) -> int:
    """Index just after the group that opens at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        text = tokens[index][1]
        if text == opening:
            depth += 1
        elif text == closing:
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


def _read_matchers(tokens: list[tuple[str, str]], start: int, names: set[str]) -> int:
    """Skip ``{...}``, keeping the name a ``__name__="x"`` matcher selects."""
    end = _skip_group(tokens, start, "{", "}")
    inside = tokens[start + 1 : end - 1]
    for index in range(len(inside) - 2):
        (_, label), (_, op), (kind, value) = inside[index : index + 3]
        if label == "__name__" and op == "=" and kind == "string":
            names.add(value[1:-1])
    return end
