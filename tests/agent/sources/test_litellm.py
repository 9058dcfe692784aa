from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.exposition import FamiliesCollector, Fragment
from agent.scheduler import Poller
from agent.simulator import Fault, Simulator, SimulatorConfig
from agent.snapshot import Collection, SourceState
from agent.sources.litellm import (
    ALLOWED_LABELS,
    backlog_family,
    deployment_health_family,
    is_internal_traffic,
    parse_model_info,
)
from agent.store import Store
from agent.upstream import Malformed
from tests.agent.sources.conftest import litellm_source

UPSTREAM_SECRET = "sk-simulated-upstream-secret"


async def _collect(
    simulator: Simulator, key: str | None = "master", **kwargs: object
) -> Collection:
    source = litellm_source(
        simulator.litellm_url,
        simulator.litellm_master_key if key == "master" else key,
        **kwargs,  # type: ignore[arg-type]
    )
    try:
        return await source.collect()
    finally:
        await source.aclose()


def _text(collection: Collection) -> str:
    return Fragment.render(FamiliesCollector(collection.families), collection.raw).text.decode()


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    ]


async def test_routing_table_points_at_the_vllm_instances(simulator: Simulator) -> None:
    collection = await _collect(simulator)
    assert collection.state is SourceState.UP, collection.error
    routes = {
        labels["model_name"]: labels
        for labels, _ in _samples(_text(collection), "inferwatch_litellm_model_info")
    }
    llama = routes["meta-llama/Llama-3.1-8B-Instruct"]
    assert llama["litellm_model"] == "hosted_vllm/meta-llama/Llama-3.1-8B-Instruct"
    assert llama["api_base"] == simulator.vllm_urls[0] + "/v1"
    assert llama["provider"] == "hosted_vllm"
    assert routes["gpt-4o-mini"]["provider"] == "openai"
    assert [m["model_name"] for m in collection.data["models"]][:1] == [
        "meta-llama/Llama-3.1-8B-Instruct"
    ]


async def test_proxy_metrics_lose_identities_and_health_check_traffic() -> None:
    # A stopped workload clock, so the page we compare with is the page the source read.
    async with Simulator(SimulatorConfig(), clock=lambda: 1_800_000_000.0) as simulator:
        await _check_aggregation(simulator)


async def _check_aggregation(simulator: Simulator) -> None:
    collection = await _collect(simulator)
    text = _text(collection)
    async with httpx.AsyncClient(follow_redirects=True) as client:
        raw = await client.get(
            simulator.litellm_url + "/metrics",
            headers={"Authorization": f"Bearer {simulator.litellm_master_key}"},
        )
    name = "litellm_proxy_total_requests_metric_total"
    upstream = _samples(raw.text, name)
    assert any(is_internal_traffic(labels) for labels, _ in upstream)  # the simulator sends some
    user_total = sum(v for labels, v in upstream if not is_internal_traffic(labels))
    ours = _samples(text, name)
    assert ours and sum(v for _, v in ours) == pytest.approx(user_total)
    assert len(ours) < len(upstream)  # aggregated over users, keys and agents
    for family in text_string_to_metric_families(text):
        if family.name.startswith("litellm_"):
            for s in family.samples:
                assert ALLOWED_LABELS.issuperset(s.labels), (family.name, s.labels)
    assert "litellm_remaining_api_key_budget_metric" not in text


async def test_no_secret_leaves_the_source(simulator: Simulator) -> None:
    collection = await _collect(simulator, health_checks=True)
    for secret in (UPSTREAM_SECRET, simulator.litellm_master_key):
        assert secret not in _text(collection)
        assert secret not in repr(collection.data)


async def test_the_model_list_is_cached_for_its_ttl(simulator: Simulator) -> None:
    source = litellm_source(simulator.litellm_url, simulator.litellm_master_key, ttl=300)
    expiring = litellm_source(simulator.litellm_url, simulator.litellm_master_key, ttl=0)
    try:
        await source.collect()
        await source.collect()
        assert simulator.request_count("litellm", "/v1/model/info") == 1
        await expiring.collect()
        await expiring.collect()
        assert simulator.request_count("litellm", "/v1/model/info") == 3
    finally:
        await source.aclose()
        await expiring.aclose()


