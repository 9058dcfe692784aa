"""The Hub source: derivations from the reference samples, the disk cache, and the rate limits,
against the simulator's fake Hub (no sleeps: one injected clock drives the source and the fake)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from agent.app import Agent
from agent.exposition import FamiliesCollector, Fragment
from agent.settings import Settings
from agent.simulator.config import Fault
from agent.simulator.hub_api import LLAMA, PRIVATE, QWEN_AWQ, FakeHub
from agent.snapshot import Collection, SourceState
from agent.sources.hf_cache import HubCache, Lookup, file_name
from agent.sources.hf_facts import (
    LOCAL_PATH,
    NOT_A_REPO,
    ModelFacts,
    derive,
    not_a_repo_id,
    parameter_count,
)
from agent.sources.huggingface import BACKOFF_CAP_SECONDS, HuggingFaceSource, RateGate
from tests.promtool import needs_promtool, promtool_findings

DAY = 86400.0
SERVED = [LLAMA, QWEN_AWQ]


START = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _data(name: str) -> Any:
    return json.loads((resources.files("agent.simulator") / "data" / name).read_text())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def hub(clock: FakeClock) -> AsyncIterator[FakeHub]:
    async with FakeHub(clock=clock) as fake:
        yield fake


class Sources:
    """Makes sources on one cache folder and closes them at the end."""

    def __init__(self, hub: FakeHub, cache_dir: Path, clock: FakeClock) -> None:
        self.hub, self.cache_dir, self.clock = hub, cache_dir, clock
        self.made: list[HuggingFaceSource] = []

    def __call__(
        self,
        models: list[str] | None = None,
        *,
        token: str | None = None,
        max_bytes: int = 8 * 1024 * 1024,
        max_fetches: int = 10,
    ) -> HuggingFaceSource:
        wanted = SERVED if models is None else models
        source = HuggingFaceSource(
            lambda: wanted,
            endpoint=self.hub.url,
            token=SecretStr(token) if token else None,
            cache_dir=self.cache_dir,
            cache_ttl_seconds=DAY,
            interval_seconds=30,
            timeout_seconds=2.0,
            max_response_bytes=max_bytes,
            clock=self.clock,
            max_fetches_per_poll=max_fetches,
        )
        self.made.append(source)
        return source


@pytest.fixture
async def sources(hub: FakeHub, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Sources]:
    made = Sources(hub, tmp_path / "cache", clock)
    yield made
    for source in made.made:
        await source.aclose()


def _text(collection: Collection) -> str:
    return Fragment.render(FamiliesCollector(collection.families)).text.decode()


def _values(collection: Collection, name: str) -> dict[str, float]:
    return {
        s.labels["model"]: s.value
        for f in text_string_to_metric_families(_text(collection))
        for s in f.samples
        if s.name == name
    }


# -- derivations on the reference samples ---------------------------------------------------


def test_awq_parameters_are_unpacked_and_cross_checked_against_bytes() -> None:
    facts = derive(
        _data("hf-model_info-awq-4bit.json"), _data("hf-config-qwen2.5-7b-instruct-awq.json")
    )
    assert facts.parameters == 1_963_340_288 + 822_033_408 * 7  # I32 holds 8 int4 values
    assert facts.parameters is not None and 7.5e9 < facts.parameters < 7.8e9  # not 1.96e9
    assert facts.weights_bytes == 3_993_860_416 + 1_576_935_712
    assert (facts.quantization, facts.architecture, facts.license) == (
        "awq",
        "Qwen2ForCausalLM",
        "apache-2.0",
    )
    assert (facts.context_length, facts.gated, facts.private) == (32768, "false", False)


def test_bf16_weights_are_the_safetensors_files_not_used_storage() -> None:
    info = _data("hf-model_info-bf16.json")
    facts = derive(info, _data("hf-config-llama-3.1-8b-instruct.json"))
    assert facts.weights_bytes == 16_060_556_552 != info["usedStorage"]
    assert facts.parameters == 8_030_261_248
    assert (facts.quantization, facts.context_length) == ("none", 131072)
    assert (facts.gated, facts.license, facts.pipeline_tag) == (
        "manual",
        "llama3.1",
        "text-generation",
    )


def test_int32_tensors_that_are_not_packed_keep_their_count() -> None:
    # Mostly F32 (4 bytes each): ~4 bytes per parameter is no int4 model, whatever config says.
    mixed = {"parameters": {"F32": 10**9, "I32": 10**8}, "total": 11 * 10**8}
    assert parameter_count(mixed, 44 * 10**8, {"quant_method": "awq"}, {}) == 11 * 10**8
    # Unquantized: never unpacked.
    packed = {"parameters": {"I32": 10**9}, "total": 10**9}
    assert parameter_count(packed, 4 * 10**9, {}, {}) == 10**9
    # Packed int4 (AWQ default bits) and GPTQ 8-bit (4 values per I32).
    assert parameter_count(packed, 4 * 10**9, {"quant_method": "awq"}, {}) == 8 * 10**9
    gptq8 = {"bits": 8, "quant_method": "gptq"}
    assert parameter_count(packed, 4 * 10**9, gptq8, {}) == 4 * 10**9
    # Sizes unknown (no blobs): no cross-check possible, the stored count is kept.
    assert parameter_count(packed, None, {"quant_method": "awq"}, {}) == 10**9


def test_config_json_supplies_quantization_and_context() -> None:
    info = {"sha": "x", "config": {"model_type": "mistral"}}
    gptq = {"quantization_config": {"quant_method": "GPTQ"}, "max_position_embeddings": 4096}
    assert derive(info, gptq).quantization == "gptq"
    assert derive(info, gptq).architecture == "mistral"
    multimodal = {"text_config": {"max_position_embeddings": 128000}}
    assert derive(info, multimodal).context_length == 128000
    assert derive(info, {}).quantization == "none"
    assert derive(info, None, "refused").quantization == "unknown"
    gguf = {"sha": "x", "gguf": {"total": 8_000_000_000, "context_length": 8192}}
    facts = derive(gguf, None)
    assert (facts.quantization, facts.context_length, facts.parameters) == (
        "gguf",
        8192,
        8_000_000_000,
    )


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("/models/llama", LOCAL_PATH),
        ("./x", LOCAL_PATH),
        ("../../etc/passwd", LOCAL_PATH),
        ("~/weights", LOCAL_PATH),
        ("gpt-4o-mini", NOT_A_REPO),
        ("hosted_vllm/meta-llama/Llama-3.1-8B-Instruct", NOT_A_REPO),
        ("org/my model", NOT_A_REPO),
        ("org/модель", NOT_A_REPO),
        ("org/..", NOT_A_REPO),
        (LLAMA, None),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", None),
    ],
)
def test_only_org_name_ids_go_to_the_hub(model: str, reason: str | None) -> None:
    assert not_a_repo_id(model) == reason


# -- the source against the fake Hub --------------------------------------------------------


async def test_served_models_are_described(sources: Sources, hub: FakeHub) -> None:
    collection = await sources(token=hub.token).collect()
    assert collection.state is SourceState.UP, collection.error
    info = {
        s.labels["model"]: s.labels
        for f in text_string_to_metric_families(_text(collection))
        for s in f.samples
        if s.name == "inferwatch_hf_model_info"
    }
    assert info[QWEN_AWQ]["quantization"] == "awq"
    assert info[LLAMA] == {
        "model": LLAMA,
        "quantization": "none",
        "architecture": "LlamaForCausalLM",
        "license": "llama3.1",
        "gated": "manual",
        "private": "false",
        "pipeline_tag": "text-generation",
    }
    assert _values(collection, "inferwatch_hf_model_weights_bytes")[LLAMA] == 16_060_556_552
    assert _values(collection, "inferwatch_hf_model_context_length") == {
        LLAMA: 131072,
        QWEN_AWQ: 32768,
    }
    assert 7.5e9 < _values(collection, "inferwatch_hf_model_parameters")[QWEN_AWQ] < 7.8e9
    assert _values(collection, "inferwatch_hf_lookup_ok") == {LLAMA: 1.0, QWEN_AWQ: 1.0}
    assert collection.data["models"][QWEN_AWQ]["parameters"] == 7_717_574_144
    assert hub.request_count(f"/api/models/{QWEN_AWQ}") == 1


async def test_a_gated_config_without_token_leaves_those_fields_unknown(sources: Sources) -> None:
    collection = await sources().collect()
    llama = collection.data["models"][LLAMA]
    assert llama["ok"] and llama["weights_bytes"] == 16_060_556_552
    assert llama["context_length"] is None and llama["quantization"] == "unknown"
    assert "gated" in llama["config_error"]
    assert LLAMA not in _values(collection, "inferwatch_hf_model_context_length")  # absent, not 0


async def test_a_second_start_within_the_ttl_makes_no_hub_request(
    sources: Sources, hub: FakeHub, clock: FakeClock
) -> None:
    first = await sources([*SERVED, PRIVATE]).collect()
    calls = hub.requests_total
    assert calls == 5  # 2 x (info + config.json) + the private model's 401
    clock.now += DAY - 1
    second = sources([*SERVED, PRIVATE])
    collection = await second.collect()
    assert hub.requests_total == calls
    assert "inferwatch_hf_requests_total 0.0" in _text(collection)
    assert second.requests_total == 0
    assert collection.data["models"] == first.data["models"]
    # The fetch time is the cache's: a restart does not make old facts look new.
    assert _values(collection, "inferwatch_hf_facts_fetched_timestamp_seconds") == {
        LLAMA: START,
        QWEN_AWQ: START,
    }
    assert _values(collection, "inferwatch_hf_lookup_stale") == {LLAMA: 0.0, QWEN_AWQ: 0.0}


async def test_entries_expire_after_the_ttl(
    sources: Sources, hub: FakeHub, clock: FakeClock
) -> None:
    source = sources()
    await source.collect()
    await source.collect()
    assert hub.requests_total == 4
    clock.now += DAY
    await source.collect()
    assert hub.requests_total == 8


async def test_local_paths_and_private_models_are_answered_once(
    sources: Sources, hub: FakeHub
) -> None:
    source = sources(["/models/llama", "./x", PRIVATE])
    for _ in range(3):
        collection = await source.collect()
    assert hub.requests_total == 1
    models = collection.data["models"]
    assert models["/models/llama"]["error"] == LOCAL_PATH
    assert "set HF_TOKEN" in models[PRIVATE]["error"]
    assert collection.state is SourceState.UP
    assert _values(collection, "inferwatch_hf_lookup_ok") == {
        "/models/llama": 0.0,
        "./x": 0.0,
        PRIVATE: 0.0,
    }
    for family in ("inferwatch_hf_lookup_stale", "inferwatch_hf_facts_fetched_timestamp_seconds"):
        assert _values(collection, family) == {}  # no facts: absent, not 0


async def test_private_model_with_wrong_and_right_token(sources: Sources, hub: FakeHub) -> None:
    await sources([PRIVATE]).collect()  # 401, cached without a token
    wrong = await sources([PRIVATE], token="hf_wrong_token_value").collect()
    assert "HTTP 404" in wrong.data["models"][PRIVATE]["error"]  # a token: the cache says nothing
    again = await sources([PRIVATE], token="hf_wrong_token_value").collect()
    assert again.data["models"][PRIVATE] == wrong.data["models"][PRIVATE]
    assert hub.requests_total == 2  # the same token's refusal is reused
    right = await sources([PRIVATE], token=hub.token).collect()
    assert right.data["models"][PRIVATE]["private"] is True
    for collection in (wrong, right):
        assert hub.token not in _text(collection) + repr(collection.data)
    for path in (sources.cache_dir / "huggingface").iterdir():
        assert hub.token not in path.read_text()


async def test_429_stops_all_calls_until_retry_after(
    sources: Sources, hub: FakeHub, clock: FakeClock
) -> None:
    hub.rate_limit(120)
    source = sources()
    collection = await source.collect()
    assert collection.state is SourceState.DOWN
    assert "rate limited" in (collection.error or "")
    assert not (sources.cache_dir / "huggingface").exists()  # nothing cached
    calls = hub.requests_total
    assert calls in (1, 2)  # the lookups already under way when the 429 came
    clock.now += 119
    await source.collect()
    assert hub.requests_total == calls
    clock.now += 1
    collection = await source.collect()
    assert collection.state is SourceState.UP, collection.error
    assert hub.requests_total == calls + 4


def test_rate_gate_reads_ratelimit_headers_and_caps_the_backoff(clock: FakeClock) -> None:
    gate = RateGate(clock)
    gate.observe(200, httpx.Headers({"RateLimit": '"api";r=0;t=42'}))
    assert gate.until == clock.now + 42
    clock.now += 42
    assert gate.blocked() is None
    gate.observe(429, httpx.Headers({"Retry-After": "99999"}))
    assert gate.until == clock.now + BACKOFF_CAP_SECONDS
    clock.now = gate.until
    gate.observe(200, httpx.Headers())  # a success resets the backoff
    waits = []
    for _ in range(6):  # no header: 60, 120, 240, 480, then the 15-minute cap
        gate.observe(429, httpx.Headers())
        waits.append(gate.until - clock.now)
        clock.now = gate.until
    assert waits == [60, 120, 240, 480, 900, 900]
    gate.observe(200, httpx.Headers({"RateLimit": '"api";r=499;t=300'}))
    gate.observe(429, httpx.Headers())
    assert gate.until - clock.now == 60


@pytest.mark.parametrize(
    ("fault", "needle"),
    [(Fault.ERROR_500, "HTTP 500"), (Fault.GARBAGE, "invalid JSON"), (Fault.HUGE, "cap")],
)
async def test_a_failed_fetch_is_not_cached_and_is_retried(
    sources: Sources, hub: FakeHub, fault: Fault, needle: str
) -> None:
    hub.set_fault(fault)
    source = sources([QWEN_AWQ], max_bytes=256 * 1024)
    collection = await source.collect()
    assert collection.state is SourceState.DOWN
    assert needle in (collection.error or "")
    assert _values(collection, "inferwatch_hf_lookup_ok") == {QWEN_AWQ: 0.0}
    assert not (sources.cache_dir / "huggingface").exists()
    hub.set_fault(Fault.NONE)
    collection = await source.collect()
    assert collection.state is SourceState.UP
    assert collection.data["models"][QWEN_AWQ]["ok"]


async def test_expired_facts_are_served_stale_while_the_hub_fails(
    sources: Sources, hub: FakeHub, clock: FakeClock
) -> None:
    source = sources()
    await source.collect()
    clock.now += DAY
    hub.set_fault(Fault.ERROR_500)
    collection = await source.collect()
    assert collection.state is SourceState.UP
    assert collection.data["models"][QWEN_AWQ]["stale"] is True
    assert "HTTP 500" in collection.data["models"][QWEN_AWQ]["error"]
    assert _values(collection, "inferwatch_hf_lookup_ok") == {LLAMA: 1.0, QWEN_AWQ: 1.0}


async def _scrape(agent_url: str) -> dict[str, dict[str, float]]:
    """The agent's /metrics: per-model values of every family with a ``model`` label."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(agent_url + "/metrics")
    response.raise_for_status()
    values: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if "model" in sample.labels:
                values.setdefault(sample.name, {})[sample.labels["model"]] = sample.value
    return values


