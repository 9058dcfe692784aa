"""``pytest scenarios/`` end to end: the plugin's items against the stand-in and the fake judge,
under pytest-xdist (-n 2), writing the junit file."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from mcp_server.scenarios import schema_text
from tests.e2e.conftest import BROKEN_STATES, PINNED_GPUS, SECRETS, Stack, write_scenario
from tests.mcp_server.junit_schema import problems
from tests.mcp_server.pytest_run import pytest_command

pytestmark = pytest.mark.integration


def test_scenarios_as_pytest_items_with_xdist(stack: Stack) -> None:
    folder = stack.work / "scenarios"
    write_scenario(folder, "gpus-pinned", PINNED_GPUS)
    write_scenario(folder, "states-broken", BROKEN_STATES)
    write_scenario(folder, "states-advisory", BROKEN_STATES + "severity: advisory\n")
    (folder / "schema.json").write_text(schema_text())
    junit = stack.work / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | stack.env

    ran = subprocess.run(
        pytest_command(
            "--strict-markers",
            "-n",
            "2",
            "-m",
            "nightly",
            "scenarios",
            f"--junitxml={junit}",
            "-rA",
        ),
        cwd=stack.work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    output = ran.stdout + ran.stderr
    assert ran.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "1 failed, 1 passed, 1 xfailed" in ran.stdout
    assert "PASSED scenarios/gpus-pinned.yaml::gpus-pinned" in ran.stdout
    # A failing item shows its checks.
    assert "[fail] no_panel_errors: 'Broken query': bad_data" in ran.stdout
    assert "Claude was not asked: 2 check(s) failed" in ran.stdout
    document = junit.read_bytes()
    assert problems(document) == []
    cases = {str(case.get("name")): case for case in ET.fromstring(document).iter("testcase")}
    assert sorted(cases) == ["gpus-pinned", "states-advisory", "states-broken"]
    assert cases["states-broken"].find("failure") is not None
    assert cases["states-advisory"].find("skipped") is not None
    assert len(stack.fake.requests) == 1  # only the scenario whose checks passed
    assert not any(secret in output or secret.encode() in document for secret in SECRETS)
