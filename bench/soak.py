"""``make soak``: the demo stack under random faults while a real Prometheus scrapes the agent.

The agent runs in this process (as ``--demo`` does, but with the simulated upstreams reachable,
so faults can be switched: tests/agent/faults/stack.py), polling every 2 s on its scheduler.
One random fault at a time (an upstream and a kind, without repeats until all 42 were drawn)
lasts a while, then the upstream heals for a quiet spell. Prometheus scrapes every 5 s.

Reported, and written to bench/SOAK.md: scrapes failed (goal 0, from Prometheus' ``up``),
the worst ``scrape_duration_seconds``, RSS at start and end, and per fault whether its source
was marked, when it recovered, and the log lines the agent wrote. Exit status 1 when a scrape
failed. ``python -m bench.soak --minutes 10`` (the default) or ``--seconds 60`` (CI).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

from agent.app import Agent
from bench.__main__ import _machine
from bench.common import free_port, rss_mib
from bench.soak_record import Episode, Recorder, ScrapeFigures, SoakResult
from tests.agent.faults.stack import KINDS, UPSTREAMS, Upstreams, upstreams
from tests.stack import start_prometheus, stop

REPORT = Path(__file__).parent / "SOAK.md"
JOB = "inferwatch-agent"
POLL_INTERVAL_SECONDS = 2.0
SLOW_DOWN_SECONDS = 5.0  # a "slow" upstream answers after this: beyond every timeout below

log = logging.getLogger("bench.soak")


def schedule(seconds: float, seed: int) -> tuple[list[tuple[str, str]], float, float]:
    """The faults to inject, each lasting ``fault`` s followed by ``quiet`` s of health."""
    fault, quiet = (6.0, 4.0) if seconds < 180 else (15.0, 10.0)
    pairs = list(itertools.product(UPSTREAMS, KINDS))
    random.Random(seed).shuffle(pairs)
    count = max(1, int(seconds // (fault + quiet)))
    return [pairs[i % len(pairs)] for i in range(count)], fault, quiet


def soak_agent(stack: Upstreams) -> Agent:
    settings = stack.settings(
        poll_interval_seconds=POLL_INTERVAL_SECONDS,
        http_timeout_seconds=1.0,
        hf_cache_ttl_seconds=0,  # the Hub is asked on every (10 s) poll: well within its quota
        max_response_bytes=8 * 1024 * 1024,
    )
    settings.langfuse = settings.langfuse.model_copy(update={"poll_interval_seconds": 10.0})
    settings.huggingface = settings.huggingface.model_copy(update={"poll_interval_seconds": 10.0})
    return Agent(settings, nvml_binding=lambda: stack.nvml, container_for_pid=stack.owners.get)


async def _run_faults(
    stack: Upstreams,
    agent: Agent,
    recorder: Recorder,
    faults: Sequence[tuple[str, str]],
    fault_seconds: float,
    quiet_seconds: float,
) -> None:
    for upstream, kind in faults:
        episode = Episode(upstream, kind, started=time.monotonic())
        recorder.episodes.append(episode)
        log.info("fault: %s %s", upstream, kind)
        await asyncio.to_thread(stack.fault, upstream, kind)
        agent.scheduler.run_soon(upstream)
        await asyncio.sleep(fault_seconds)
        await asyncio.to_thread(stack.fault, upstream, "none")
        episode.healed = time.monotonic()
        agent.scheduler.run_soon(upstream)
        await asyncio.sleep(quiet_seconds)
        episode.rss_mib = rss_mib_self()[0]
        episode.ended = time.monotonic()


async def _soak(
    stack: Upstreams, recorder: Recorder, port: int, seconds: float, seed: int
) -> tuple[float, float, float]:
    """Serve and inject faults for ``seconds``; (RSS at start, at end, peak) in MiB."""
    agent = soak_agent(stack)
    recorder.watch(agent.store)
    stop_serving = asyncio.Event()
    serving = asyncio.create_task(agent.serve(stop_serving, "127.0.0.1", port))
    try:
        for _ in range(300):  # the first cycle: a few seconds at most
            if agent.store.ready:
                break
            await asyncio.sleep(0.1)
        rss_start, _ = rss_mib_self()
        faults, fault_seconds, quiet_seconds = schedule(seconds, seed)
        await _run_faults(stack, agent, recorder, faults, fault_seconds, quiet_seconds)
        rss_end, rss_peak = rss_mib_self()
    finally:
        stop_serving.set()
        await serving
    return rss_start, rss_end, rss_peak


def rss_mib_self() -> tuple[float, float]:
    return rss_mib(os.getpid())


def scrape_figures(prometheus: str, seconds: float) -> ScrapeFigures:
    """What Prometheus recorded about its scrapes of the agent over the soak."""
    window = f"{int(seconds) + 30}s"

    def value(expr: str) -> float:
        reply = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
        result = reply.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    selector = f'{{job="{JOB}"}}'
    total = value(f"sum(count_over_time(up{selector}[{window}]))")
    up = value(f"sum(sum_over_time(up{selector}[{window}]))")
    worst = value(f"max(max_over_time(scrape_duration_seconds{selector}[{window}]))")
    targets = httpx.get(prometheus + "/api/v1/targets", timeout=10).json()["data"]
    errors = [t["lastError"] for t in targets["activeTargets"] if t["lastError"]]
    return ScrapeFigures(int(total), int(total - up), worst, "; ".join(errors))


def run_soak(seconds: float, *, seed: int = 0, scrape_interval: float = 5.0) -> SoakResult:
    """The whole soak; needs the ``prometheus`` binary."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: run scripts/install-system-deps.sh")
    recorder = Recorder()
    logging.getLogger().addHandler(recorder)
    port = free_port()
    config = (
        f"global: {{scrape_interval: {scrape_interval:g}s, scrape_timeout: "
        f"{max(1.0, scrape_interval - 1):g}s}}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    started_at = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="inferwatch-soak-") as tmp, upstreams() as stack:
            prometheus, process = start_prometheus(binary, Path(tmp), config)
            try:
                rss = asyncio.run(_soak(stack, recorder, port, seconds, seed))
                figures = scrape_figures(prometheus, time.monotonic() - began)
            finally:
                stop(process)
    finally:
        logging.getLogger().removeHandler(recorder)
    return SoakResult(
        seconds=seconds,
        scrape_interval=scrape_interval,
        scrapes=figures,
        rss_start_mib=rss[0],
        rss_end_mib=rss[1],
        rss_peak_mib=rss[2],
        recorder=recorder,
        machine=_machine(),
        started_at=started_at,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long to run (default 10)")
    length.add_argument("--seconds", type=float, help="how long to run, in seconds")
    parser.add_argument("--seed", type=int, default=0, help="which faults, in which order")
    parser.add_argument("--report", type=Path, default=REPORT, help="where to write the report")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 10.0)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "aiohttp", "apscheduler", "agent.simulator"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        result = run_soak(seconds, seed=args.seed)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    report = result.markdown()
    args.report.write_text(report)
    print(report)
    if not result.ok:
        print(f"soak: {result.scrapes.failed} scrape(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
