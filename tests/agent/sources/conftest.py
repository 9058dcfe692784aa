"""Sources wired to the simulator (the one set of fakes shared by demo, tests and benchmarks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from agent.settings import LiteLLMSettings, VLLMSettings
from agent.simulator import Simulator, SimulatorConfig, VLLMInstanceSpec
from agent.sources.litellm import LiteLLMSource
from agent.sources.vllm import VLLMSource

NEW = VLLMInstanceSpec(model="meta-llama/Llama-3.1-8B-Instruct", version="0.33.0")
OLD = VLLMInstanceSpec(model="Qwen/Qwen2.5-7B-Instruct-AWQ", version="0.10.1", engines=2)


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(vllm=(NEW, OLD))) as sim:
        yield sim


def vllm_source(
    urls: list[str], timeout: float = 2.0, max_bytes: int = 8 * 1024 * 1024
) -> VLLMSource:
    return VLLMSource(
        VLLMSettings(VLLM_URLS=",".join(urls)),
        interval_seconds=30,
        timeout_seconds=timeout,
        max_response_bytes=max_bytes,
    )


def litellm_source(
    url: str,
    key: str | None,
    *,
    timeout: float = 2.0,
    ttl: float = 300.0,
    health_checks: bool = False,
    max_bytes: int = 8 * 1024 * 1024,
) -> LiteLLMSource:
    return LiteLLMSource(
        LiteLLMSettings(
            LITELLM_URL=url,
            LITELLM_API_KEY=SecretStr(key) if key else None,
            INFERWATCH_LITELLM_HEALTH_CHECKS=health_checks,
        ),
        interval_seconds=30,
        timeout_seconds=timeout,
        max_response_bytes=max_bytes,
        model_list_ttl_seconds=ttl,
    )
