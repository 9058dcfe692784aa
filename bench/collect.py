"""One collection cycle over 64 vLLM endpoints that each answer in 200 ms, beside the slowest
single endpoint alone and the same endpoints polled one after another."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence

from agent.settings import VLLMSettings
from agent.sources.vllm import VLLMSource
from bench.common import agent_collector_settings, simulator, table


def _source(urls: Sequence[str]) -> VLLMSource:
    return VLLMSource(
        VLLMSettings(VLLM_URLS=",".join(urls)),
        interval_seconds=30,
        timeout_seconds=10,
        max_response_bytes=64 * 1024 * 1024,
    )


async def _cycle_seconds(source: VLLMSource) -> float:
    started = time.perf_counter()
    collection = await source.collect()
    elapsed = time.perf_counter() - started
    assert collection.error is None, collection.error
    return elapsed


async def _measure(urls: Sequence[str], repeat: int) -> dict[str, list[float]]:
    one, every = _source(urls[:1]), _source(urls)
    singles = [_source([url]) for url in urls]
    try:
        for source in (one, every, *singles):
            await _cycle_seconds(source)  # warm up: connections and the cached /version
        results: dict[str, list[float]] = {
            "one endpoint": [],
            f"{len(urls)} endpoints, concurrent": [],
        }
        for _ in range(repeat):
            results["one endpoint"].append(await _cycle_seconds(one))
            results[f"{len(urls)} endpoints, concurrent"].append(await _cycle_seconds(every))
        sequential = 0.0
        for source in singles:
            sequential += await _cycle_seconds(source)
        results[f"{len(urls)} endpoints, one after another"] = [sequential]
        return results
    finally:
        for source in (one, every, *singles):
            await source.aclose()


def run(instances: int = 64, latency: float = 0.2, repeat: int = 9) -> str:
    with simulator(instances, latency) as (_, urls), agent_collector_settings():
        results = asyncio.run(_measure(urls, repeat))
    base = statistics.median(results["one endpoint"])
    rows = [
        (name, f"{statistics.median(s):.3f}", f"{statistics.median(s) / base:.2f}x")
        for name, s in results.items()
    ]
    concurrent = statistics.median(results[f"{instances} endpoints, concurrent"])
    return "\n".join(
        [
            f"### Collection: {instances} vLLM endpoints answering in {latency * 1000:.0f} ms each",
            "",
            table(("cycle", "seconds (median)", "vs one endpoint"), rows),
            "",
            f"Goal: the concurrent cycle within 1.5x of one endpoint -> {concurrent / base:.2f}x.",
        ]
    )


if __name__ == "__main__":
    print(run())
