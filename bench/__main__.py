"""``make bench``: every benchmark, printed and written to bench/RESULTS.md with machine and date.

Figures are ratios measured in the same run: this machine is shared and noisy.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import analytics, collect, docker_host, scrape


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


def main() -> int:
    sections = []
    for benchmark in (scrape.run, collect.run, docker_host.run_benchmark, analytics.run):
        section = benchmark()
        print(section + "\n", flush=True)
        sections.append(section)
    header = (
        "# Benchmark results\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_machine()}.\n"
        "Every figure is a ratio measured in the same run (the machine is shared and noisy).\n"
    )
    (Path(__file__).parent / "RESULTS.md").write_text(header + "\n" + "\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
