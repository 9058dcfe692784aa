"""Any text, and any YAML document built from scenario-like pieces, loads to a scenario or to
problems with positions inside the file: the loader never raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_server.scenario_loader import ScenarioFile, load_text

PATH = Path("fuzz.yaml")
KEYS = [
    "name",
    "description",
    "dashboard",
    "time",
    "variables",
    "viewport",
    "tags",
    "severity",
    "panels",
    "checks",
    "expect",
    "promql",
    "no_panel_errors",
    "no_empty_panels",
    "except",
    "from",
    "to",
    "width",
]
FUZZ = settings(max_examples=200)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from([">= 1", "between 1 and 2", "== x", "rate(x[5m])", "sum(", "now-1h", "{a="]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6),
    ),
    max_leaves=25,
)


def _assert_well_formed(loaded: ScenarioFile, text: str) -> None:
    lines = max(1, text.count("\n") + 1)
    assert loaded.ok or loaded.problems, "neither a scenario nor a problem"
    for problem in loaded.problems:
        assert problem.message
        assert problem.line in range(1, lines + 2), (problem, text)
        assert problem.col >= 1
        assert str(problem).startswith(f"{PATH}:{problem.line}:{problem.col}: ")


@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_says_where_it_is_wrong(text: str) -> None:
    _assert_well_formed(load_text(text, PATH), text)


@FUZZ
@given(documents)
def test_any_yaml_document_loads_or_says_where_it_is_wrong(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    _assert_well_formed(load_text(text, PATH), text)
