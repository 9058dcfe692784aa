"""The loader reports every problem as file:line:col: message, at the spot to fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mcp_server.scenario_loader import Problem, discover, load_file, load_paths, load_text

HEAD = "name: ok\ndashboard: inferwatch-gpus\n"
EMPTY = "1:1: the file is empty: a scenario needs at least name, dashboard and checks or expect"


def problems(text: str) -> list[str]:
    """Each problem as 'line:col: message' (the file name is checked once, below)."""
    loaded = load_text(textwrap.dedent(text), Path("s.yaml"))
    assert all(problem.file == "s.yaml" for problem in loaded.problems)
    return [f"{problem.line}:{problem.col}: {problem.message}" for problem in loaded.problems]


def only(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_a_problem_prints_as_file_line_col_message() -> None:
    problem = Problem("scenarios/gpus.yaml", 3, 5, "unknown key 'x'")
    assert str(problem) == "scenarios/gpus.yaml:3:5: unknown key 'x'"
    warning = Problem("a.yaml", 1, 2, "slow", severity="warning")
    assert str(warning) == "a.yaml:1:2: warning: slow"


def test_invalid_yaml_points_at_the_syntax_error() -> None:
    found = only(HEAD + "checks: [{no_panel_errors: {}}\nexpect: [a]\n")
    assert found.startswith("4:1: invalid YAML: expected ',' or ']', but got '<scalar>'")
    assert "while parsing a flow sequence at 3:9" in found


def test_an_unquoted_comparison_gets_a_hint() -> None:
    found = only(HEAD + "checks:\n  - promql: up\n    expect: >= 1\n")
    assert found.startswith("5:14: invalid YAML: ")
    assert found.endswith("""quote comparisons: expect: ">= 1\"""")


def test_duplicate_keys_are_invalid_yaml_at_the_second_key() -> None:
    found = only(HEAD + "name: again\nexpect: [a]\n")
    assert (
        found
        == '3:1: invalid YAML: found duplicate key "name" (while constructing a mapping at 1:1)'
    )


def test_an_unknown_key_lists_the_allowed_ones() -> None:
    found = only(HEAD + "expect: [a]\ncolour: red\n")
    assert found == (
        "4:1: unknown key 'colour' in the scenario; allowed keys: name, description, dashboard, "
        "time, variables, viewport, tags, severity, panels, checks, expect"
    )


def test_an_unknown_nested_key_is_reported_where_it_is_with_a_suggestion() -> None:
    found = only(HEAD + "expect: [a]\ntime:\n  from: now-1h\n  untill: now\n")
    assert found == "6:3: unknown key 'untill' in time; allowed keys: from, to"
    found = only(HEAD + "expect: [a]\nvewport: {width: 800}\n")
    assert found.startswith("4:1: unknown key 'vewport' in the scenario (did you mean 'viewport'?)")


def test_unknown_keys_inside_checks_name_the_check_keys() -> None:
    text = HEAD + textwrap.dedent(
        """\
        checks:
          - promql: up
            expect: ">= 1"
            for_each_series: true
          - no_empty_panels: {except: [a], also: b}
        """
    )
    assert problems(text) == [
        "6:5: unknown key 'for_each_series' in checks[0] (did you mean 'for_every_series'?); "
        "allowed keys: promql, expect, for_every_series, within",
        "7:36: unknown key 'also' in checks[1].no_empty_panels; allowed keys: except",
    ]


def test_an_unknown_check_and_two_checks_in_one_item() -> None:
    text = HEAD + textwrap.dedent(
        """\
        checks:
          - no_empty_panel: {}
          - no_loading_panels: {}
            no_panel_errors: {}
          - just words
        """
    )
    assert problems(text) == [
        "4:5: checks[0]: unknown check 'no_empty_panel' (did you mean 'no_empty_panels'?); "
        "checks are: no_panel_errors, no_empty_panels, no_loading_panels, promql",
        "6:5: checks[1]: one check per list item; found no_loading_panels and no_panel_errors: "
        "start each with its own '-'",
        "7:5: checks[2]: a check is a mapping naming one of: no_panel_errors, no_empty_panels, "
        "no_loading_panels, promql (e.g. no_panel_errors: {})",
    ]


