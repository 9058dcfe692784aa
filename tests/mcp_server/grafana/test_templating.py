"""Template variables expand as Grafana 13 expands them for a Prometheus data source."""

from __future__ import annotations

import pytest

from mcp_server.grafana.templating import (
    ALL,
    dashboard_variables,
    expand,
    rate_interval_seconds,
    referenced_variables,
)


def _expand(expr: str, variables: dict[str, list[str]] | None = None, **options: object) -> str:
    settings: dict[str, object] = {"interval_seconds": 15, "range_seconds": 3600}
    settings.update(options)
    return expand(expr, variables or {}, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("interval", "scrape", "expected"),
    [
        (1, 1, "4s"),  # max(1 + 1, 4 x 1)
        (15, 15, "1m0s"),  # max(30, 60): Go's Duration.String
        (120, 30, "2m30s"),  # max(150, 120)
        (0.5, 0.25, "1s"),
        (3600, 30, "1h0m30s"),
        (0.1, 0.1, "400ms"),
        (1.25, 0.25, "1.5s"),
    ],
)
def test_rate_interval_is_grafanas_formula_in_gos_duration_format(
    interval: float, scrape: float, expected: str
) -> None:
    expr = "rate(x[$__rate_interval]) + rate(y[${__rate_interval}])"
    got = _expand(expr, interval_seconds=interval, scrape_interval_seconds=scrape)
    assert got == f"rate(x[{expected}]) + rate(y[{expected}])"


def test_rate_interval_seconds() -> None:
    assert rate_interval_seconds(1, 1) == 4
    assert rate_interval_seconds(120, 30) == 150


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(15, "15s"), (90, "1m"), (7200, "2h"), (0.5, "500ms"), (0.0001, "1ms"), (86400 * 3, "3d")],
)
def test_interval_is_truncated_to_its_largest_unit(interval: float, expected: str) -> None:
    got = _expand("avg_over_time(x[$__interval]) * $__interval_ms", interval_seconds=interval)
    assert got == f"avg_over_time(x[{expected}]) * {round(interval * 1000)}"


def test_range_variables() -> None:
    got = _expand(
        "increase(x[$__range]) / $__range_s / ${__range_ms} + increase(y[${__range}])",
        range_seconds=3599.6,
    )
    assert got == "increase(x[3600s]) / 3600 / 3599600 + increase(y[3600s])"


def test_rate_interval_ms() -> None:
    assert _expand("$__rate_interval_ms", interval_seconds=1, scrape_interval_seconds=1) == "4000"


def test_variable_syntaxes() -> None:
    values = {"job": ["api"]}
    got = _expand('up{job=~"$job"} + up{job=~"${job}"} + up{job=~"[[job]]"}', values)
    assert got == 'up{job=~"api"} + up{job=~"api"} + up{job=~"api"}'


def test_multi_value_variables_are_regex_escaped_for_a_promql_string() -> None:
    got = _expand('x{model=~"$model"}', {"model": ["meta-llama/Llama-3.1-8B", "Qwen2.5+x"]})
    assert got == r'x{model=~"(meta-llama/Llama-3\\.1-8B|Qwen2\\.5\\+x)"}'


def test_one_value_of_a_multi_value_variable_has_no_group() -> None:
    assert _expand('x{i=~"$i"}', {"i": ["127.0.0.1:9470"]}) == r'x{i=~"127\\.0\\.0\\.1:9470"}'


def test_plain_variable_escapes_only_quotes_and_backslashes() -> None:
    got = _expand("x{w=\"$w\"} + y{v='$v'}", {"w": ["2.5h"], "v": ["it's"]}, plain={"w", "v"})
    assert got == "x{w=\"2.5h\"} + y{v='it\\\\'s'}"


def test_plain_variable_with_several_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="'w' takes one value"):
        _expand('x{w="$w"}', {"w": ["a", "b"]}, plain={"w"})


def test_all_becomes_match_everything_or_the_custom_all_value() -> None:
    variables = {"instance": [ALL], "model": [ALL]}
    got = _expand(
        'x{instance=~"$instance", model=~"${model:regex}"}',
        variables,
        all_value={"model": "meta.*"},
    )
    assert got == 'x{instance=~".*", model=~"meta.*"}'


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("regex", r"(a\.b|c\/d)"),
        ("pipe", "a.b|c/d"),
        ("csv", "a.b,c/d"),
        ("raw", "a.b,c/d"),
        ("glob", "{a.b,c/d}"),
        ("json", '["a.b","c/d"]'),
        ("singlequote", "'a.b','c/d'"),
        ("doublequote", '"a.b","c/d"'),
        ("sqlstring", "'a.b','c/d'"),
        ("text", "a.b + c/d"),
        ("percentencode", "%7Ba.b%2Cc%2Fd%7D"),
    ],
)
def test_explicit_formats(fmt: str, expected: str) -> None:
    assert _expand(f"${{v:{fmt}}}", {"v": ["a.b", "c/d"]}) == expected
    assert _expand(f"[[v:{fmt}]]", {"v": ["a.b", "c/d"]}) == expected


def test_single_value_regex_format_has_no_group() -> None:
    assert _expand("${v:regex}", {"v": ["a.b"]}) == r"a\.b"


def test_unknown_format_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'lucene'"):
        _expand("${v:lucene}", {"v": ["a"]})


def test_unknown_variables_and_regex_groups_are_left_as_written() -> None:
    expr = 'label_replace(x{a="$unknown"}, "b", "$1", "c", "(.*)") + $__from'
    assert _expand(expr, {"known": ["v"]}) == expr


def test_referenced_variables() -> None:
    expr = (
        'sum(rate(x{i=~"$instance", m=~"${model:regex}", w="[[window]]"}[$__rate_interval]))'
        ' + label_replace(y, "a", "$1", "b", "(.*)")'
    )
    assert referenced_variables(expr) == {"instance", "model", "window"}


def test_a_value_is_not_expanded_again() -> None:
    assert _expand('x{a=~"$a"}', {"a": ["$b"], "b": ["no"]}) == r'x{a=~"\\$b"}'


def test_dashboard_variables_read_all_values_plain_variables_and_defaults() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "instance",
                    "type": "query",
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"text": ["All"], "value": ["$__all"]},
                },
                {
                    "name": "window",
                    "type": "custom",
                    "multi": False,
                    "includeAll": False,
                    "current": {"text": "today", "value": "today"},
                },
            ]
        }
    }
    settings = dashboard_variables(dashboard)
    assert settings.all_value == {"instance": ".*"}
    assert settings.plain == frozenset({"window"})
    assert settings.defaults == {"instance": [ALL], "window": ["today"]}
    got = expand(
        'x{instance=~"$instance", window="$window"}',
        settings.defaults,
        interval_seconds=15,
        range_seconds=3600,
        all_value=settings.all_value,
        plain=settings.plain,
    )
    assert got == 'x{instance=~".*", window="today"}'
