from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.exposition import FamiliesCollector, Fragment
from agent.simulator import Fault, Simulator
from agent.snapshot import Collection, SourceState
from agent.sources.vllm import endpoint_for_url, parse_models, parse_version
from agent.upstream import Malformed
from tests.agent.sources.conftest import vllm_source

Series = dict[str, list[tuple[dict[str, str], float]]]


async def _collect(urls: list[str], **kwargs: float) -> Collection:
    source = vllm_source(urls, **kwargs)  # type: ignore[arg-type]
    try:
        return await source.collect()
    finally:
        await source.aclose()


def _series(collection: Collection) -> Series:
    """The collection as Prometheus would read it from our exposition."""
    fragment = Fragment.render(FamiliesCollector(collection.families), collection.raw)
    series: Series = {}
    for family in text_string_to_metric_families(fragment.text.decode()):
        for s in family.samples:
            series.setdefault(s.name, []).append((s.labels, s.value))
    return series


def _instances(samples: Iterable[tuple[dict[str, str], float]]) -> set[str]:
    return {labels["vllm_instance"] for labels, _ in samples}


async def test_both_metric_generations_pass_through_with_instance_labels(
    simulator: Simulator,
) -> None:
    new_url, old_url = simulator.vllm_urls
    new, old = endpoint_for_url(new_url).instance, endpoint_for_url(old_url).instance
    collection = await _collect(simulator.vllm_urls)
    assert collection.state is SourceState.UP and collection.error is None
    series = _series(collection)
    assert _instances(series["vllm:kv_cache_usage_perc"]) == {new}
    assert _instances(series["vllm:gpu_cache_usage_perc"]) == {old}
    assert _instances(series["vllm:num_requests_running"]) == {new, old}
    engines = {
        labels["engine"]
        for labels, _ in series["vllm:num_requests_running"]
        if labels["vllm_instance"] == old
    }
    assert engines == {"0", "1"}
    assert not [name for name in series if name.endswith("_created")]
    assert not [name for name in series if not name.startswith(("vllm:", "inferwatch_"))]


async def test_instance_info_names_version_model_and_url(simulator: Simulator) -> None:
    new_url, old_url = simulator.vllm_urls
    series = _series(await _collect(simulator.vllm_urls))
    info = {
        labels["vllm_instance"]: labels for labels, _ in series["inferwatch_vllm_instance_info"]
    }
    new = info[endpoint_for_url(new_url).instance]
    assert new["vllm_version"] == "0.33.0"
    assert new["model_name"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert new["url"] == new_url
    assert (new["container"], new["image"], new["gpus"]) == ("", "", "")
    assert info[endpoint_for_url(old_url).instance]["vllm_version"] == "0.10.1"
    assert {v for _, v in series["inferwatch_vllm_instance_up"]} == {1.0}
    assert {v for _, v in series["inferwatch_vllm_instance_healthy"]} == {1.0}


async def test_version_and_models_are_asked_again_only_after_an_outage(
    simulator: Simulator,
) -> None:
    source = vllm_source(simulator.vllm_urls)
    try:
        await source.collect()
        await source.collect()
        assert simulator.request_count("vllm:0", "/metrics") == 2
        assert simulator.request_count("vllm:0", "/version") == 1
        assert simulator.request_count("vllm:0", "/v1/models") == 1
        simulator.set_fault("vllm:0", Fault.REFUSE)
        await source.collect()
        simulator.set_fault("vllm:0", Fault.NONE)
        await source.collect()  # it may have come back as another model or version
    finally:
        await source.aclose()
    assert simulator.request_count("vllm:0", "/version") == 2
    assert simulator.request_count("vllm:0", "/v1/models") == 2
    assert simulator.request_count("vllm:1", "/v1/models") == 1


async def test_one_instance_down_is_partial_not_source_down(simulator: Simulator) -> None:
    simulator.set_fault("vllm:1", Fault.REFUSE)
    collection = await _collect(simulator.vllm_urls)
    old = endpoint_for_url(simulator.vllm_urls[1]).instance
    assert collection.state is SourceState.UP
    assert collection.error is not None and collection.error.startswith(f"{old}: ")
    series = _series(collection)
    up = {labels["vllm_instance"]: value for labels, value in series["inferwatch_vllm_instance_up"]}
    assert up[old] == 0.0
    assert old not in _instances(series["vllm:num_requests_running"])  # absent, not zero


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.REFUSE, "ConnectError"),
        (Fault.HANG, "no answer within the timeout"),
        (Fault.ERROR_500, "HTTP 500"),
        (Fault.GARBAGE, "not a valid sample line"),
        (Fault.HUGE, "exceeds cap"),
    ],
)
async def test_every_instance_failing_marks_the_source_down(
    simulator: Simulator, fault: Fault, message: str
) -> None:
    simulator.set_fault("vllm:*", fault)
    collection = await _collect(simulator.vllm_urls, timeout=0.5, max_bytes=1024 * 1024)
    assert collection.state is SourceState.DOWN
    assert collection.error is not None and message in collection.error
    assert collection.raw == ()


async def test_hostile_label_values_are_escaped(simulator: Simulator) -> None:
    simulator.set_label_hazard(True)
    series = _series(await _collect(simulator.vllm_urls))
    models = {labels["model_name"] for labels, _ in series["vllm:num_requests_running"]}
    assert any('"' in m and "\\" in m and "\n" in m for m in models)


async def test_no_endpoints_is_up_and_empty() -> None:
    collection = await _collect([])
    assert collection.state is SourceState.UP
    assert collection.raw == ()


def test_static_endpoint_names() -> None:
    assert endpoint_for_url("http://gpu-1:8000/v1/").instance == "gpu-1:8000"
    assert endpoint_for_url("http://gpu-1:8000/v1/").url == "http://gpu-1:8000"
    assert endpoint_for_url("https://vllm.internal").instance == "vllm.internal:443"


def test_model_cards_and_version_parsers() -> None:
    cards = parse_models(
        {
            "object": "list",
            "data": [
                {"id": "llama", "root": "/models/llama", "parent": None, "max_model_len": 8192},
                {"id": "sql-lora", "root": "/adapters/sql", "parent": "llama"},
            ],
        },
        "x",
    )
    assert [(c.id, c.root, c.parent, c.max_model_len) for c in cards] == [
        ("llama", "/models/llama", None, 8192),
        ("sql-lora", "/adapters/sql", "llama", None),
    ]
    assert parse_version({"version": "0.33.0"}, "x") == "0.33.0"
    bad_payloads: list[object] = [{"data": "nope"}, [], {"data": [{"object": "model"}]}]
    for bad in bad_payloads:
        with pytest.raises(Malformed):
            parse_models(bad, "http://h/v1/models")
    with pytest.raises(Malformed, match=r"http://h/version: expected"):
        parse_version({"version": 33}, "http://h/version")
