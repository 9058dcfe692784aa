"""The Dockerfile and .dockerignore, linted (the image itself cannot be built here: the
python base image needs a registry this machine cannot reach)."""

from __future__ import annotations

import json
import tomllib

import pytest

from tests.deploy import dockerfile_lint as lint

DOCKERFILE = lint.DOCKERFILE.read_text()
DOCKERIGNORE = lint.DOCKERIGNORE.read_text()


def test_dockerfile_follows_the_rules() -> None:
    assert lint.problems(DOCKERFILE, DOCKERIGNORE) == []


def test_build_context_holds_what_the_package_build_needs() -> None:
    project = tomllib.loads((lint.REPO / "pyproject.toml").read_text())
    allowed = {p.removeprefix("!").rstrip("/") for p in DOCKERIGNORE.split() if p.startswith("!")}
    assert project["project"]["readme"] in allowed
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in allowed, f"package {pattern} is left out of the context"


def test_default_command_is_the_agent() -> None:
    _, stages = lint.stages(DOCKERFILE)
    command = json.loads(stages[-1].all("CMD")[-1].arguments)
    scripts = tomllib.loads((lint.REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command == ["inferwatch-agent"]
    assert command[0] in scripts


def test_reader_joins_continuations_and_skips_comments() -> None:
    text = "# c\nARG X=python:3.11.14-slim\nFROM ${X} AS a\nRUN one \\\n  # inner\n  two\n"
    args, stages = lint.stages(text)
    assert args == {"X": "python:3.11.14-slim"}
    assert (stages[0].base, stages[0].alias) == ("python:3.11.14-slim", "a")
    assert stages[0].all("RUN")[0].arguments == "one two"


BROKEN = {
    "latest base": (("python:3.11.14-slim-bookworm", "python:latest"), "not a pinned"),
    "bare base": (("python:3.11.14-slim-bookworm", "python"), "not a pinned"),
    "root user": (("USER inferwatch:inferwatch", "USER root"), "USER is root"),
    "no user": (("USER inferwatch:inferwatch", ""), "runs as root"),
    "no healthcheck": (("HEALTHCHECK ", "# HEALTHCHECK "), "no HEALTHCHECK"),
    "curl healthcheck": (
        ('CMD ["python", "-c", "import urllib.request;', 'CMD ["curl", "-c", "python /healthz'),
        "curl",
    ),
    "code first": (
        ("COPY pyproject.toml ./", "COPY agent ./agent\nCOPY pyproject.toml ./"),
        "before pyproject",
    ),
    "no chromium": (("chromium fonts", "fonts"), "Chromium"),
    "no chromium path": (("CHROMIUM_PATH=/usr/bin/chromium", "CHROME=1"), "CHROMIUM_PATH"),
    "url add": (("COPY README.md ./", "ADD https://example.invalid/x ./"), "ADD of a URL"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_reports_a_broken_dockerfile(case: str) -> None:
    (old, new), expected = BROKEN[case]
    assert old in DOCKERFILE, f"the {case!r} case no longer matches the Dockerfile"
    findings = lint.problems(DOCKERFILE.replace(old, new), DOCKERIGNORE)
    assert any(expected in f for f in findings), findings


@pytest.mark.parametrize(
    ("ignore", "expected"),
    [
        (DOCKERIGNORE.replace("*\n", "", 1), "allowlist"),
        (DOCKERIGNORE + "!.env\n", "lets .env"),
        (DOCKERIGNORE.replace("!mcp_server/\n", ""), "COPY mcp_server"),
    ],
)
def test_dockerignore_rules_report_a_broken_context(ignore: str, expected: str) -> None:
    findings = lint.problems(DOCKERFILE, ignore)
    assert any(expected in f for f in findings), findings
