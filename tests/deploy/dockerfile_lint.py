"""A small Dockerfile reader and the rules this project's image must follow.

The image cannot be built here (no registry for the base image), so these rules stand in for
the build: what a reviewer would check by eye, checked on every run instead.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

PINNED_PYTHON = re.compile(r"^python:3\.1[12](\.\d+)?-slim(-[a-z]+)?$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(line.removesuffix("\\").strip())
        if line.endswith("\\"):
            continue
        keyword, _, arguments = " ".join(pending).partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    return found


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages, with ARGs substituted in FROM lines."""
    args: dict[str, str] = {}
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "ARG" and not result:
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
        elif instruction.keyword == "FROM":
            resolved = re.sub(
                r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), instruction.arguments
            )
            words = [w for w in resolved.split() if not w.startswith("--")]  # e.g. --platform
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], alias, [instruction]))
        elif result:
            result[-1].instructions.append(instruction)
    return args, result


def _copy_sources(instruction: Instruction) -> list[str]:
    words = [w for w in shlex.split(instruction.arguments) if not w.startswith("--")]
    return words[:-1]


def problems(text: str, dockerignore: str, repo: Path = REPO) -> list[str]:
    found: list[str] = []
    _, all_stages = stages(text)
    if not all_stages:
        return ["no FROM"]
    aliases = {s.alias for s in all_stages if s.alias}
    for stage in all_stages:
        if stage.base in aliases:
            continue
        if not PINNED_PYTHON.match(stage.base):
            found.append(f"base image {stage.base} is not a pinned python:3.11/3.12 slim tag")
        for instruction in stage.instructions:
            if instruction.keyword == "ADD" and "://" in instruction.arguments:
                found.append(f"line {instruction.line}: ADD of a URL; download in a RUN step")
    final = all_stages[-1]

    users = final.all("USER")
    if not users:
        found.append("the final stage runs as root (no USER)")
    elif users[-1].arguments.split(":")[0] in ("root", "0"):
        found.append("the final stage's USER is root")

    health = final.all("HEALTHCHECK")
    if not health:
        found.append("no HEALTHCHECK in the final stage")
    elif "python" not in health[-1].arguments or "/healthz" not in health[-1].arguments:
        found.append("HEALTHCHECK must ask the agent's /healthz with python")
    elif re.search(r"\b(curl|wget)\b", health[-1].arguments):
        found.append("HEALTHCHECK uses curl/wget, which the slim image lacks")

    found += _cache_order_problems(all_stages)

    runs = " ".join(i.arguments for i in final.all("RUN"))
    if not re.search(r"apt-get install[^&]*\bchromium\b", runs):
        found.append("Chromium (Debian's chromium package) is not installed in the final stage")
    envs = " ".join(i.arguments for i in final.all("ENV"))
    if "CHROMIUM_PATH=/usr/bin/chromium" not in envs:
        found.append("CHROMIUM_PATH=/usr/bin/chromium is not set")

    found += _context_problems(all_stages, dockerignore, repo)
    return found


def _cache_order_problems(all_stages: list[Stage]) -> list[str]:
    """pyproject.toml is copied, then dependencies installed, then the code copied."""
    for stage in all_stages:
        steps = stage.instructions
        copies = [(n, _copy_sources(i)) for n, i in enumerate(steps) if i.keyword == "COPY"]
        pyproject = [n for n, sources in copies if "pyproject.toml" in sources]
        code = [
            n
            for n, sources in copies
            if any(s.rstrip("/") in ("agent", "mcp_server", ".") for s in sources)
        ]
        if not code:
            continue
        if not pyproject or pyproject[0] > min(code):
            return ["the code is copied before pyproject.toml: code changes reinstall dependencies"]
        between = steps[pyproject[0] + 1 : min(code)]
        if not any(i.keyword == "RUN" and "pip install" in i.arguments for i in between):
            return ["no dependency install between COPY pyproject.toml and COPY of the code"]
        return []
    return ["no stage copies the code (agent/, mcp_server/)"]


def _ignore_patterns(dockerignore: str) -> list[str]:
    return [
        line.strip()
        for line in dockerignore.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _context_problems(all_stages: list[Stage], dockerignore: str, repo: Path) -> list[str]:
    """.dockerignore is an allowlist that lets in exactly what the COPY lines need."""
    found: list[str] = []
    patterns = _ignore_patterns(dockerignore)
    if not patterns or patterns[0] != "*":
        found.append(
            ".dockerignore must start with `*` (allowlist), so .env, venvs and tests stay out"
        )
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    for name in (".env", ".venv", "tests", ".git"):
        if name in allowed:
            found.append(f".dockerignore lets {name} into the build context")
    for stage in all_stages:
        for instruction in stage.all("COPY"):
            if "--from=" in instruction.arguments:
                continue
            for source in _copy_sources(instruction):
                source = source.rstrip("/")
                if source not in allowed:
                    found.append(f"COPY {source}: not allowed by .dockerignore")
                if not (repo / source).exists():
                    found.append(f"COPY {source}: no such file in the repository")
    return found
