"""The scenario file format: what a QA engineer writes in ``scenarios/*.yaml``.

The pydantic model is the single source of truth: the loader validates with it, the JSON Schema
that editors autocomplete from is generated from it, and the runner reads it directly. Values are
parsed into typed forms at load time (a comparison such as ``">= 1"`` becomes a `Comparator`), so
a bad file fails validation, never a nightly run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"

SLUG_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
UID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
# Tags become pytest markers (`pytest scenarios/ -m nightly`), so they must be identifiers.
TAG_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_PATTERN = r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$"
MAX_WITHIN_SECONDS = 600.0
# A variable value of `all` selects Grafana's "All" option, `$__all` in its URLs.
ALL = "all"
GRAFANA_ALL = "$__all"

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(rf"^\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*$")
_RANGE = re.compile(rf"^\s*between\s+({_NUMBER})\s+and\s+({_NUMBER})\s*$", re.IGNORECASE)
COMPARATOR_PATTERN = (
    rf"^\s*(?:(?:>=|<=|==|!=|>|<)\s*{_NUMBER}|[Bb]etween\s+{_NUMBER}\s+and\s+{_NUMBER})\s*$"
)
_GRAFANA_RELATIVE = re.compile(r"^now(?:[+-]\d+[smhdwMy])*(?:/[smhdwMy])?$")
_EPOCH_MS = re.compile(r"^\d{10,13}$")
_DURATION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}

Operator = Literal[">=", ">", "<=", "<", "==", "!=", "between"]


class _Strict(BaseModel):
    """Every part of a scenario refuses keys it does not know: a typo must not pass silently."""

    # By alias only (`from`, `except`), so the model accepts exactly what the schema lists.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Comparisons ("expect" of a PromQL check) ---------------------------------------------------


@dataclass(frozen=True)
class Comparator:
    """A comparison of one number: ``>= 1``, ``== 0``, ``between 0 and 100`` (inclusive)."""

    op: Operator
    value: float
    upper: float | None = None

    def holds(self, sample: float) -> bool:
        if math.isnan(sample):
            return False
        match self.op:
            case ">=":
                return sample >= self.value
            case ">":
                return sample > self.value
            case "<=":
                return sample <= self.value
            case "<":
                return sample < self.value
            case "==":
                return sample == self.value
            case "!=":
                return sample != self.value
            case "between":
                assert self.upper is not None
                return self.value <= sample <= self.upper

    def __str__(self) -> str:
        if self.op == "between":
            return f"between {_number(self.value)} and {_number(self.upper or 0.0)}"
        return f"{self.op} {_number(self.value)}"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def parse_comparator(text: object) -> Comparator:
    """``">= 1"`` -> Comparator; anything else raises ValueError saying what is accepted."""
    if isinstance(text, Comparator):
        return text
    if not isinstance(text, str):
        raise ValueError(
            f'must be a comparison in quotes, e.g. ">= 1" or "between 0 and 100"; got {text!r}'
        )
    if match := _COMPARISON.match(text):
        op: Operator = match.group(1)  # type: ignore[assignment]
        return Comparator(op, float(match.group(2)))
    if match := _RANGE.match(text):
        low, high = float(match.group(1)), float(match.group(2))
        if low > high:
            raise ValueError(f"{text!r}: the lower bound {_number(low)} is above {_number(high)}")
        return Comparator("between", low, high)
    raise ValueError(
        f"{text!r} is not a comparison: write '<op> <number>' with op one of "
        ">=, >, <=, <, ==, != (e.g. \">= 1\"), or 'between <low> and <high>'"
    )


ComparatorField = Annotated[
    Comparator,
    PlainValidator(parse_comparator),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": COMPARATOR_PATTERN,
            "description": "'<op> <number>' with op one of >=, >, <=, <, ==, !=, "
            "or 'between <low> and <high>' (inclusive). Quote it: \">= 1\".",
            "examples": [">= 1", "== 0", "< 0.5", "between 0 and 100"],
        }
    ),
]


# --- PromQL, offline ----------------------------------------------------------------------------

_CLOSERS = {")": "(", "]": "[", "}": "{"}


def promql_structure_problem(expr: str) -> str | None:
    """A structural fault of a PromQL expression, or None.

    Not a parser: it catches what a person editing YAML gets wrong (an empty query, an unclosed
    bracket or quote, a Grafana variable that Prometheus will not expand). The real Prometheus
    checks the rest when it is reachable.
    """
    if not expr.strip():
        return "the PromQL expression is empty"
    opened: list[tuple[str, int]] = []
    index = 0
    while index < len(expr):
        char = expr[index]
        if char in "\"'`":
            end = _string_end(expr, index)
            if end is None:
                return f"unterminated string: the {char} at character {index + 1} is never closed"
            index = end + 1
            continue
        if char == "#":
            newline = expr.find("\n", index)
            index = len(expr) if newline < 0 else newline
            continue
        if char in "([{":
            opened.append((char, index))
        elif char in _CLOSERS:
            if not opened:
                return f"'{char}' at character {index + 1} closes nothing"
            opener, at = opened.pop()
            if opener != _CLOSERS[char]:
                return (
                    f"'{char}' at character {index + 1} does not match "
                    f"'{opener}' opened at character {at + 1}"
                )
        elif char == "$":
            variable = re.match(r"\$\{?\w*\}?", expr[index:])
            name = variable.group(0) if variable else "$"
            return (
                f"{name} at character {index + 1} is a Grafana variable: the check sends the "
                "query to Prometheus as written, so write the value (e.g. [5m] for "
                "$__rate_interval, or a label matcher)"
            )
        index += 1
    if opened:
        opener, at = opened[-1]
        return f"'{opener}' opened at character {at + 1} is never closed"
    return None


def _string_end(expr: str, start: int) -> int | None:
    quote = expr[start]
    index = start + 1
    while index < len(expr):
        if expr[index] == "\\" and quote != "`":
            index += 2
            continue
        if expr[index] == quote:
            return index
        index += 1
    return None


def _valid_promql(expr: str) -> str:
    problem = promql_structure_problem(expr)
    if problem:
        raise ValueError(problem)
    return expr.strip()


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``30s``, ``1m30s``, ``250ms``) in seconds."""
    if not text or not re.match(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 2m or 1m30s")
    total = 0.0
    for amount, unit in re.findall(r"(\d+)(ms|[ywdhms])", text):
        total += int(amount) / 1000 if unit == "ms" else int(amount) * _DURATION_UNITS[unit]
    return total


# --- Checks -------------------------------------------------------------------------------------


class _Options(_Strict):
    pass


class NoOptions(_Options):
    """This check takes no options: write ``{}``."""


class EmptyPanelsOptions(_Options):
    except_: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        alias="except",
        description="Panel titles allowed to show 'No data' (event panels that are empty when "
        "all is well, e.g. 'Xid errors').",
    )


