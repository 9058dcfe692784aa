"""The simulated stack speaks the real formats, moves with its clock and misbehaves on demand."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent.simulator import (
    LABEL_HAZARD,
    Fault,
    Simulator,
    SimulatorConfig,
    SimulatorThread,
    VLLMInstanceSpec,
)
from agent.simulator.__main__ import parse_args

NEW_LLAMA = VLLMInstanceSpec(lora_adapters=("sql-lora", "chat-lora"))
OLD_QWEN = VLLMInstanceSpec(model="Qwen/Qwen2.5-7B-Instruct-AWQ", version="0.10.1", engines=2)
MULTI_SERVER = VLLMInstanceSpec(model="mistralai/Mistral-7B-Instruct-v0.3", api_server_count=2)
CONFIG = SimulatorConfig(vllm=(NEW_LLAMA, OLD_QWEN, MULTI_SERVER))
EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TIMEOUT = httpx.Timeout(5.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    simulator: Simulator
    clock: FakeClock
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.simulator.litellm_master_key}"}

    async def vllm_metrics(self, index: int) -> str:
        response = await self.client.get(f"{self.simulator.vllm_urls[index]}/metrics")
        assert response.status_code == 200
        return response.text

    async def litellm_metrics(self) -> str:
        url = f"{self.simulator.litellm_url}/metrics"
        response = await self.client.get(url, headers=self.auth, follow_redirects=True)
        assert response.status_code == 200
        return response.text


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    clock = FakeClock()
    async with (
        Simulator(CONFIG, clock=clock) as simulator,
        httpx.AsyncClient(timeout=TIMEOUT) as client,
    ):
        yield Stack(simulator, clock, client)


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def values(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value for s in samples(text) if s.name == name}


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# -- vLLM ------------------------------------------------------------------------------------


async def test_every_vllm_metrics_page_parses(stack: Stack) -> None:
    for url in stack.simulator.vllm_urls:
        response = await stack.client.get(f"{url}/metrics")
        assert response.headers["content-type"] == EXPOSITION_TYPE
        assert "vllm:num_requests_running" in family_names(response.text)


async def test_counters_grow_with_the_clock_and_never_shrink(stack: Stack) -> None:
    before = await stack.vllm_metrics(0)
    stack.clock.now += 120
    after = await stack.vllm_metrics(0)
    old, new = values(before, "vllm:prompt_tokens_total"), values(after, "vllm:prompt_tokens_total")
    assert all(new[labels] > old[labels] for labels in old)
    old_samples = {(s.name, frozenset(s.labels.items())): s.value for s in samples(before)}
    for sample in samples(after):
        if sample.name.endswith(("_total", "_count", "_bucket", "_sum")):
            assert sample.value >= old_samples[sample.name, frozenset(sample.labels.items())]


async def test_a_clock_going_back_does_not_reset_counters(stack: Stack) -> None:
    stack.clock.now += 60
    before = total(await stack.vllm_metrics(0), "vllm:generation_tokens_total")
    stack.clock.now -= 30
    assert total(await stack.vllm_metrics(0), "vllm:generation_tokens_total") == before


async def test_histograms_are_consistent(stack: Stack) -> None:
    text = await stack.vllm_metrics(1)
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        by_child: dict[frozenset[tuple[str, str]], list[Sample]] = {}
        for sample in family.samples:
            key = frozenset((k, v) for k, v in sample.labels.items() if k != "le")
            by_child.setdefault(key, []).append(sample)
        for child in by_child.values():
            buckets = [s for s in child if s.name.endswith("_bucket")]
            counts = [s.value for s in buckets]
            assert counts == sorted(counts), family.name
            assert buckets[-1].labels["le"] == "+Inf"
            (count,) = [s.value for s in child if s.name.endswith("_count")]
            (total_sum,) = [s.value for s in child if s.name.endswith("_sum")]
            assert counts[-1] == count > 0, family.name
            assert total_sum >= 0


async def test_latencies_are_plausible(stack: Stack) -> None:
    text = await stack.vllm_metrics(0)
    e2e = total(text, "vllm:e2e_request_latency_seconds_sum")
    e2e /= total(text, "vllm:e2e_request_latency_seconds_count")
    ttft = total(text, "vllm:time_to_first_token_seconds_sum")
    ttft /= total(text, "vllm:time_to_first_token_seconds_count")
    assert e2e > 1 and e2e < 30
    assert 0.01 < ttft < 1


async def test_gauges_are_plausible(stack: Stack) -> None:
    text = await stack.vllm_metrics(0)
    (usage,) = values(text, "vllm:kv_cache_usage_perc").values()
    assert 0 < usage < 1
    assert total(text, "vllm:num_requests_running") > 0
    assert total(text, "vllm:num_requests_waiting") >= 0


async def test_new_and_old_metric_generations(stack: Stack) -> None:
    new, old = family_names(await stack.vllm_metrics(0)), family_names(await stack.vllm_metrics(1))
    assert {"vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries"} <= new
    assert "vllm:inter_token_latency_seconds" in new
    assert not {"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"} & new
    assert {"vllm:gpu_cache_usage_perc", "vllm:gpu_prefix_cache_hits"} <= old
    assert "vllm:time_per_output_token_seconds" in old
    assert not {"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"} & old


async def test_data_parallel_engines_are_labelled(stack: Stack) -> None:
    text = await stack.vllm_metrics(1)
    running = values(text, "vllm:num_requests_running")
    assert {dict(labels)["engine"] for labels in running} == {"0", "1"}
    assert {dict(labels)["model_name"] for labels in running} == {OLD_QWEN.model}


async def test_single_api_server_exposes_created_and_interpreter_metrics(stack: Stack) -> None:
    names = {s.name for s in samples(await stack.vllm_metrics(0))}
    assert "vllm:request_success_created" in names
    assert "process_start_time_seconds" in names


async def test_several_api_servers_expose_no_created_nor_interpreter_metrics(stack: Stack) -> None:
    names = {s.name for s in samples(await stack.vllm_metrics(2))}
    assert not [name for name in names if name.endswith("_created")]
    assert not [name for name in names if name.startswith(("python_", "process_"))]
    assert "vllm:request_success_total" in names


async def test_model_list_with_lora_adapters(stack: Stack) -> None:
    response = await stack.client.get(f"{stack.simulator.vllm_urls[0]}/v1/models")
    body = response.json()
    assert body["object"] == "list"
    base, *adapters = body["data"]
    assert base["id"] == base["root"] == NEW_LLAMA.model
    assert base["parent"] is None and base["owned_by"] == "vllm"
    assert base["max_model_len"] == 8192 and base["permission"]
    assert [(a["id"], a["parent"]) for a in adapters] == [
        ("sql-lora", NEW_LLAMA.model),
        ("chat-lora", NEW_LLAMA.model),
    ]
    lora = values(await stack.vllm_metrics(0), "vllm:lora_requests_info")
    assert [dict(labels)["running_lora_adapters"] for labels in lora] == ["sql-lora,chat-lora"]


async def test_label_hazard_is_escaped(stack: Stack) -> None:
    stack.simulator.set_label_hazard(True)
    text = await stack.vllm_metrics(0)
    assert '\\"' in text and "\\n" in text and "\\\\" in text
    running = values(text, "vllm:num_requests_running")
    assert {dict(labels)["model_name"] for labels in running} == {NEW_LLAMA.model + LABEL_HAZARD}
    (lora,) = values(text, "vllm:lora_requests_info")
    assert dict(lora)["running_lora_adapters"].count(LABEL_HAZARD) == 2
    stack.simulator.set_label_hazard(False)
    assert LABEL_HAZARD not in await stack.vllm_metrics(0)


async def test_vllm_small_routes(stack: Stack) -> None:
    base = stack.simulator.vllm_urls[1]
    assert (await stack.client.get(f"{base}/version")).json() == {"version": "0.10.1"}
    health = await stack.client.get(f"{base}/health")
    assert (health.status_code, health.content) == (200, b"")
    missing = await stack.client.get(f"{base}/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert stack.simulator.request_count("vllm:1", "/version") == 1


# -- LiteLLM ---------------------------------------------------------------------------------


async def test_litellm_open_routes(stack: Stack) -> None:
    base = stack.simulator.litellm_url
    for path in ("/health/liveliness", "/health/liveness"):
        response = await stack.client.get(base + path)
        assert (response.status_code, response.json()) == (200, "I'm alive!")
    readiness = (await stack.client.get(f"{base}/health/readiness")).json()
    assert readiness == {"status": "healthy", "db": "Not connected"}


async def test_litellm_authentication(stack: Stack) -> None:
    base = stack.simulator.litellm_url
    missing = await stack.client.get(f"{base}/model/info")
    assert (missing.status_code, missing.text) == (500, "Internal Server Error")
    wrong = await stack.client.get(f"{base}/health", headers={"Authorization": "Bearer sk-no"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["type"] == "no_db_connection"
    for path in ("/metrics", "/metrics/"):
        refused = await stack.client.get(base + path)
        assert refused.status_code == 401
        assert "Unauthorized access to metrics endpoint" in refused.json()


async def test_litellm_metrics_redirects_then_serves(stack: Stack) -> None:
    base = stack.simulator.litellm_url
    redirect = await stack.client.get(f"{base}/metrics", headers=stack.auth)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{base}/metrics/"
    page = await stack.client.get(f"{base}/metrics/", headers=stack.auth)
    assert page.headers["content-type"] == EXPOSITION_TYPE
    names = family_names(page.text)
    assert {"litellm_proxy_total_requests_metric", "litellm_deployment_state"} <= names
    assert {"litellm_llm_api_time_to_first_token_metric", "litellm_in_flight_requests"} <= names


async def test_litellm_metrics_carry_clients_and_health_checks(stack: Stack) -> None:
    requests = [
        s
        for s in samples(await stack.litellm_metrics())
        if s.name == "litellm_requests_metric_total"
    ]
    clients = [s for s in requests if s.labels["api_key_alias"] != "litellm-internal-health-check"]
    assert len({s.labels["hashed_api_key"] for s in clients}) == 5
    assert len({s.labels["user_agent"] for s in clients}) == 3
    checks = [s for s in requests if s.labels["hashed_api_key"] == "litellm-internal-health-check"]
    assert {s.labels["team"] for s in checks} == {"litellm-internal-health-check"}
    assert len(checks) == len(CONFIG.vllm) + 1


async def test_litellm_traffic_follows_vllm(stack: Stack) -> None:
    vllm = total(await stack.vllm_metrics(1), "vllm:request_success_total")
    text = await stack.litellm_metrics()
    proxied = total(text, "litellm_deployment_total_requests_total", model_group=OLD_QWEN.model)
    assert proxied == pytest.approx(vllm, rel=0.02)
    stack.clock.now += 60
    later = total(await stack.litellm_metrics(), "litellm_deployment_total_requests_total")
    assert later > total(text, "litellm_deployment_total_requests_total")


async def test_litellm_model_info(stack: Stack) -> None:
    response = await stack.client.get(
        f"{stack.simulator.litellm_url}/v1/model/info", headers=stack.auth
    )
    entries = response.json()["data"]
    assert [e["model_name"] for e in entries] == [s.model for s in CONFIG.vllm] + ["gpt-4o-mini"]
    for entry, url, spec in zip(entries, stack.simulator.vllm_urls, CONFIG.vllm, strict=False):
        assert entry["litellm_params"]["model"] == f"hosted_vllm/{spec.model}"
        assert entry["litellm_params"]["api_base"] == f"{url}/v1"
        info = entry["model_info"]
        assert re.fullmatch("[0-9a-f]{64}", info["id"])
        assert (info["litellm_provider"], info["mode"]) == ("hosted_vllm", "chat")
        assert info["max_input_tokens"] == spec.max_model_len
        assert info["output_cost_per_token_batches"] is None
    assert "api_base" not in entries[-1]["litellm_params"]
    assert "sk-simulated-upstream-secret" in response.text


async def test_litellm_health_reports_faulty_upstreams_and_counts_checks(stack: Stack) -> None:
    url = f"{stack.simulator.litellm_url}/health"
    before = total(
        await stack.litellm_metrics(),
        "litellm_requests_metric_total",
        hashed_api_key="litellm-internal-health-check",
    )
    stack.simulator.set_fault("vllm:1", Fault.HANG)
    body = (await stack.client.get(url, headers=stack.auth)).json()
    assert (body["healthy_count"], body["unhealthy_count"]) == (3, 1)
    (unhealthy,) = body["unhealthy_endpoints"]
    assert unhealthy["api_base"] == f"{stack.simulator.vllm_urls[1]}/v1"
    assert "error" in unhealthy
    assert stack.simulator.request_count("litellm", "/health") == 1
    after = total(
        await stack.litellm_metrics(),
        "litellm_requests_metric_total",
        hashed_api_key="litellm-internal-health-check",
    )
    assert after == before + 3
    state = values(await stack.litellm_metrics(), "litellm_deployment_state")
    assert sorted(state.values()) == [0.0, 0.0, 0.0, 2.0]


async def test_litellm_backlog(stack: Stack) -> None:
    response = await stack.client.get(
        f"{stack.simulator.litellm_url}/health/backlog", headers=stack.auth
    )
    body = response.json()
    assert set(body) == {
        "in_flight_requests",
        "admitted_requests",
        "queued_requests",
        "rejected_requests",
    }
    assert body["in_flight_requests"] >= 1


async def test_unauthorized_fault(stack: Stack) -> None:
    stack.simulator.set_fault("litellm", Fault.UNAUTHORIZED)
    base = stack.simulator.litellm_url
    response = await stack.client.get(f"{base}/model/info", headers=stack.auth)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "No connected db."
    assert (await stack.client.get(f"{base}/health/liveliness")).status_code == 200
    with pytest.raises(ValueError, match="litellm"):
        stack.simulator.set_fault("vllm:0", Fault.UNAUTHORIZED)


# -- faults ----------------------------------------------------------------------------------


async def test_error_500_and_garbage(stack: Stack) -> None:
    base = stack.simulator.vllm_urls[0]
    stack.simulator.set_fault("vllm:0", Fault.ERROR_500)
    assert (await stack.client.get(f"{base}/v1/models")).status_code == 500
    stack.simulator.set_fault("vllm:0", Fault.GARBAGE)
    garbage = await stack.client.get(f"{base}/metrics")
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        list(text_string_to_metric_families(garbage.text))
    models = await stack.client.get(f"{base}/v1/models")
    with pytest.raises(json.JSONDecodeError):
        models.json()
    assert (await stack.client.get(f"{stack.simulator.vllm_urls[1]}/version")).status_code == 200


async def test_hang_never_answers(stack: Stack) -> None:
    stack.simulator.set_fault("vllm:*", Fault.HANG)
    with pytest.raises(httpx.ReadTimeout):
        await stack.client.get(f"{stack.simulator.vllm_urls[2]}/health", timeout=0.3)
    assert (await stack.client.get(f"{stack.simulator.litellm_url}/health/liveness")).is_success


async def test_slow_answers_after_the_delay(stack: Stack) -> None:
    stack.simulator.set_fault("vllm:0", Fault.SLOW, delay=0.3)
    started = time.monotonic()
    response = await stack.client.get(f"{stack.simulator.vllm_urls[0]}/version")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_huge_streams_until_the_client_leaves(stack: Stack) -> None:
    stack.simulator.set_fault("vllm:0", Fault.HUGE)
    received = 0
    url = f"{stack.simulator.vllm_urls[0]}/metrics"
    async with stack.client.stream("GET", url) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received >= 10 * 1024 * 1024:
                break
    assert received >= 10 * 1024 * 1024
    stack.simulator.set_fault("vllm:0", Fault.NONE)
    assert (await stack.client.get(f"{stack.simulator.vllm_urls[0]}/version")).is_success


async def test_refuse_then_listen_again_on_the_same_port(stack: Stack) -> None:
    url = stack.simulator.vllm_urls[0]
    assert (await stack.client.get(f"{url}/version")).is_success  # a kept-alive connection
    host, port = url.removeprefix("http://").split(":")
    stack.simulator.set_fault("vllm:0", Fault.REFUSE)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(host, int(port))
    with pytest.raises(httpx.TransportError):
        await stack.client.get(f"{url}/version")
    stack.simulator.set_fault("vllm:0", Fault.NONE)
    assert stack.simulator.vllm_urls[0] == url
    assert (await stack.client.get(f"{url}/version")).is_success


async def test_unknown_target_is_rejected(stack: Stack) -> None:
    with pytest.raises(ValueError, match="vllm:9"):
        stack.simulator.set_fault("vllm:9", Fault.HANG)


async def test_random_failures_hit_every_server() -> None:
    config = SimulatorConfig(vllm=(VLLMInstanceSpec(),), failure_rate=1.0)
    async with Simulator(config) as simulator, httpx.AsyncClient(timeout=TIMEOUT) as client:
        for url in [simulator.litellm_url, *simulator.vllm_urls]:
            assert (await client.get(f"{url}/health/liveness")).status_code == 500


async def test_many_slow_servers_start_fast_and_answer_concurrently() -> None:
    config = SimulatorConfig(vllm=(VLLMInstanceSpec(),) * 64, latency_seconds=0.2)
    started = time.monotonic()
    async with Simulator(config) as simulator:
        assert time.monotonic() - started < 2
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
            started = time.monotonic()
            responses = await asyncio.gather(
                *(client.get(f"{url}/version") for url in simulator.vllm_urls)
            )
            elapsed = time.monotonic() - started
    assert all(r.status_code == 200 for r in responses)
    assert 0.2 <= elapsed < 1.0  # one after the other would take 12.8 s


# -- running it ------------------------------------------------------------------------------


def test_simulator_thread_serves_sync_callers() -> None:
    config = SimulatorConfig(vllm=(VLLMInstanceSpec(),), litellm=False)
    with SimulatorThread(config) as simulator, httpx.Client(timeout=TIMEOUT) as client:
        url = simulator.vllm_urls[0]
        assert client.get(f"{url}/version").json() == {"version": "0.33.0"}
        simulator.set_fault("vllm:0", Fault.REFUSE)  # from another thread than the loop's
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/version", timeout=TIMEOUT)
        simulator.set_fault("vllm:0", Fault.NONE)
        assert client.get(f"{url}/metrics").status_code == 200
        with pytest.raises(RuntimeError):
            _ = simulator.litellm_url


def test_simulator_thread_reports_start_failures() -> None:
    config = SimulatorConfig(host="256.0.0.1")
    with pytest.raises(OSError):
        SimulatorThread(config).start(timeout=5)


def test_command_line() -> None:
    config = parse_args(["--vllm", "3", "--latency", "0.5", "--port-base", "18000"])
    assert [spec.version for spec in config.vllm] == ["0.33.0", "0.10.1", "0.33.0"]
    assert len({spec.model for spec in config.vllm}) == 3
    assert (config.latency_seconds, config.port_base) == (0.5, 18000)
    assert parse_args(["--vllm", "1"]).vllm == (VLLMInstanceSpec(),)


async def test_port_base_places_servers() -> None:
    base = free_port_pair()
    config = SimulatorConfig(vllm=(VLLMInstanceSpec(),), port_base=base)
    async with Simulator(config) as simulator:
        assert simulator.litellm_url == f"http://127.0.0.1:{base}"
        assert simulator.vllm_urls == [f"http://127.0.0.1:{base + 1}"]


def free_port_pair() -> int:
    """A port P such that P and P + 1 are free now."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no two adjacent free ports")
