"""The LiteLLM source against the real LiteLLM proxy."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from agent.exposition import FamiliesCollector, Fragment
from agent.settings import LiteLLMSettings
from agent.snapshot import Collection, SourceState
from agent.sources.litellm import ALLOWED_LABELS, LiteLLMSource
from tests.integration.conftest import LITELLM_UPSTREAM_SECRET, LiteLLMProxy

pytestmark = pytest.mark.integration

COMPLETIONS = 3


def _source(proxy: LiteLLMProxy, key: str | None, health_checks: bool = False) -> LiteLLMSource:
    settings = LiteLLMSettings(
        LITELLM_URL=proxy.url,
        LITELLM_API_KEY=SecretStr(key) if key else None,
        INFERWATCH_LITELLM_HEALTH_CHECKS=health_checks,
    )
    return LiteLLMSource(
        settings,
        interval_seconds=30,
        timeout_seconds=10,
        max_response_bytes=16 * 1024 * 1024,
        model_list_ttl_seconds=300,
    )


async def _collect(proxy: LiteLLMProxy, key: str | None, health_checks: bool = False) -> Collection:
    source = _source(proxy, key, health_checks)
    try:
        return await source.collect()
    finally:
        await source.aclose()


def _exposed(collection: Collection) -> dict[str, Metric]:
    """The collection as Prometheus reads it from our exposition, by family name."""
    fragment = Fragment.render(FamiliesCollector(collection.families), collection.raw)
    return {f.name: f for f in text_string_to_metric_families(fragment.text.decode())}


@pytest.fixture(scope="module")
def traffic(litellm_proxy: LiteLLMProxy) -> None:
    """A few completions, and a /health call that the proxy counts as its own traffic."""
    headers = {"Authorization": f"Bearer {litellm_proxy.master_key}"}
    with httpx.Client(base_url=litellm_proxy.url, headers=headers, timeout=30) as client:
        for _ in range(COMPLETIONS):
            reply = client.post(
                "/v1/chat/completions",
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200, reply.text
        assert client.get("/health").status_code == 200


async def test_reads_routing_health_and_metrics(litellm_proxy: LiteLLMProxy, traffic: None) -> None:
    collection = await _collect(litellm_proxy, litellm_proxy.master_key, health_checks=True)
    assert collection.state is SourceState.UP, collection.error

    exposed = _exposed(collection)
    assert exposed["inferwatch_litellm_live"].samples[0].value == 1
    assert exposed["inferwatch_litellm_ready"].samples[0].value == 1
    routes = {
        s.labels["model_name"]: s.labels for s in exposed["inferwatch_litellm_model_info"].samples
    }
    assert routes["mock-gpt"]["litellm_model"] == "openai/mock-gpt"
    assert routes["mock-gpt"]["provider"] == "openai"
    assert routes["llama-vllm"]["api_base"] == "http://127.0.0.1:9/v1"
    assert routes["llama-vllm"]["provider"] == "hosted_vllm"

    healthy = {
        s.labels["model_name"]: s.value
        for s in exposed["inferwatch_litellm_deployment_healthy"].samples
    }
    assert healthy["mock-gpt"] == 1

    requests = exposed["litellm_proxy_total_requests_metric"]
    by_model: dict[str | None, float] = {}
    for s in requests.samples:
        by_model[s.labels.get("requested_model")] = (
            by_model.get(s.labels.get("requested_model"), 0) + s.value
        )
    # Our completions are there; the proxy's own health-check traffic is not.
    assert by_model["mock-gpt"] == COMPLETIONS
    assert sum(by_model.values()) == COMPLETIONS
    passed_through = [f for name, f in exposed.items() if name.startswith("litellm_")]
    assert len(passed_through) > 10
    for family in passed_through:
        for sample in family.samples:
            assert ALLOWED_LABELS.issuperset(sample.labels), (family.name, sample.labels)


async def test_secrets_never_reach_the_exposition(
    litellm_proxy: LiteLLMProxy, traffic: None
) -> None:
    collection = await _collect(litellm_proxy, litellm_proxy.master_key, health_checks=True)
    fragment = Fragment.render(FamiliesCollector(collection.families))
    for secret in (LITELLM_UPSTREAM_SECRET, litellm_proxy.master_key):
        assert secret.encode() not in fragment.text
        assert secret not in repr(collection.data)


async def test_a_wrong_key_is_a_configuration_error(litellm_proxy: LiteLLMProxy) -> None:
    collection = await _collect(litellm_proxy, "sk-not-the-master-key")
    assert collection.state is SourceState.CONFIG_ERROR
    assert collection.error is not None and "master_key" in collection.error
    assert "sk-not-the-master-key" not in collection.error
    # What needs no key is still reported.
    assert _exposed(collection)["inferwatch_litellm_live"].samples[0].value == 1


async def test_no_key_is_a_configuration_error(litellm_proxy: LiteLLMProxy) -> None:
    collection = await _collect(litellm_proxy, None)
    assert collection.state is SourceState.CONFIG_ERROR
    assert collection.error is not None and "LITELLM_API_KEY is not set" in collection.error