async def test_metrics_mark_facts_stale_with_their_fetch_time_while_the_hub_is_down(
    sources: Sources, hub: FakeHub, clock: FakeClock
) -> None:
    source = sources()
    agent = Agent(Settings(), sources=[source], inventory=False)
    http = agent.start_http("127.0.0.1", 0)
    try:
        await agent.poller.poll(source)
        fresh = await _scrape(http.url)
        assert fresh["inferwatch_hf_lookup_stale"] == {LLAMA: 0.0, QWEN_AWQ: 0.0}
        assert fresh["inferwatch_hf_facts_fetched_timestamp_seconds"] == {
            LLAMA: START,
            QWEN_AWQ: START,
        }

        hub.set_fault(Fault.REFUSE)  # the Hub is down: connections are refused
        clock.now += DAY + 90  # and the entries have expired
        await agent.poller.poll(source)
        down = await _scrape(http.url)
        assert down["inferwatch_hf_lookup_stale"] == {LLAMA: 1.0, QWEN_AWQ: 1.0}
        # Still the first fetch's time: time() minus it is the age, a day and 90 s.
        assert down["inferwatch_hf_facts_fetched_timestamp_seconds"] == {
            LLAMA: START,
            QWEN_AWQ: START,
        }
        assert down["inferwatch_hf_lookup_ok"] == {LLAMA: 1.0, QWEN_AWQ: 1.0}
        assert down["inferwatch_hf_model_context_length"][QWEN_AWQ] == 32768  # still served
        calls = hub.requests_total

        hub.set_fault(Fault.NONE)
        clock.now += 30
        await agent.poller.poll(source)
        back = await _scrape(http.url)
        assert hub.requests_total == calls + 4  # both refreshed
        assert back["inferwatch_hf_lookup_stale"] == {LLAMA: 0.0, QWEN_AWQ: 0.0}
        assert back["inferwatch_hf_facts_fetched_timestamp_seconds"] == {
            LLAMA: clock.now,
            QWEN_AWQ: clock.now,
        }
    finally:
        http.shutdown()
        http.server_close()


