"""``inferwatch-scenarios run`` end to end: demo agent -> Prometheus -> Grafana stand-in ->
Chromium -> checks -> fake judge -> report.html, junit.xml, results.json."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from mcp_server.scenarios_cli import main
from tests.e2e.conftest import (
    BROKEN_STATES,
    PINNED_GPUS,
    SECRETS,
    Stack,
    leaked,
    write_scenario,
)
from tests.mcp_server.junit_schema import problems
from tests.stack import REPO

pytestmark = pytest.mark.integration


def results(folder: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((folder / "results.json").read_text())
    return {scenario["name"]: scenario for scenario in data["scenarios"]}


def test_a_nightly_run_writes_the_three_reports(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = stack.work / "scenarios"
    pinned = write_scenario(folder, "gpus-pinned", PINNED_GPUS)
    write_scenario(folder, "states-broken", BROKEN_STATES)
    out = stack.work / "out"
    starters = [str(REPO / "scenarios" / name) for name in ("gpus.yaml", "overview.yaml")]

    code = main(["run", *starters, str(folder), "--report-dir", str(out), "--concurrency", "2"])
    printed = capsys.readouterr()

    assert code == 1, printed.out + printed.err  # the broken dashboard is blocking
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml",
        "report.html",
        "results.json",
        "screenshots",
    ]
    found = results(out)
    assert {name: s["status"] for name, s in found.items()} == {
        "gpus-healthy": "pass",
        "overview-healthy": "pass",
        "gpus-pinned": "pass",
        "states-broken": "fail",
    }, {name: s["reasons"] for name, s in found.items()}
    for name in ("gpus-healthy", "overview-healthy", "gpus-pinned"):
        assert found[name]["verdicts"], name
        assert all(v["verdict"] == "pass" and v["reason"] for v in found[name]["verdicts"])
        assert found[name]["judge"]["input_tokens"] > 0
        assert found[name]["screenshots"]
    assert [(s["label"], s["width"] > 0) for s in found["gpus-pinned"]["screenshots"]] == [
        ("GPU utilization", True),
        ("GPU temperature", True),
    ]

    # The broken panel fails at the checks: Claude never hears of it.
    broken = found["states-broken"]
    assert broken["judge"] is None
    assert any("'Broken query'" in reason for reason in broken["reasons"])
    assert any("'Missing series' show no data" in reason for reason in broken["reasons"])
    assert len(stack.fake.requests) == 3
    assert not any("BROKEN-SCENARIO" in request.text for request in stack.fake.requests)

    page = (out / "report.html").read_text()
    for text in ("states-broken", "Why it did not pass", "the panel shows it", "Verdicts"):
        assert text in page
    junit = (out / "junit.xml").read_bytes()
    assert problems(junit) == []
    (suite,) = ET.fromstring(junit)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "0")
    assert "FAIL" in printed.out and "reports: " in printed.out

    assert leaked(out) == []
    assert not any(secret in printed.out + printed.err for secret in SECRETS)
    assert stack.fake.leaks(*SECRETS) == []

    # Nothing changed: the second run asks Claude nothing, and says the verdict is cached.
    again = stack.work / "again"
    assert main(["run", str(pinned), "--report-dir", str(again)]) == 0
    assert len(stack.fake.requests) == 3
    second = results(again)["gpus-pinned"]
    assert second["status"] == "pass"
    assert second["judge"]["cached"] is True
    assert "cached verdict" in (again / "report.html").read_text()


def test_no_api_key_is_said_before_any_browser_starts(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    marker = stack.work / "chromium-started"
    chromium = stack.work / "chromium"
    chromium.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    chromium.chmod(0o755)
    monkeypatch.setenv("CHROMIUM_PATH", str(chromium))
    scenario = write_scenario(stack.work / "scenarios", "gpus-pinned", PINNED_GPUS)
    mark = len(stack.standin.requests)

    code = main(["run", str(scenario), "--report-dir", str(stack.work / "out")])

    assert code == 2
    assert "error: ANTHROPIC_API_KEY is not set" in capsys.readouterr().err
    assert not marker.exists()
    assert stack.standin.requests_since(mark) == []
    assert not (stack.work / "out").exists()


def test_a_zero_budget_is_reported_per_scenario(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INFERWATCH_JUDGE_BUDGET_USD", "0")
    folder = stack.work / "scenarios"
    write_scenario(folder, "gpus-pinned", PINNED_GPUS)
    write_scenario(folder, "gpus-advisory", PINNED_GPUS + "severity: advisory\n")
    out = stack.work / "out"

    code = main(["run", str(folder), "--report-dir", str(out)])

    assert code == 1
    found = results(out)
    for name in ("gpus-pinned", "gpus-advisory"):
        assert found[name]["status"] == "error"
        assert found[name]["reasons"][0].startswith("judge budget exhausted: the run budget is 0")
    assert stack.fake.requests == []
    summary = json.loads((out / "results.json").read_text())
    assert summary["budget"] == {"limit_usd": 0.0, "spent_usd": 0.0, "calls": 0, "refused": 2}
    (suite,) = ET.fromstring((out / "junit.xml").read_bytes())
    assert (suite.get("errors"), suite.get("skipped")) == ("1", "1")  # the advisory one
    assert "judge budget exhausted" in capsys.readouterr().out