class _Check(_Strict):
    kind: ClassVar[str]

    def describe(self) -> str:
        """One line for reports and progress output."""
        return self.kind


class NoPanelErrorsCheck(_Check):
    """No panel shows an error (the red corner / error banner)."""

    kind: ClassVar[str] = "no_panel_errors"
    no_panel_errors: NoOptions = Field(description="No panel shows an error. Options: none ({}).")


class NoEmptyPanelsCheck(_Check):
    """No panel shows 'No data', except the titles listed."""

    kind: ClassVar[str] = "no_empty_panels"
    no_empty_panels: EmptyPanelsOptions = Field(
        description="No panel shows 'No data', except those listed under 'except'."
    )

    @property
    def allowed_empty(self) -> list[str]:
        return list(self.no_empty_panels.except_)

    def describe(self) -> str:
        if not self.allowed_empty:
            return self.kind
        return f"{self.kind} (except {', '.join(self.allowed_empty)})"


class NoLoadingPanelsCheck(_Check):
    """No panel is still loading once the dashboard had its time to settle (a stuck query)."""

    kind: ClassVar[str] = "no_loading_panels"
    no_loading_panels: NoOptions = Field(
        description="No panel is stuck loading after the ready timeout. Options: none ({})."
    )


class PromQLCheck(_Check):
    """A PromQL query against Prometheus whose value must satisfy a comparison."""

    kind: ClassVar[str] = "promql"
    promql: Annotated[str, PlainValidator(_valid_promql), WithJsonSchema({"type": "string"})] = (
        Field(description="A PromQL instant query, sent to Prometheus as written.")
    )
    expect: ComparatorField = Field(description="The comparison the value must satisfy.")
    for_every_series: bool = Field(
        False,
        description="false (default): the query must return exactly one value (aggregate it, "
        "e.g. count(...) or max(...)); true: every returned series must satisfy 'expect'.",
    )
    within: Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2)] | None = Field(
        None,
        description="Retry the query until it holds, for at most this long (e.g. 30s); "
        "default: evaluate once.",
    )

    @field_validator("within")
    @classmethod
    def _bounded_within(cls, value: str | None) -> str | None:
        if value is not None and duration_seconds(value) > MAX_WITHIN_SECONDS:
            raise ValueError(f"{value!r} is too long: at most {MAX_WITHIN_SECONDS:.0f}s")
        return value

    @property
    def within_seconds(self) -> float:
        return 0.0 if self.within is None else duration_seconds(self.within)

    def describe(self) -> str:
        every = " for every series" if self.for_every_series else ""
        return f"{self.promql} {self.expect}{every}"

    def assess(self, samples: Sequence[tuple[Mapping[str, str], float]]) -> tuple[bool, str]:
        """Whether the query's result satisfies the check, and why (for the report).

        ``samples``: one (labels, value) per returned series; a scalar result is one sample
        with no labels.
        """
        if not samples:
            return False, f"{self.promql} returned no data (expected {self.expect})"
        if not self.for_every_series:
            if len(samples) > 1:
                return False, (
                    f"{self.promql} returned {len(samples)} series; aggregate it "
                    "(e.g. count(...), max(...)) or set for_every_series: true"
                )
            value = samples[0][1]
            verdict = "holds" if self.expect.holds(value) else "does not hold"
            return self.expect.holds(value), f"{_number_text(value)} {self.expect}: {verdict}"
        failing = [(labels, value) for labels, value in samples if not self.expect.holds(value)]
        if not failing:
            return True, f"all {len(samples)} series {self.expect}"
        shown = "; ".join(
            f"{_labels_text(labels)} = {_number_text(value)}" for labels, value in failing[:5]
        )
        more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
        return False, (
            f"{len(failing)} of {len(samples)} series are not {self.expect}: {shown}{more}"
        )