def test_wrong_types_point_at_the_value() -> None:
    text = HEAD + textwrap.dedent(
        """\
        expect: [a]
        viewport: {width: wide, height: 900}
        tags: nightly
        severity: sometimes
        panels: [GPU utilization, 7]
        """
    )
    assert problems(text) == [
        "4:19: viewport.width: must be a whole number; got 'wide'",
        "5:7: tags: must be a list; got 'nightly'",
        "6:11: severity: must be 'blocking' or 'advisory'; got 'sometimes'",
        "7:27: panels[1]: must be text (a string); got 7",
    ]


def test_an_empty_expectation_list_is_an_error() -> None:
    assert only(HEAD + "checks: [{no_panel_errors: {}}]\nexpect: []\n") == (
        "4:9: expect: the expectation list is empty: list at least one expectation, "
        "or leave 'expect' out for a checks-only scenario"
    )


def test_a_blank_expectation_is_an_error() -> None:
    assert only(HEAD + "expect:\n  - ok\n  - '  '\n") == (
        "5:5: expect[1]: an expectation must say something; got '  '"
    )


def test_a_bad_expect_operator_points_at_the_comparison() -> None:
    found = only(HEAD + 'checks:\n  - promql: up\n    expect: "=> 1"\n')
    assert found.startswith("5:13: checks[0].expect: '=> 1' is not a comparison: ")
    assert ">=, >, <=, <, ==, !=" in found and "between <low> and <high>" in found


def test_bad_promql_is_caught_offline_at_the_query() -> None:
    text = HEAD + textwrap.dedent(
        """\
        checks:
          - promql: 'sum(rate(vllm:num_requests_running[5m])'
            expect: ">= 0"
          - promql: ""
            expect: ">= 0"
        """
    )
    assert problems(text) == [
        "4:13: checks[0].promql: '(' opened at character 4 is never closed",
        "6:13: checks[1].promql: the PromQL expression is empty",
    ]


def test_missing_keys_are_reported_where_they_belong() -> None:
    text = """\
        # yaml-language-server: $schema=./schema.json
        description: no name, no dashboard
        time: {to: now}
        expect: [a]
        """
    assert problems(text) == [
        "2:1: missing required key 'name' in the scenario",
        "2:1: missing required key 'dashboard' in the scenario",
        "3:1: missing required key 'from' in time",
    ]


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = """\
        name: Bad Name
        dashboard: inferwatch gpus
        tags: [smoke-test]
        time: {from: yesterday}
        checks:
          - promql: up
            expect: ">= x"
            within: 1h
        expect: []
        """
    assert [found.split(": ")[0] for found in problems(text)] == [
        "1:7",
        "2:12",
        "3:8",
        "4:14",
        "7:13",
        "8:13",
        "9:9",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            EMPTY,
        ),
        (
            "# only a comment\n",
            EMPTY,
        ),
        ("\n- a\n- b\n", "2:1: a scenario is a mapping of keys; found a list"),
        ("just text\n", "1:1: a scenario is a mapping of keys; found the value 'just text'"),
    ],
)
def test_a_file_that_is_not_a_scenario(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_a_scenario_without_checks_or_expectations() -> None:
    assert only(HEAD) == "1:1: a scenario needs at least one check or one expectation"


def test_unreadable_files(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    [problem] = load_file(binary).problems
    assert problem.line == 1 and "not UTF-8 text" in problem.message


def test_discover_reads_folders_recursively_and_skips_hidden_ones(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("x")
    (tmp_path / "sub" / "notes.txt").write_text("x")
    (tmp_path / ".drafts").mkdir()
    (tmp_path / ".drafts" / "c.yaml").write_text("x")
    found = discover([tmp_path, tmp_path / "a.yaml"])
    assert found == [tmp_path / "a.yaml", tmp_path / "sub" / "b.yml"]
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml: no such file or folder"):
        discover([tmp_path / "missing.yaml"])


def test_scenario_names_are_unique_across_files(tmp_path: Path) -> None:
    body = "dashboard: d\nchecks: [{no_panel_errors: {}}]\n"
    (tmp_path / "a.yaml").write_text("name: same\n" + body)
    (tmp_path / "b.yaml").write_text("# second\nname: same\n" + body)
    first, second = load_paths([tmp_path])
    assert first.ok and not second.ok
    [problem] = second.problems
    assert (problem.line, problem.col) == (2, 7)
    assert problem.message == (
        f"name 'same' is already used by {tmp_path / 'a.yaml'}:1:7; scenario names must be unique"
    )