async def test_health_endpoint_only_when_enabled(simulator: Simulator) -> None:
    await _collect(simulator)
    assert simulator.request_count("litellm", "/health") == 0
    simulator.set_fault("vllm:1", Fault.ERROR_500)
    collection = await _collect(simulator, health_checks=True)
    assert simulator.request_count("litellm", "/health") == 1
    healthy = {
        labels["api_base"]: value
        for labels, value in _samples(_text(collection), "inferwatch_litellm_deployment_healthy")
    }
    assert healthy[simulator.vllm_urls[0] + "/v1"] == 1.0
    assert healthy[simulator.vllm_urls[1] + "/v1"] == 0.0


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "LITELLM_API_KEY is not set"),
        ("sk-wrong", "set LITELLM_API_KEY to the proxy's master_key"),
    ],
)
async def test_auth_problems_are_configuration_errors(
    simulator: Simulator, key: str | None, message: str
) -> None:
    collection = await _collect(simulator, key)
    assert collection.state is SourceState.CONFIG_ERROR
    assert collection.error is not None and message in collection.error
    assert "sk-wrong" not in collection.error
    # Liveness needs no key and is still reported.
    assert _samples(_text(collection), "inferwatch_litellm_live") == [({}, 1.0)]
    # One refusal is enough: no more authenticated calls this cycle.
    assert simulator.request_count("litellm", "/metrics/") == 0


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.HANG, "no answer within the timeout"),
        (Fault.GARBAGE, "invalid JSON"),
        (Fault.ERROR_500, "HTTP 500"),
        (Fault.HUGE, "exceeds cap"),
    ],
)
async def test_a_broken_proxy_is_down_with_the_reason(
    simulator: Simulator, fault: Fault, message: str
) -> None:
    simulator.set_fault("litellm", fault)
    poller = Poller(Store(["litellm"]), lambda source: 5.0)
    source = litellm_source(
        simulator.litellm_url, simulator.litellm_master_key, timeout=0.5, max_bytes=1024 * 1024
    )
    try:
        snapshot = await poller.poll(source)
    finally:
        await source.aclose()
    assert snapshot.state is SourceState.DOWN
    assert snapshot.error is not None and message in snapshot.error


async def test_survives_a_proxy_restart_with_one_line_per_change(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    store = Store(["litellm"])
    poller = Poller(store, lambda source: 5.0)
    source = litellm_source(simulator.litellm_url, simulator.litellm_master_key)
    try:
        assert (await poller.poll(source)).up
        simulator.set_fault("litellm", Fault.REFUSE)
        for _ in range(3):
            down = await poller.poll(source)
            assert down.state is SourceState.DOWN and "ConnectError" in (down.error or "")
        simulator.set_fault("litellm", Fault.NONE)
        assert (await poller.poll(source)).up
    finally:
        await source.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("agent")]
    assert len(lines) == 2, lines
    assert (
        lines[0].startswith("source litellm is down: ") and lines[1] == "source litellm is up again"
    )


def test_model_info_parser_reads_only_known_fields(fixtures: Path) -> None:
    payload = json.loads((fixtures / "litellm-1.108.7/v1_model_info.body.json").read_text())
    payload["data"][0]["litellm_params"]["api_base"] = "https://user:pw@api.example/v1?key=x"
    models = parse_model_info(payload, "x")
    assert [(m.model_name, m.litellm_model, m.provider) for m in models] == [
        ("mock-gpt", "openai/mock-gpt", "openai"),
        ("mock-llama", "openai/mock-llama", "openai"),
    ]
    assert models[0].api_base == "https://api.example/v1"
    bad_payloads: list[object] = [
        [],
        {"data": {}},
        {"data": [{"litellm_params": {}}]},
        {"data": [{"model_name": "m", "litellm_params": []}]},
    ]
    for bad in bad_payloads:
        with pytest.raises(Malformed, match=r"^http://proxy/v1/model/info: "):
            parse_model_info(bad, "http://proxy/v1/model/info")


def test_backlog_and_health_parsers_on_the_reference_samples(fixtures: Path) -> None:
    folder = fixtures / "litellm-1.108.7"
    backlog = backlog_family(json.loads((folder / "health_backlog.body.json").read_text()), "x")
    assert {s.labels["state"]: s.value for s in backlog.samples} == {
        "in_flight": 1.0,
        "admitted": 0.0,
        "queued": 0.0,
        "rejected": 0.0,
    }
    table = parse_model_info(json.loads((folder / "v1_model_info.body.json").read_text()), "x")
    health = json.loads((folder / "health.body.json").read_text())
    health["unhealthy_endpoints"] = [
        {
            "model": "openai/dead",
            "model_id": "nope",
            "api_base": "http://k:s@10.0.0.9/v1",
            "error": "x",
        }
    ]
    family = deployment_health_family(health, table, "x")
    assert [(s.labels["model_name"], s.labels["api_base"], s.value) for s in family.samples] == [
        ("mock-gpt", "", 1.0),
        ("mock-llama", "http://127.0.0.1:9/v1", 1.0),
        ("openai/dead", "http://10.0.0.9/v1", 0.0),
    ]
    bad_payloads: list[object] = [[], {"healthy_endpoints": "all"}]
    for bad in bad_payloads:
        with pytest.raises(Malformed, match=r"^http://proxy/health: "):
            deployment_health_family(bad, table, "http://proxy/health")
    with pytest.raises(Malformed):
        backlog_family("busy", "x")