def _number_text(value: float) -> str:
    return "NaN" if math.isnan(value) else _number(value)


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


CHECK_KINDS: dict[str, type[_Check]] = {
    model.kind: model
    for model in (NoPanelErrorsCheck, NoEmptyPanelsCheck, NoLoadingPanelsCheck, PromQLCheck)
}
# The discriminator tags: names that can never be a key of a check item.
CHECK_TAG_PREFIX = "check:"


def check_kind_of(item: Any) -> str | None:
    """The check kind an item names (exactly one known key), else None."""
    if isinstance(item, _Check):
        return CHECK_TAG_PREFIX + item.kind
    if not isinstance(item, Mapping):
        return None
    kinds = [kind for kind in CHECK_KINDS if kind in item]
    return CHECK_TAG_PREFIX + kinds[0] if len(kinds) == 1 else None


Check = Annotated[
    Annotated[NoPanelErrorsCheck, Tag(CHECK_TAG_PREFIX + "no_panel_errors")]
    | Annotated[NoEmptyPanelsCheck, Tag(CHECK_TAG_PREFIX + "no_empty_panels")]
    | Annotated[NoLoadingPanelsCheck, Tag(CHECK_TAG_PREFIX + "no_loading_panels")]
    | Annotated[PromQLCheck, Tag(CHECK_TAG_PREFIX + "promql")],
    Discriminator(
        check_kind_of,
        custom_error_type="check_kind",
        custom_error_message="a check names exactly one kind",
    ),
]


# --- The scenario -------------------------------------------------------------------------------


