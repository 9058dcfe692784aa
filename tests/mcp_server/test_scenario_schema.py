"""scenarios/schema.json stays what the model generates, and the model and the schema agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mcp_server.scenario_loader import load_file, load_text
from mcp_server.scenarios import schema_text
from tests.stack import REPO

SCENARIOS = REPO / "scenarios"
STARTERS = sorted(SCENARIOS.glob("*.yaml"))
SHIPPED_DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
DESIGN_EXAMPLE = REPO / "tests" / "fixtures" / "scenarios" / "design-example.yaml"


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCENARIOS / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (SCENARIOS / "schema.json").read_text()
    assert committed == schema_text(), (
        "scenarios/schema.json is stale: inferwatch-scenarios schema > scenarios/schema.json"
    )


def test_there_is_a_starter_scenario_for_every_shipped_dashboard() -> None:
    shipped = {json.loads(path.read_text())["uid"] for path in SHIPPED_DASHBOARDS}
    covered = set()
    for path in STARTERS:
        loaded = load_file(path)
        assert loaded.scenario is not None, loaded.problems
        covered.add(loaded.scenario.dashboard)
    assert shipped - covered == set()


@pytest.mark.parametrize("path", [*STARTERS, DESIGN_EXAMPLE], ids=lambda path: path.name)
def test_a_starter_scenario_is_valid_for_the_model_and_the_schema(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./schema.json\n")
    loaded = load_file(path)
    assert loaded.problems == [] and loaded.ok
    assert list(validator().iter_errors(yaml.safe_load(text))) == []


GOOD: list[dict[str, Any]] = [
    {"name": "a", "dashboard": "d", "expect": ["x"]},
    {"name": "a-b_1", "dashboard": "D_1-x", "checks": [{"no_loading_panels": {}}]},
    {
        "name": "a",
        "dashboard": "d",
        "time": {"from": "now-7d/d"},
        "checks": [
            {"promql": "up", "expect": "between -1 and 2.5", "within": "30s"},
            {"promql": "up", "expect": "!= 0", "for_every_series": True},
            {"no_empty_panels": {}},
        ],
    },
]

BAD: list[dict[str, Any]] = [
    {"name": "a", "dashboard": "d", "expect": ["x"], "colour": "red"},
    {"name": "A b", "dashboard": "d", "expect": ["x"]},
    {"name": "a", "expect": ["x"]},
    {"name": "a", "dashboard": "d", "expect": []},
    {"name": "a", "dashboard": "d", "expect": [" "]},
    {"name": "a", "dashboard": "d", "severity": "sometimes", "expect": ["x"]},
    {"name": "a", "dashboard": "d", "tags": ["smoke-test"], "expect": ["x"]},
    {"name": "a", "dashboard": "d", "checks": [{"promql": "up", "expect": "=> 1"}]},
    {"name": "a", "dashboard": "d", "checks": [{"promql": "up"}]},
    {"name": "a", "dashboard": "d", "checks": [{"no_panel_errors": {}, "no_loading_panels": {}}]},
    {"name": "a", "dashboard": "d", "checks": [{"no_panel_errors": {"x": 1}}]},
    {"name": "a", "dashboard": "d", "checks": [{"no_empty_panel": {}}]},
    {"name": "a", "dashboard": "d", "viewport": {"width": 10}, "expect": ["x"]},
    {"name": "a", "dashboard": "d", "panels": [], "expect": ["x"]},
    {"name": "a", "dashboard": "d", "variables": {"v": []}, "expect": ["x"]},
    {"name": "a", "dashboard": "d", "checks": [{"promql": "up", "expect": ">1", "within": "1x"}]},
]


@pytest.mark.parametrize("document", GOOD, ids=range(len(GOOD)))
def test_the_schema_and_the_model_accept_the_same_documents(document: dict[str, Any]) -> None:
    assert load_text(json.dumps(document), Path("s.yaml")).problems == []
    assert list(validator().iter_errors(document)) == []


@pytest.mark.parametrize("document", BAD, ids=range(len(BAD)))
def test_the_schema_and_the_model_refuse_the_same_documents(document: dict[str, Any]) -> None:
    assert load_text(json.dumps(document), Path("s.yaml")).problems != []
    assert list(validator().iter_errors(document)) != []
