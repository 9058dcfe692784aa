"""``make bench``: every benchmark, printed and written to bench/RESULTS.md with machine and date.

``python -m bench NAME ...`` runs some of them and replaces only their sections of RESULTS.md.
A benchmark whose part is missing here (Chromium, Prometheus, dockerd, a module) is skipped with
the reason; one that fails is recorded as failed and the command exits 1 after the others ran.
Figures are ratios measured in the same run: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

RESULTS = Path(__file__).parent / "RESULTS.md"
MARKER = "<!-- bench:"


@dataclass(frozen=True)
class Benchmark:
    name: str  # also its module, bench/<name>.py
    entry: str = "run"
    needs: tuple[str, ...] = ()  # "chromium", "prometheus"


BENCHMARKS = (
    Benchmark("scrape"),
    Benchmark("collect"),
    Benchmark("docker_host", "run_benchmark"),  # skips itself where dockerd cannot run
    Benchmark("analytics"),
    Benchmark("screenshot", needs=("chromium", "prometheus")),
    Benchmark("judge"),
    Benchmark("scenarios", needs=("chromium", "prometheus")),
    Benchmark("overhead"),
    Benchmark("scaling"),
)


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    python = platform.python_version()
    return f"{platform.node()}: {os.cpu_count()} x {cpu}, Python {python}, {platform.platform()}"


def _missing(part: str) -> str | None:
    """Why ``part`` cannot run here, or None."""
    if part == "prometheus":
        return None if shutil.which("prometheus") else "prometheus is not on PATH"
    from mcp_server.settings import GrafanaSettings

    path = GrafanaSettings().chromium_path  # "" means Playwright's own Chromium, installed
    if path and not os.access(path, os.X_OK):
        return f"Chromium is not at {path} (set CHROMIUM_PATH or `playwright install chromium`)"
    return None


def _run_one(benchmark: Benchmark) -> tuple[str, bool]:
    """(section, failed)."""
    reasons = [reason for part in benchmark.needs if (reason := _missing(part))]
    if reasons:
        return f"### {benchmark.name}\n\nSkipped: {'; '.join(reasons)}.", False
    try:
        module = importlib.import_module(f"bench.{benchmark.name}")
    except ModuleNotFoundError as exc:
        return f"### {benchmark.name}\n\nSkipped: module {exc.name} is not there.", False
    try:
        entry = cast("Callable[[], str]", getattr(module, benchmark.entry))
        return entry(), False
    except Exception as exc:
        traceback.print_exc()
        return f"### {benchmark.name}\n\nFailed: {type(exc).__name__}: {exc}", True


def _sections(text: str) -> dict[str, str]:
    """The sections of a RESULTS.md by benchmark name."""
    found = {}
    for chunk in text.split(MARKER)[1:]:
        name, _, body = chunk.partition(" -->\n")
        found[name] = body.strip()
    return found


def _write(sections: dict[str, str]) -> None:
    parts = [
        "# Benchmark results\n\n"
        "Written by `make bench` (`python -m bench NAME ...` rewrites only the sections it runs;"
        " each says when and where it ran). Every figure is a ratio measured in the same run:"
        " the machines are shared and noisy.\n"
    ]
    for benchmark in BENCHMARKS:
        if benchmark.name in sections:
            parts.append(f"{MARKER}{benchmark.name} -->\n{sections[benchmark.name]}\n")
    RESULTS.write_text("\n".join(parts))


def main(argv: Sequence[str] | None = None) -> int:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(names)}")
    chosen = parser.parse_args(argv).names or names
    if unknown := sorted(set(chosen) - set(names)):
        parser.error(f"no benchmark named {', '.join(unknown)}")
    previous = _sections(RESULTS.read_text()) if RESULTS.exists() else {}
    sections, failed = dict(previous), []
    machine = _machine()
    for benchmark in (b for b in BENCHMARKS if b.name in chosen):
        print(f"-- {benchmark.name}", flush=True)
        started = time.monotonic()
        section, broke = _run_one(benchmark)
        took = time.monotonic() - started
        stamp = (
            f"_{benchmark.name}: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {took:.0f} s, {machine}._"
        )
        sections[benchmark.name] = f"{section}\n\n{stamp}"
        print(f"{section}\n\n{stamp}\n", flush=True)
        if broke:
            failed.append(benchmark.name)
        _write(sections)  # as it goes: a later failure keeps what was measured
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
