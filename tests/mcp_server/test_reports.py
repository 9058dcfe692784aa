"""The run's reports: report.html (self-contained, escaped), junit.xml (pytest's xunit2 schema),
results.json (stable shape), screenshots confined to the report folder."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from mcp_server.grafana.browser import Capture
from mcp_server.grafana.models import DashboardCheck, PanelState
from mcp_server.judge import Verdict
from mcp_server.reports import (
    JUNIT_XML,
    REPORT_HTML,
    RESULTS_JSON,
    ReportError,
    write_reports,
)
from mcp_server.run_many import RunResult, totals_of
from mcp_server.runner import (
    CheckOutcome,
    Durations,
    JudgeUsage,
    ScenarioResult,
    Screenshot,
)
from tests.mcp_server.junit_schema import problems

HOSTILE = "<script>alert('x')</script> \x07 & \"quotes\""


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (24, 27, 31)).save(out, format="PNG")
    return out.getvalue()


def shot(label: str, width: int = 80, height: int = 40) -> Screenshot:
    check = DashboardCheck(
        uid="d", title="D", url="http://grafana/d/d", ready=True, waited_seconds=1.0, panels=[]
    )
    return Screenshot.of(
        Capture(
            png=png(width, height),
            check=check,
            width=width,
            height=height,
            panel=None if label == "dashboard" else label,
        )
    )


def result(
    name: str,
    status: str,
    *,
    severity: str = "blocking",
    judged: bool = False,
    cached: bool = False,
) -> ScenarioResult:
    made = ScenarioResult(
        name=name,
        file=f"scenarios/{name}.yaml",
        dashboard="inferwatch-gpus",
        dashboard_title="inferwatch / GPUs",
        severity=severity,
        tags=["nightly"],
        status=status,
        reasons=[] if status == "pass" else [f"{name} went wrong: {HOSTILE}"],
        checks=[
            CheckOutcome(
                kind="no_panel_errors",
                check="no_panel_errors",
                status="pass" if status != "fail" else "fail",
                detail=HOSTILE,
            )
        ],
        panels=[PanelState(id=1, title="GPU utilization", state="ok")],
        expectations=["Each GPU draws a line"],
        screenshots=[shot("dashboard", 160, 120), shot("GPU utilization")],
        durations=Durations(total_seconds=2.5),
    )
    if judged:
        made.verdicts = [
            Verdict(
                expectation="Each GPU draws a line",
                verdict="pass",
                confidence=0.9,
                reason=f"I saw {HOSTILE}",
            )
        ]
        made.judge = JudgeUsage(
            model="claude-sonnet-4-6",
            cached=cached,
            input_tokens=0 if cached else 1800,
            output_tokens=0 if cached else 120,
            image_tokens=0 if cached else 1500,
            cost_usd=0.0 if cached else 0.0072,
            price_known=True,
            attempts=0 if cached else 1,
        )
    return made


def run_of(*results: ScenarioResult) -> RunResult:
    started = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    return RunResult(
        started_at=started,
        finished_at=started,
        duration_seconds=12.3456,
        concurrency=2,
        model="claude-sonnet-4-6",
        totals=totals_of(results),
        scenarios=list(results),
    )


@pytest.fixture
def mixed_run() -> RunResult:
    return run_of(
        result("gpus-healthy", "pass", judged=True),
        result("gpus-cached", "pass", judged=True, cached=True),
        result("overview-broken", "fail"),
        result("vllm-unreachable", "error"),
        result("langfuse-advisory", "fail", severity="advisory"),
        result("models-interrupted", "skipped"),
    )


def test_three_reports_and_the_screenshots(mixed_run: RunResult, tmp_path: Path) -> None:
    files = write_reports(mixed_run, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        JUNIT_XML,
        REPORT_HTML,
        RESULTS_JSON,
        "screenshots",
    ]
    assert len(files.screenshots) == 12
    for path in files.screenshots:
        assert path.parent == (tmp_path / "out" / "screenshots").resolve()
        assert path.read_bytes().startswith(b"\x89PNG")


def test_results_json_has_a_stable_shape(mixed_run: RunResult, tmp_path: Path) -> None:
    write_reports(mixed_run, tmp_path)
    data = json.loads((tmp_path / RESULTS_JSON).read_text())
    assert data["schema_version"] == 1
    assert set(data) >= {
        "started_at",
        "finished_at",
        "duration_seconds",
        "concurrency",
        "model",
        "budget",
        "totals",
        "scenarios",
        "interrupted",
    }
    assert data["totals"] | {"cost_usd": 0} == {
        "scenarios": 6,
        "passed": 2,
        "failed": 2,
        "errors": 1,
        "skipped": 1,
        "blocking_failures": 2,
        "judge_calls": 1,
        "cached_verdicts": 1,
        "input_tokens": 1800,
        "output_tokens": 120,
        "image_tokens": 1500,
        "cost_usd": 0,
    }
    first = data["scenarios"][0]
    assert set(first) >= {
        "name",
        "file",
        "dashboard",
        "severity",
        "tags",
        "status",
        "reasons",
        "checks",
        "panels",
        "expectations",
        "verdicts",
        "judge",
        "screenshots",
        "durations",
        "started_at",
    }
    assert first["screenshots"][0] == {
        "label": "dashboard",
        "width": 160,
        "height": 120,
        "file": "screenshots/001-gpus-healthy-1.png",
    }
    assert data["scenarios"][1]["judge"]["cached"] is True
    for scenario in data["scenarios"]:
        for screenshot in scenario["screenshots"]:
            assert (tmp_path / screenshot["file"]).is_file()


def test_junit_follows_pytests_schema(mixed_run: RunResult, tmp_path: Path) -> None:
    write_reports(mixed_run, tmp_path)
    document = (tmp_path / JUNIT_XML).read_bytes()
    assert problems(document) == []
    suites = ET.fromstring(document)
    (suite,) = suites
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == ("6", "1", "1", "2")
    assert suite.get("time") == "12.346"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["gpus-healthy"].get("classname") == "scenarios.gpus-healthy"
    assert [child.tag for child in cases["gpus-healthy"]] == ["system-out"]
    failure = cases["overview-broken"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("overview-broken went wrong: <script>")
    assert "[fail] no_panel_errors" in (failure.text or "")
    error = cases["vllm-unreachable"].find("error")
    assert error is not None
    assert error.get("type") == "ScenarioError"
    advisory = cases["langfuse-advisory"].find("skipped")
    assert advisory is not None
    assert advisory.get("type") == "advisory"
    assert advisory.get("message", "").startswith("advisory fail: ")
    assert cases["models-interrupted"].find("skipped") is not None
    assert b"\x07" not in document  # not representable in XML 1.0


def test_html_is_escaped_and_self_contained(mixed_run: RunResult, tmp_path: Path) -> None:
    write_reports(mixed_run, tmp_path)
    page = (tmp_path / REPORT_HTML).read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page
    sources = re.findall(r"""src=['"]([^'"]*)""", page)
    assert len(sources) == 12
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    links = re.findall(r"""href=['"]([^'"]*)""", page)
    assert links
    assert all(link.startswith(("#s", "screenshots/")) for link in links)
    for text in (
        "gpus-healthy",
        "cached",
        "Why it did not pass",
        "Each GPU draws a line",
        "1,800 input tokens",
        "$0.0072",
        "advisory",
        "2.5 s",
    ):
        assert text in page