def _grafana_time(value: str) -> str:
    text = value.strip()
    if _GRAFANA_RELATIVE.match(text) or _EPOCH_MS.match(text):
        return text
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a Grafana time: use now, now-1h, now-7d/d, an ISO date "
            "(2026-11-01T00:00:00Z) or epoch milliseconds"
        ) from None
    return text


class TimeRange(_Strict):
    from_: str = Field(alias="from", description="Start: now-1h, now-7d/d, an ISO time...")
    to: str = Field("now", description="End (default now).")

    _grafana = field_validator("from_", "to")(_grafana_time)


class Viewport(_Strict):
    width: int = Field(1600, ge=320, le=7680, description="Browser width in CSS pixels.")
    height: int = Field(1000, ge=240, le=4320, description="Browser height in CSS pixels.")


Expectation = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")]
PanelTitle = Annotated[str, Field(min_length=1)]


class Scenario(_Strict):
    """One dashboard (or some of its panels) and what must be true of it."""

    name: str = Field(
        pattern=SLUG_PATTERN,
        max_length=100,
        description="Unique slug: lowercase letters, digits, '-' or '_' (the test id).",
    )
    description: str = Field("", description="What this scenario protects, for the report.")
    dashboard: str = Field(pattern=UID_PATTERN, description="The Grafana dashboard uid.")
    time: TimeRange | None = Field(
        None, description="The dashboard's time range (default: the dashboard's own)."
    )
    variables: dict[
        Annotated[str, Field(pattern=VARIABLE_PATTERN)],
        Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)],
    ] = Field(
        default_factory=dict,
        description="Template variable values, e.g. {instance: [all]} ('all' selects All).",
    )
    viewport: Viewport = Field(
        default_factory=Viewport, description="The browser window the screenshots are taken in."
    )
    tags: list[Annotated[str, Field(pattern=TAG_PATTERN)]] = Field(
        default_factory=list,
        description="Labels to select scenarios by (--tag, pytest -m); identifiers only.",
    )
    severity: Literal["blocking", "advisory"] = Field(
        "blocking",
        description="blocking: a failure fails the run (exit 1); advisory: reported only.",
    )
    panels: list[PanelTitle] | None = Field(
        None,
        min_length=1,
        description="Panel titles captured and judged one by one; omit for the whole dashboard.",
    )
    checks: list[Check] = Field(
        default_factory=list,
        description="Deterministic checks, run first; no AI. Each item names one kind.",
    )
    expect: list[Expectation] | None = Field(
        None,
        min_length=1,
        description="Statements Claude judges from the screenshots and the panels' data "
        "(pass/fail/uncertain each). Omit for a checks-only scenario; never empty.",
    )

    @field_validator("description", mode="after")
    @classmethod
    def _strip_description(cls, value: str) -> str:
        return value.strip()

    @field_validator("panels", mode="after")
    @classmethod
    def _distinct_panels(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            repeated = sorted({title for title in value if value.count(title) > 1})
            if repeated:
                raise ValueError(f"panel titles listed twice: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _tests_something(self) -> Scenario:
        if not self.checks and not self.expect:
            raise ValueError("a scenario needs at least one check or one expectation")
        return self

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"

    @property
    def expectations(self) -> list[str]:
        return list(self.expect or [])

    def checks_of(self, kind: type[_Check]) -> list[Any]:
        return [check for check in self.checks if isinstance(check, kind)]

    def grafana_variables(self) -> dict[str, list[str]]:
        """Variable values as Grafana's URL takes them (``var-NAME=...``): ``all`` -> ``$__all``."""
        return {
            name: [GRAFANA_ALL if value == ALL else value for value in values]
            for name, values in self.variables.items()
        }


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to autocomplete and check ``scenarios/*.yaml``."""
    schema = Scenario.model_json_schema(by_alias=True)
    return {
        "$schema": SCHEMA_URL,
        "title": "inferwatch scenario",
        "description": "A dashboard regression scenario (scenarios/*.yaml). Generated from "
        "mcp_server/scenario_model.py by `inferwatch-scenarios schema`: do not edit.",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }
