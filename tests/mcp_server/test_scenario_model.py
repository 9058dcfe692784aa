"""The scenario model: comparisons, PromQL structure, durations, and what a check's result means."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from mcp_server.scenario_loader import load_file
from mcp_server.scenario_model import (
    Comparator,
    NoEmptyPanelsCheck,
    PromQLCheck,
    Scenario,
    duration_seconds,
    parse_comparator,
    promql_structure_problem,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios"


@pytest.mark.parametrize(
    ("text", "op", "value", "upper"),
    [
        (">= 1", ">=", 1.0, None),
        (">1", ">", 1.0, None),
        ("<= 0.5", "<=", 0.5, None),
        ("< -2", "<", -2.0, None),
        ("== 0", "==", 0.0, None),
        ("!= 3e2", "!=", 300.0, None),
        ("between 0 and 100", "between", 0.0, 100.0),
        ("  Between -1.5 and .5 ", "between", -1.5, 0.5),
    ],
)
def test_comparisons_parse_into_typed_comparators(
    text: str, op: str, value: float, upper: float | None
) -> None:
    assert parse_comparator(text) == Comparator(op, value, upper)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("=> 1", "is not a comparison"),
        (">= one", "is not a comparison"),
        ("~ 1", "is not a comparison"),
        ("between 5 and 1", "lower bound 5 is above 1"),
        ("", "is not a comparison"),
        (1, "must be a comparison in quotes"),
    ],
)
def test_bad_comparisons_say_what_is_accepted(text: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_comparator(text)


def test_comparators_hold_on_the_right_side_and_never_on_nan() -> None:
    assert parse_comparator(">= 1").holds(1)
    assert not parse_comparator("> 1").holds(1)
    assert parse_comparator("between 0 and 100").holds(100)
    assert not parse_comparator("between 0 and 100").holds(100.01)
    assert not parse_comparator("!= 0").holds(math.nan)
    assert str(parse_comparator("between 0 and 1.5")) == "between 0 and 1.5"
    assert str(parse_comparator(">=1")) == ">= 1"


@pytest.mark.parametrize(
    "expr",
    [
        "up",
        'sum by (model) (rate(vllm:request_success_total{finished_reason="stop"}[5m]))',
        'count(up{job=~"a|b(c)"})',
        "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))) # p90",
        'label_replace(up, "a", "$1", "job", "(.*)")',
        "`raw ( string`",
    ],
)
def test_well_formed_promql_passes_the_structural_check(expr: str) -> None:
    assert promql_structure_problem(expr) is None


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("  ", "empty"),
        ("sum(rate(x[5m])", "'(' opened at character 4 is never closed"),
        ("sum(x))", "')' at character 7 closes nothing"),
        ("rate(x[5m)]", "')' at character 10 does not match '[' opened at character 7"),
        ('up{job="a}', "unterminated string"),
        ("rate(x[$__rate_interval])", "$__rate_interval at character 8 is a Grafana variable"),
    ],
)
def test_malformed_promql_is_named_with_its_position(expr: str, fragment: str) -> None:
    problem = promql_structure_problem(expr)
    assert problem is not None and fragment in problem


def test_durations() -> None:
    assert duration_seconds("30s") == 30
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("250ms") == 0.25
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("soon")


def _promql(**fields: object) -> PromQLCheck:
    return PromQLCheck.model_validate({"promql": "x", "expect": ">= 1", **fields})


def test_a_single_value_query_is_compared() -> None:
    check = _promql()
    assert check.assess([({}, 2.0)]) == (True, "2 >= 1: holds")
    assert check.assess([({}, 0.0)])[0] is False


def test_no_data_fails_and_several_series_need_aggregation_or_for_every_series() -> None:
    check = _promql()
    ok, why = check.assess([])
    assert not ok and "returned no data" in why
    ok, why = check.assess([({"gpu": "0"}, 1.0), ({"gpu": "1"}, 1.0)])
    assert not ok and "returned 2 series" in why and "for_every_series" in why


def test_for_every_series_names_the_failing_series() -> None:
    check = _promql(for_every_series=True, expect="between 0 and 100")
    assert check.assess([({"gpu": "0"}, 5.0), ({"gpu": "1"}, 50.0)])[0]
    ok, why = check.assess([({"gpu": "0"}, 5.0), ({"gpu": "1"}, 150.0)])
    assert not ok and '{gpu="1"} = 150' in why and "1 of 2" in why


def test_within_is_a_bounded_duration() -> None:
    assert _promql(within="1m30s").within_seconds == 90
    assert _promql().within_seconds == 0
    with pytest.raises(ValidationError, match="too long"):
        _promql(within="11m")


def test_the_design_example_is_valid_as_written() -> None:
    loaded = load_file(FIXTURES / "design-example.yaml")
    assert loaded.problems == []
    scenario = loaded.scenario
    assert scenario is not None
    assert scenario.name == "gpu-overview-healthy" and scenario.blocking
    assert scenario.time is not None and scenario.time.from_ == "now-1h"
    assert scenario.panels == ["GPU utilization", "GPU memory used"]
    empty = scenario.checks_of(NoEmptyPanelsCheck)
    assert [check.allowed_empty for check in empty] == [["Xid errors"]]
    promql = scenario.checks_of(PromQLCheck)
    assert [check.describe() for check in promql] == ["count(DCGM_FI_DEV_GPU_UTIL) >= 1"]
    assert len(scenario.expectations) == 2
    assert scenario.grafana_variables() == {"instance": ["$__all"]}


def test_a_scenario_round_trips_through_its_json_form() -> None:
    loaded = load_file(FIXTURES / "design-example.yaml")
    assert loaded.scenario is not None
    dumped = loaded.scenario.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert dumped["checks"][2] == {"promql": "count(DCGM_FI_DEV_GPU_UTIL)", "expect": ">= 1"}
    assert Scenario.model_validate(dumped) == loaded.scenario


def test_a_scenario_must_test_something() -> None:
    with pytest.raises(ValidationError, match="at least one check or one expectation"):
        Scenario.model_validate({"name": "x", "dashboard": "d"})
    checks_only = Scenario.model_validate(
        {"name": "x", "dashboard": "d", "checks": [{"no_panel_errors": {}}]}
    )
    assert checks_only.expectations == [] and checks_only.viewport.width == 1600
