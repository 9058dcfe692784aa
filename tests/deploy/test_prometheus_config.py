"""prometheus/: the config and the alert rules, checked by the real promtool and Prometheus.

- `promtool check config` / `check rules` / `test rules` pass, and `test rules` fails on a
  wrong expectation (so the unit tests can fail);
- every alert has a unit test where it fires and one where it stays silent;
- every alert is labelled and annotated; `for:` where a level could flap;
- the series names the unit tests feed are the names the demo agent really exports, so a
  renamed metric breaks a test and not an alert;
- a real Prometheus evaluates every rule against the demo agent without an error.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import REPO, binary_or_skip, query_until, start_prometheus, stop

PROMETHEUS_DIR = REPO / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
SEVERITIES = {"critical", "warning", "info"}
# Series the rules read that Prometheus itself makes, not the agent.
FROM_PROMETHEUS = {"up"}
SERIES_NAME = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _alerts() -> dict[str, dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in _load(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"] not in alerts, f"{rule['alert']} is defined twice"
                    alerts[rule["alert"]] = rule
    return alerts


def _unit_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test case of every unit test file, with its test's input series."""
    cases = []
    for path in TEST_FILES:
        for test in _load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append({**case, "input_series": test.get("input_series", [])})
    return cases


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary_or_skip("promtool"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_promtool_accepts_the_config() -> None:
    result = _promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_alert_unit_tests_pass() -> None:
    result = _promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_alert_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: a copy expecting the wrong severity is rejected."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tmp_path / "rules").symlink_to(PROMETHEUS_DIR / "rules")
    source = (PROMETHEUS_DIR / "tests" / "gpus_test.yml").read_text()
    assert "severity: warning" in source
    (tests / "gpus_test.yml").write_text(source.replace("severity: warning", "severity: info", 1))
    result = _promtool("test", "rules", str(tests / "gpus_test.yml"))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_fires_and_stays_silent_in_the_unit_tests() -> None:
    fires: dict[str, int] = defaultdict(int)
    silent: dict[str, int] = defaultdict(int)
    for case in _unit_cases():
        if case.get("exp_alerts"):
            fires[case["alertname"]] += 1
        else:
            silent[case["alertname"]] += 1
    missing = [
        f"{name}: {what}"
        for name in _alerts()
        for what, seen in (("no firing case", fires), ("no silent case", silent))
        if not seen[name]
    ]
    assert missing == []
    unknown = (set(fires) | set(silent)) - set(_alerts())
    assert not unknown, f"unit tests name alerts no rule defines: {unknown}"


def test_unit_tests_load_every_rule_file() -> None:
    loaded = {
        (path.parent / rule_file).resolve()
        for path in TEST_FILES
        for rule_file in _load(path)["rule_files"]
    }
    assert loaded == {p.resolve() for p in RULE_FILES}


def test_every_alert_is_labelled_and_annotated() -> None:
    problems = []
    for name, rule in _alerts().items():
        labels, notes = rule.get("labels", {}), rule.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity {labels.get('severity')!r}")
        if not {"summary", "description"} <= set(notes):
            problems.append(f"{name}: needs summary and description annotations")
        text = " ".join(str(v) for v in notes.values())
        if "$labels." not in text:
            problems.append(f"{name}: annotations name no label ($labels)")
        if re.search(r"[<>]\s*[\d.]+", rule["expr"]) and "$value" not in text:
            problems.append(f"{name}: a threshold alert should show $value")
        # A level (a gauge compared with a threshold) needs `for:` so one sample cannot page;
        # an event (a counter's increase) fires at once.
        if "for" not in rule and "increase(" not in rule["expr"]:
            problems.append(f"{name}: no `for:`")
    assert problems == []


def _unit_test_series_names() -> set[str]:
    names = set()
    for case in _unit_cases():
        for series in case["input_series"]:
            match = SERIES_NAME.match(series["series"])
            assert match, series["series"]
            names.add(match.group(1))
    return names


def _exported_names(agent_url: str) -> set[str]:
    text = httpx.get(agent_url + "/metrics", timeout=10).text
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.integration
def test_unit_tests_feed_the_names_the_demo_agent_exports(demo_agent_url: str) -> None:
    """dcgm-exporter names count as the agent's: it exports them in the same dialect. Polled:
    a source whose first poll failed (the simulated vLLM still starting) shows on the next."""
    wanted = _unit_test_series_names() - FROM_PROMETHEUS
    deadline = time.monotonic() + 30
    while True:
        unknown = wanted - _exported_names(demo_agent_url)
        if not unknown or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not unknown, f"the demo agent exports no series named {sorted(unknown)}"


@pytest.mark.integration
def test_real_prometheus_evaluates_every_rule_on_the_demo_agent(
    demo_agent_url: str, tmp_path: Path
) -> None:
    """Matching errors (many-to-many, duplicate series) show only on real data."""
    binary = binary_or_skip("prometheus")
    target = demo_agent_url.removeprefix("http://")
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{PROMETHEUS_DIR / 'rules'}/*.yml']\n"
        "scrape_configs:\n"
        f"  - job_name: inferwatch-agent\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    url, process = start_prometheus(binary, tmp_path, config)
    try:
        rules = _evaluated_rules(url, expected=len(_alerts()), timeout=30)
    finally:
        stop(process)
    assert {r["name"] for r in rules} == set(_alerts())
    errors = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert errors == {}


def _rules(url: str) -> list[dict[str, Any]]:
    groups = httpx.get(url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _evaluated_rules(url: str, expected: int, timeout: float) -> list[dict[str, Any]]:
    """The rules once each has been evaluated again after the agent's first scrape."""
    deadline = time.monotonic() + timeout
    assert query_until(url, "inferwatch_build_info", timeout=timeout), "no scrape of the agent"
    before = {rule["name"]: rule["lastEvaluation"] for rule in _rules(url)}
    while True:
        rules = _rules(url)
        fresh = [r for r in rules if r["lastEvaluation"] != before.get(r["name"])]
        if len(fresh) == expected == len(rules):
            return rules
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(fresh)} of {expected} rules evaluated in {timeout:g}s")
        time.sleep(0.2)