async def test_a_corrupt_cache_file_is_ignored_and_rewritten(
    sources: Sources, hub: FakeHub
) -> None:
    path = HubCache(sources.cache_dir).path_for(QWEN_AWQ)
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "model": "Qwen/')
    collection = await sources([QWEN_AWQ]).collect()
    assert collection.data["models"][QWEN_AWQ]["quantization"] == "awq"
    assert hub.requests_total == 2
    entry = json.loads(path.read_text())
    assert entry["model"] == QWEN_AWQ and entry["facts"]["quantization"] == "awq"


async def test_max_fetches_per_poll_spreads_lookups_over_polls(
    hub: FakeHub, tmp_path: Path, clock: FakeClock
) -> None:
    many = {f"org/model-{i}": hub.models[QWEN_AWQ] for i in range(5)}
    async with FakeHub(many, clock=clock) as other:
        made = Sources(other, tmp_path, clock)
        source = made(list(many), max_fetches=4)
        try:
            first = await source.collect()
            assert other.requests_total == 4
            deferred = [m for m, d in first.data["models"].items() if not d["ok"]]
            assert len(deferred) == 3
            assert "at most 4 Hub calls" in first.data["models"][deferred[0]]["error"]
            assert first.state is SourceState.UP
            await source.collect()
            await source.collect()
            assert other.requests_total == 10
        finally:
            await source.aclose()