def test_a_planted_link_is_replaced_not_followed(mixed_run: RunResult, tmp_path: Path) -> None:
    outside = tmp_path / "outside.html"
    outside.write_text("keep me")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / REPORT_HTML).symlink_to(outside)
    write_reports(mixed_run, folder)
    assert outside.read_text() == "keep me"
    assert not (folder / REPORT_HTML).is_symlink()


def test_a_linked_screenshots_folder_is_refused(mixed_run: RunResult, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "screenshots").symlink_to(elsewhere)
    with pytest.raises(ReportError, match="symbolic link"):
        write_reports(mixed_run, folder)
    assert list(elsewhere.iterdir()) == []


def test_screenshots_of_an_earlier_run_are_removed(mixed_run: RunResult, tmp_path: Path) -> None:
    write_reports(mixed_run, tmp_path)
    smaller = run_of(result("only-one", "pass"))
    write_reports(smaller, tmp_path)
    assert sorted(p.name for p in (tmp_path / "screenshots").iterdir()) == [
        "001-only-one-1.png",
        "001-only-one-2.png",
    ]


def test_exit_code_counts_blocking_scenarios_only() -> None:
    assert run_of(result("a", "pass"), result("b", "fail", severity="advisory")).exit_code == 0
    assert run_of(result("a", "pass"), result("b", "error", severity="advisory")).exit_code == 0
    assert run_of(result("a", "error")).exit_code == 1
    assert run_of(result("a", "fail")).exit_code == 1
