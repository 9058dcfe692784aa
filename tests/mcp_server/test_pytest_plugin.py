"""The pytest plugin in a pytest of its own (a subprocess): what it collects and what it leaves
alone, markers from tags under --strict-markers, -k by name, and how outcomes are reported
(ERROR, xfail for advisory scenarios, the junit file) when the stack is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mcp_server.scenarios import schema_text
from tests.mcp_server.junit_schema import problems
from tests.mcp_server.pytest_run import pytest_command
from tests.stack import REPO, free_port

CHECKS_ONLY = """\
name: {name}
dashboard: inferwatch-gpus
tags: [{tags}]
severity: {severity}
checks:
  - promql: count(up)
    expect: ">= 1"
"""
JUDGED = """\
name: judged
dashboard: inferwatch-gpus
tags: [nightly]
expect:
  - Every GPU draws a line
"""


def scenario_folder(root: Path) -> Path:
    folder = root / "scenarios"
    folder.mkdir()
    (folder / "schema.json").write_text(schema_text())
    (folder / "gpus.yaml").write_text(
        CHECKS_ONLY.format(name="gpus-up", tags="nightly, smoke", severity="blocking")
    )
    (folder / "langfuse.yaml").write_text(
        CHECKS_ONLY.format(name="langfuse-up", tags="nightly", severity="advisory")
    )
    return folder


def pytest_run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "GRAFANA_", "PROMETHEUS_", "INFERWATCH_", "PYTEST_"))
    }
    nothing = f"http://127.0.0.1:{free_port()}"
    base |= {
        "PROMETHEUS_URL": nothing,
        "GRAFANA_URL": nothing,
        "INFERWATCH_HTTP_TIMEOUT_SECONDS": "2",
        "INFERWATCH_JUDGE_CACHE_DIR": str(cwd / "verdicts"),
        **(env or {}),
    }
    return subprocess.run(
        pytest_command("--strict-markers", *args),
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scenario_folders_are_collected_with_markers_and_names(tmp_path: Path) -> None:
    scenario_folder(tmp_path)
    other = tmp_path / "config"
    other.mkdir()
    (other / "compose.yaml").write_text("services: {}\n")  # a YAML file that is no scenario
    (tmp_path / "scenarios" / "broken.yaml").write_text("name: broken\nbogus: 1\n")

    listed = pytest_run(tmp_path, "--collect-only", "-q", ".")
    assert "scenarios/gpus.yaml::gpus-up" in listed.stdout
    assert "scenarios/langfuse.yaml::langfuse-up" in listed.stdout
    assert "compose.yaml" not in listed.stdout
    assert "ERROR collecting scenarios/broken.yaml" in listed.stdout
    assert "scenarios/broken.yaml:2:1: unknown key 'bogus'" in listed.stdout

    marked = pytest_run(
        tmp_path,
        "--collect-only",
        "-q",
        "-m",
        "smoke",
        "scenarios/gpus.yaml",
        "scenarios/langfuse.yaml",
    )
    assert marked.returncode == 0, marked.stdout + marked.stderr
    assert "scenarios/gpus.yaml::gpus-up" in marked.stdout
    assert "langfuse-up" not in marked.stdout
    # A YAML file named on the command line is collected wherever it is.
    (tmp_path / "one.yaml").write_text(
        CHECKS_ONLY.format(name="one", tags="x", severity="blocking")
    )
    named = pytest_run(
        tmp_path,
        "--collect-only",
        "-q",
        "-k",
        "langfuse or one",
        "scenarios/gpus.yaml",
        "scenarios/langfuse.yaml",
        "one.yaml",
    )
    assert "scenarios/langfuse.yaml::langfuse-up" in named.stdout
    assert "one.yaml::one" in named.stdout
    assert "gpus-up" not in named.stdout


def test_the_repository_tests_collect_no_yaml() -> None:
    """tests/fixtures holds scenario YAML (no schema.json beside it): never items of make test."""
    listed = pytest_run(REPO, "--collect-only", "-q", "tests/fixtures")
    assert ".yaml" not in listed.stdout
    assert listed.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, listed.stdout


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, mcp_server.pytest_plugin; "
        "print(sorted(m for m in ('playwright', 'anthropic', 'mcp_server.runner', "
        "'mcp_server.scenario_loader', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_outcomes_when_the_stack_is_unreachable_and_no_api_key(tmp_path: Path) -> None:
    folder = scenario_folder(tmp_path)
    (folder / "judged.yaml").write_text(JUDGED)
    marker = tmp_path / "chromium-started"
    fake_chromium = tmp_path / "chromium"
    fake_chromium.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake_chromium.chmod(0o755)
    junit = tmp_path / "junit.xml"
    ran = pytest_run(
        tmp_path,
        "scenarios",
        f"--junitxml={junit}",
        "-rA",
        env={"CHROMIUM_PATH": str(fake_chromium)},
    )

    assert ran.returncode == pytest.ExitCode.TESTS_FAILED, ran.stdout + ran.stderr
    assert "1 xfailed, 2 errors" in ran.stdout
    assert "ERROR at setup of scenario gpus-up (inferwatch-gpus)" in ran.stdout
    assert "Prometheus" in ran.stdout and "cannot be reached" in ran.stdout
    assert (
        "XFAIL at setup of scenarios/langfuse.yaml::langfuse-up - advisory scenario error"
        in ran.stdout
    )
    # No key: said first, before any browser is started.
    assert "ANTHROPIC_API_KEY is not set" in ran.stdout
    assert not marker.exists()
    document = junit.read_bytes()
    assert problems(document) == []
    cases = {case.get("name"): case for case in ET.fromstring(document).iter("testcase")}
    assert cases["gpus-up"].find("error") is not None
    assert cases["judged"].find("error") is not None
    assert cases["langfuse-up"].find("skipped") is not None