@pytest.mark.parametrize(
    "model",
    ["../../etc/passwd", "org/my model", "org/модель ✓", "/abs/path", "a/" + "x" * 500, ".."],
)
def test_odd_model_ids_stay_inside_the_cache_folder(tmp_path: Path, model: str) -> None:
    cache = HubCache(tmp_path)
    path = cache.path_for(model)
    assert path.parent == tmp_path / "huggingface"
    assert "/" not in file_name(model) and len(file_name(model)) < 120
    cache.store(Lookup(model, 1.0, error="x"))
    assert cache.load(model) == Lookup(model, 1.0, error="x")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [path.name]


def test_distinct_ids_never_share_a_file() -> None:
    assert file_name("org/a b") != file_name("org/a_b")
    assert file_name("Org/Model") != file_name("org/model")


def test_cache_entries_round_trip_and_reject_other_models(tmp_path: Path) -> None:
    cache = HubCache(tmp_path)
    facts = derive(_data("hf-model_info-bf16.json"), None, "refused")
    cache.store(Lookup(LLAMA, 5.0, facts=facts, auth="abc"))
    loaded = cache.load(LLAMA)
    assert loaded is not None and loaded.facts == facts
    assert isinstance(loaded.facts, ModelFacts)
    cache.path_for(QWEN_AWQ).write_bytes(cache.path_for(LLAMA).read_bytes())
    assert cache.load(QWEN_AWQ) is None  # another model's entry under this name


# -- exposition ----------------------------------------------------------------------------


@needs_promtool
async def test_exposition_parses_and_passes_promtool(sources: Sources, hub: FakeHub) -> None:
    collection = await sources([*SERVED, PRIVATE, "/models/x"], token=hub.token).collect()
    text = _text(collection)
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names == {
        "inferwatch_hf_model_info",
        "inferwatch_hf_model_parameters",
        "inferwatch_hf_model_weights_bytes",
        "inferwatch_hf_model_context_length",
        "inferwatch_hf_lookup_ok",
        "inferwatch_hf_lookup_stale",
        "inferwatch_hf_facts_fetched_timestamp_seconds",
        "inferwatch_hf_requests",
    }
    assert "inferwatch_hf_requests_total 6.0" in text  # 3 x (info + config.json)
    assert await asyncio.to_thread(promtool_findings, text) == ""
