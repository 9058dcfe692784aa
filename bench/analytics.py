"""The slow-moving sources: Hub lookups across two agent starts sharing a cache, and one Langfuse
poll of a 10,000-trace day (pages read and CPU spent), against the simulator's fakes."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from agent.simulator import FakeHub, FakeLangfuse
from agent.sources.huggingface import HuggingFaceSource
from agent.sources.langfuse import LangfuseSource
from bench.common import table

MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct-AWQ")


async def _hub_requests_per_start(cache: Path) -> list[int]:
    async with FakeHub() as hub:
        counts = []
        for _ in range(2):  # two agent starts, one cache folder
            before = hub.requests_total
            source = HuggingFaceSource(
                lambda: MODELS,
                endpoint=hub.url,
                token=SecretStr(hub.token),
                cache_dir=cache,
                cache_ttl_seconds=86400,
                interval_seconds=30,
                timeout_seconds=5,
                max_response_bytes=1 << 24,
            )
            try:
                await source.collect()
            finally:
                await source.aclose()
            counts.append(hub.requests_total - before)
        return counts


async def _langfuse_day(traces: int) -> tuple[float, float, int]:
    async with FakeLangfuse(traces_per_day=traces) as langfuse:
        source = LangfuseSource(
            host=langfuse.url,
            public_key=SecretStr(langfuse.public_key),
            secret_key=SecretStr(langfuse.secret_key),
            interval_seconds=300,
            timeout_seconds=10,
            max_response_bytes=1 << 26,
        )
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            await source.collect()
            return time.perf_counter() - wall, time.process_time() - cpu, langfuse.requests_total
        finally:
            await source.aclose()


def run() -> str:
    with tempfile.TemporaryDirectory() as cache:
        first, second = asyncio.run(_hub_requests_per_start(Path(cache)))
    wall, cpu, requests = asyncio.run(_langfuse_day(10_000))
    rows = [
        ("Hub requests, first agent start", str(first)),
        ("Hub requests, second start within 24 h", str(second)),
        ("Langfuse poll of a 10,000-trace day: requests", str(requests)),
        ("... wall seconds", f"{wall:.2f}"),
        ("... CPU seconds (source and fake server together)", f"{cpu:.2f}"),
    ]
    return "\n".join(
        [
            "### Analytics sources: Hub cache and Langfuse volume (simulated servers)",
            "",
            table(("what", "figure"), rows),
            "",
            f"Goal: zero Hub requests on the second start -> {second}; Langfuse within its page cap"
            f" and under 1 s of CPU -> {cpu:.2f} s.",
        ]
    )


if __name__ == "__main__":
    print(run())
