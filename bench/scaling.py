"""How the agent grows with the number of vLLM instances (1, 8, 64, 256, simulated): the scrape
latency of /metrics (plain text, and OpenMetrics + gzip as Prometheus asks), the page's size and
samples, and one collection cycle of the vLLM source (wall and CPU seconds).

The agent polls once and then rests while it is scraped (interval 1 h), so scrapes measure
serving alone; the cycle is measured in this process against the same simulator after the agent
has stopped. The largest size gets fewer cycles to keep the whole run under a minute or so.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from agent.settings import VLLMSettings
from agent.sources.vllm import VLLMSource
from bench.common import (
    agent_collector_settings,
    free_port,
    process,
    sample_count,
    simulator,
    table,
    wait_for,
    wait_for_sources,
)
from bench.scrape import PROMETHEUS_HEADERS

SIZES = (1, 8, 64, 256)
SCRAPES = 20
CYCLES, LARGE_CYCLES = 5, 3  # fewer from 256 instances on: a cycle takes seconds


@dataclass
class Size:
    instances: int
    samples: int
    plain_bytes: int
    gzip_bytes: int
    plain: list[float]  # scrape seconds
    gzip: list[float]
    cycle_wall: list[float]
    cycle_cpu: list[float]

    def medians(self) -> dict[str, float]:
        """Median seconds of what grows, by name."""
        return {
            "scrape": statistics.median(self.plain),
            "gzip scrape": statistics.median(self.gzip),
            "cycle wall": statistics.median(self.cycle_wall),
            "cycle CPU": statistics.median(self.cycle_cpu),
        }


def _scrapes(url: str, rounds: int) -> tuple[bytes, bytes, list[float], list[float]]:
    """(plain page, gzip body, plain latencies, gzip latencies), interleaved round by round."""
    plain: list[float] = []
    gzipped: list[float] = []
    with httpx.Client(timeout=60) as client:
        page = client.get(url).content
        with client.stream("GET", url, headers=PROMETHEUS_HEADERS) as response:
            compressed = b"".join(response.iter_raw())
        for _ in range(rounds):
            for headers, samples in (({}, plain), (PROMETHEUS_HEADERS, gzipped)):
                started = time.perf_counter()
                client.get(url, headers=headers).read()  # httpx decompresses: Prometheus does too
                samples.append(time.perf_counter() - started)
    return page, compressed, plain, gzipped


async def _cycles(urls: Sequence[str], repeat: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds of this process) per collection of every instance."""
    source = VLLMSource(
        VLLMSettings(VLLM_URLS=",".join(urls)),
        interval_seconds=30,
        timeout_seconds=60,
        max_response_bytes=256 * 1024 * 1024,
    )
    walls, cpus = [], []
    try:
        await source.collect()  # warm up: connections, the cached /version and model lists
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            collection = await source.collect()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            assert collection.error is None, collection.error
    finally:
        await source.aclose()
    return walls, cpus


def measure(instances: int, work: Path) -> Size:
    with simulator(instances, 0.0) as (_, urls):
        port = free_port()
        env = {
            "INFERWATCH_LISTEN": f"127.0.0.1:{port}",
            "INFERWATCH_SOURCES": "vllm",
            "VLLM_URLS": ",".join(urls),
            "INFERWATCH_POLL_INTERVAL_SECONDS": "3600",
            "INFERWATCH_JITTER_SECONDS": "0",
            "INFERWATCH_HTTP_TIMEOUT_SECONDS": "60",
            "INFERWATCH_JOB_TIMEOUT_SECONDS": "120",
            "INFERWATCH_MAX_RESPONSE_BYTES": str(256 * 1024 * 1024),
        }
        log = work / f"agent-{instances}.log"
        with process([sys.executable, "-m", "agent"], env, log=log):
            url = f"http://127.0.0.1:{port}"
            wait_for(url + "/readyz", timeout=180)
            wait_for_sources(url, ["vllm"])
            page, compressed, plain, gzipped = _scrapes(url + "/metrics", SCRAPES)
        with agent_collector_settings():
            walls, cpus = asyncio.run(_cycles(urls, LARGE_CYCLES if instances >= 256 else CYCLES))
    return Size(
        instances, sample_count(page), len(page), len(compressed), plain, gzipped, walls, cpus
    )


def run(sizes: Sequence[int] = SIZES) -> str:
    with tempfile.TemporaryDirectory() as folder:
        results = [measure(instances, Path(folder)) for instances in sizes]
    rows = []
    for size in results:
        m = size.medians()
        rows.append(
            (
                size.instances,
                f"{size.samples:,}",
                f"{size.plain_bytes / 1024:,.0f} / {size.gzip_bytes / 1024:,.0f}",
                f"{m['scrape'] * 1000:.1f}",
                f"{m['gzip scrape'] * 1000:.1f}",
                f"{m['cycle wall']:.3f}",
                f"{m['cycle CPU']:.3f}",
                f"{m['cycle CPU'] / size.instances * 1000:.1f}",
                f"{len(size.plain)} / {len(size.cycle_wall)}",
            )
        )
    growth = []
    for small, large in itertools.pairwise(results):
        ratio = large.instances / small.instances
        pairs = zip(small.medians().values(), large.medians().values(), strict=True)
        growth.append(
            (
                f"{small.instances} -> {large.instances} ({ratio:.0f}x)",
                *(f"{b / a:.1f}x (k={math.log(b / a) / math.log(ratio):.2f})" for a, b in pairs),
            )
        )
    headers = (
        "instances",
        "samples",
        "page KiB plain / gzip",
        "scrape ms",
        "gzip scrape ms",
        "cycle wall s",
        "cycle CPU s",
        "CPU ms per instance",
        "scrapes / cycles",
    )
    return "\n".join(
        [
            f"### Scaling: {', '.join(map(str, sizes))} simulated vLLM instances (medians)",
            "",
            table(headers, rows),
            "",
            table(("growth", *results[0].medians()), growth),
            "",
            "k is the exponent in cost ~ instances^k between neighbouring sizes (1 = linear);"
            " small sizes are dominated by fixed costs, so the largest step is the one that tells.",
            f"{_verdict(results)} The agent rested while scraped; the cycle ran in the benchmark's"
            " process (with the agent's garbage-collector setting), the simulator (rendering every"
            " instance's page) in its own, on the same cores. From 256 instances on:"
            f" {LARGE_CYCLES} cycles only, to bound the time.",
        ]
    )


def _verdict(results: Sequence[Size]) -> str:
    """Per-instance cost at the largest size against the one before: within 0.8-1.25x (this
    machine's noise) is linear."""
    if len(results) < 2:
        return "One size only: no growth to judge."
    small, large = results[-2], results[-1]
    parts = []
    for name, before in small.medians().items():
        if name == "gzip scrape":
            continue
        change = (large.medians()[name] / large.instances) / (before / small.instances)
        word = "sub-linear" if change < 0.8 else "linear" if change <= 1.25 else "super-linear"
        parts.append(f"{name} {word} ({change:.2f}x per instance)")
    return f"From {small.instances} to {large.instances} instances: {', '.join(parts)}."


if __name__ == "__main__":
    print(run([int(arg) for arg in sys.argv[1:]] or SIZES))
