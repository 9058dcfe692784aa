"""``inferwatch-scenarios``: output and exit codes (0 clean, 1 problems, 2 usage)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.scenario_loader import load_file
from mcp_server.scenarios_cli import main
from tests.fakes.grafana_api import FakeGrafanaAPI, load_dashboards
from tests.fakes.http import serve
from tests.mcp_server.support import unreachable_url
from tests.stack import REPO

SCENARIOS = REPO / "scenarios"
FIXTURE_DASHBOARD = REPO / "tests" / "fixtures" / "scenarios" / "dashboards" / "gpus.json"
SHIPPED = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
BAD = "name: Bad\ndashboard: d\ncolour: red\nexpect: []\n"


@pytest.fixture(autouse=True)
def nothing_reachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Grafana and Prometheus unreachable unless a test says otherwise; no .env read."""
    monkeypatch.setenv("GRAFANA_URL", unreachable_url())
    monkeypatch.setenv("PROMETHEUS_URL", unreachable_url())
    for name in ("GRAFANA_SERVICE_ACCOUNT_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_validate_clean_files_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--offline", str(SCENARIOS)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "scenario file(s) OK" in err and "note: offline:" in err


def test_validate_prints_each_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    assert main(["validate", "--offline", str(bad), str(SCENARIOS / "gpus.yaml")]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{bad}:1:7", f"{bad}:3:1", f"{bad}:4:9"]
    assert "3 problem(s) in 2 file(s)" in err


def test_validate_notes_what_an_unreachable_stack_left_unchecked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(SCENARIOS / "gpus.yaml")]) == 0
    err = capsys.readouterr().err
    assert "note: PromQL checked for structure only: Prometheus at " in err
    assert "note: dashboard uids and panel titles not checked: Grafana at " in err
    assert main(["validate", "--require-grafana", str(SCENARIOS / "gpus.yaml")]) == 1


async def test_validate_asks_grafana_for_uids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = write(tmp_path, "w.yaml", "name: w\ndashboard: nope\nexpect: [a]\n")
    fake = FakeGrafanaAPI(dashboards=load_dashboards([FIXTURE_DASHBOARD]))
    async with serve(fake.app()) as url:
        monkeypatch.setenv("GRAFANA_URL", url)
        code = await asyncio.to_thread(main, ["validate", str(wrong)])
    assert code == 1
    assert capsys.readouterr().out == (
        f"{wrong}:2:12: dashboard: Grafana at {url} has no dashboard with uid 'nope'; "
        "dashboards: inferwatch-gpus\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["validate", "no/such/folder"],
        ["validate", "--offline", "--require-grafana"],
        ["bogus"],
        ["list", "--nope"],
        ["new"],
        ["new", "--from-file", "no/such.json"],
        ["new", "--from-file", str(FIXTURE_DASHBOARD), "--dashboard", "other"],
        ["new", "--from-file", str(FIXTURE_DASHBOARD), "--name", "Not A Slug"],
        ["--config", "no/such.env", "validate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_the_default_folder_is_the_scenarios_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--offline"]) == 2  # ./scenarios does not exist here
    (tmp_path / "mine").mkdir()
    write(tmp_path / "mine", "a.yaml", BAD)
    monkeypatch.setenv("INFERWATCH_SCENARIOS_DIR", str(tmp_path / "mine"))
    assert main(["validate", "--offline"]) == 1


def test_list_shows_name_dashboard_severity_tags_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(SCENARIOS), "--tag", "smoke"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "DASHBOARD", "SEVERITY", "TAGS", "FILE"]
    assert sorted(row.split()[0] for row in rows) == ["gpus-healthy", "overview-healthy"]
    assert main(["list", str(SCENARIOS / "langfuse.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "name": "langfuse-usage-reported",
        "dashboard": "inferwatch-langfuse",
        "severity": "advisory",
        "tags": ["nightly"],
        "file": str(SCENARIOS / "langfuse.yaml"),
    }


def test_list_reports_broken_files_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "bad.yaml", BAD)
    write(tmp_path, "good.yaml", "name: good\ndashboard: d\nexpect: [a]\n")
    assert main(["list", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "good" in out and "bad.yaml:1:7:" in err


def test_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (SCENARIOS / "schema.json").read_text()


@pytest.mark.parametrize("dashboard", SHIPPED, ids=lambda path: path.stem)
def test_new_from_each_shipped_dashboard_writes_a_valid_draft(
    dashboard: Path, tmp_path: Path
) -> None:
    output = tmp_path / "drafts" / f"{dashboard.stem}.yaml"
    assert main(["new", "--from-file", str(dashboard), "--output", str(output)]) == 0
    loaded = load_file(output)
    assert loaded.ok, loaded.problems
    assert loaded.scenario is not None
    assert loaded.scenario.dashboard == json.loads(dashboard.read_text())["uid"]
    assert main(["new", "--from-file", str(dashboard), "--output", str(output)]) == 2
    assert main(["new", "--from-file", str(dashboard), "-o", str(output), "--force"]) == 0


async def test_new_drafts_from_the_live_dashboard(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeGrafanaAPI(dashboards=load_dashboards([FIXTURE_DASHBOARD]))
    async with serve(fake.app()) as url:
        monkeypatch.setenv("GRAFANA_URL", url)
        ok = await asyncio.to_thread(
            main, ["new", "--dashboard", "inferwatch-gpus", "--panels", "GPUs", "Xid errors"]
        )
        out = capsys.readouterr().out
        missing = await asyncio.to_thread(main, ["new", "--dashboard", "nope"])
        no_panel = await asyncio.to_thread(
            main, ["new", "--dashboard", "inferwatch-gpus", "--panels", "Nope"]
        )
    assert ok == 0 and "panels: [GPUs, Xid errors]\n" in out
    assert (missing, no_panel) == (1, 1)
    err = capsys.readouterr().err
    assert "no dashboard with uid 'nope'" in err and "has no panel 'Nope'" in err


def test_new_says_when_grafana_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "--dashboard", "inferwatch-gpus"]) == 1
    assert "cannot be reached" in capsys.readouterr().err


def test_the_module_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server.scenarios_cli", "validate", "--offline", str(SCENARIOS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
