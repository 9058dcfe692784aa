"""The exposition the agent serves, from random snapshots built by the sources' own code.

Random upstream facts (names, label values with quotes, backslashes, newlines and unicode,
extreme numbers) go through each source's real family builders into the real Store and
Exposition; the page served in both formats parses again, and ``promtool check metrics`` finds
nothing about any ``inferwatch_`` family.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from pydantic import SecretStr

from agent import __version__
from agent.exposition import Exposition
from agent.passthrough import RawFamily, relabel_page
from agent.snapshot import Collection, Snapshot, SourceState
from agent.sources import docker, inventory, langfuse, litellm, nvml, vllm
from agent.sources.hf_cache import Lookup
from agent.sources.hf_facts import ModelFacts
from agent.sources.huggingface import HuggingFaceSource, Outcome
from agent.store import Store
from tests.agent.test_fuzz_passthrough import exposition, families
from tests.promtool import PROMTOOL, promtool_findings

FUZZ = settings(max_examples=60)
SLOW_FUZZ = settings(max_examples=30)  # one promtool process per example
TEXT = st.text(max_size=10) | st.sampled_from(['a"b', "c\\d", "e\nf", "é", "", "\\n", "\r"])
COUNT = st.integers(0, 2**62)
READING = st.none() | st.integers(0, 2**40)
REAL = st.floats(0, 1e15)


@st.composite
def vllm_families(draw: st.DrawFn) -> list[Metric]:
    readings = []
    for _ in range(draw(st.integers(0, 3))):
        endpoint = vllm.VLLMEndpoint(
            instance=draw(TEXT),
            url=draw(st.sampled_from(["http://u:p@h:8000", "http://h:abc", "http://[::1"]) | TEXT),
            container=draw(TEXT),
            image=draw(TEXT),
            version=draw(TEXT),
            gpus=draw(TEXT),
        )
        cards = [
            vllm.ModelCard(draw(TEXT), draw(TEXT), None, draw(st.none() | st.integers(1, 2**40)))
            for _ in range(draw(st.integers(0, 2)))
        ]
        error = draw(st.none() | TEXT)
        readings.append(
            vllm.InstanceReading(
                endpoint, [], cards, draw(TEXT), draw(st.none() | st.booleans()), error
            )
        )
    return vllm._instance_families(readings)


@st.composite
def litellm_families(draw: st.DrawFn) -> list[Metric]:
    models = [
        litellm.RoutedModel(draw(TEXT), draw(TEXT), draw(TEXT), draw(TEXT), draw(TEXT))
        for _ in range(draw(st.integers(0, 3)))
    ]
    entry = st.fixed_dictionaries({"model": TEXT, "model_id": TEXT, "api_base": TEXT})
    health = {
        "healthy_endpoints": draw(st.lists(entry, max_size=2)),
        "unhealthy_endpoints": draw(st.lists(entry, max_size=2)),
    }
    backlog = {f"{state}_requests": draw(COUNT) for state in ("in_flight", "queued")}
    return [
        litellm._model_info_family(models),
        litellm.deployment_health_family(health, models, "fuzz"),
        litellm.backlog_family(backlog, "fuzz"),
    ]


@st.composite
def docker_families(draw: st.DrawFn) -> list[Metric]:
    readings = [
        docker.ContainerReading(
            id=draw(st.text("0123456789abcdef", min_size=12, max_size=64)),
            name=name,
            image=draw(TEXT),
            image_version=draw(TEXT),
            state=draw(st.sampled_from(["running", "exited", "created"]) | TEXT),
            gpus=draw(TEXT),
            is_vllm=draw(st.booleans()),
            vllm_url=None,
            pid=1,
            cpu_ratio=draw(st.none() | REAL),
            memory_used_bytes=draw(st.none() | REAL),
            memory_limit_bytes=draw(st.none() | REAL),
            network=draw(st.none() | st.tuples(REAL, REAL)),
        )
        for name in draw(st.lists(TEXT, max_size=3, unique=True))
    ]
    events = {r.name: Counter({"cuda_oom": draw(st.integers(0, 5))}) for r in readings}
    info = {"ServerVersion": draw(TEXT), "DefaultRuntime": draw(TEXT), "Runtimes": {"nvidia": {}}}
    return [docker._docker_info(info), *docker._container_families(readings, {}, events)]


@st.composite
def nvml_families(draw: st.DrawFn) -> list[Metric]:
    readings = []
    for index in range(draw(st.integers(0, 3))):
        gpu = nvml.GPU(index, object(), draw(TEXT), draw(TEXT), draw(TEXT))
        processes = tuple(
            nvml.GPUProcess(draw(st.integers(1, 2**22)), draw(st.none() | TEXT), draw(READING))
            for _ in range(draw(st.integers(0, 2)))
        )
        readings.append(
            nvml.GPUReading(
                gpu=gpu,
                utilization_percent=draw(READING),
                memory_utilization_percent=draw(READING),
                memory_total_bytes=draw(READING),
                memory_free_bytes=draw(READING),
                memory_used_bytes=draw(READING),
                temperature_celsius=draw(READING),
                power_milliwatts=draw(READING),
                power_limit_milliwatts=draw(READING),
                sm_clock_mhz=draw(READING),
                memory_clock_mhz=draw(READING),
                energy_millijoules=draw(READING),
                processes=processes,
            )
        )
    return [
        *nvml._dcgm_families(readings, draw(TEXT)),
        *nvml._inferwatch_families(readings, 4, draw(TEXT)),
    ]


@st.composite
def langfuse_families(draw: st.DrawFn) -> list[Metric]:
    windows = langfuse.Windows.at(datetime(2024, 5, 1, 12, tzinfo=UTC))
    found = langfuse.Aggregates(draw(TEXT), "v3", windows)
    for _ in range(draw(st.integers(0, 3))):
        values = {name: draw(st.none() | REAL) for name in ("observations", "input", "cost_usd")}
        found.add_usage(draw(TEXT), draw(st.sampled_from(langfuse.WINDOWS)), values)
    for window in langfuse.WINDOWS:
        found.counts["traces", window] = float(draw(COUNT))
    for _ in range(draw(st.integers(0, 3))):
        stats = langfuse.ScoreStats(count=3, missing=1, values=2, total=draw(REAL))
        found.scores.stats[draw(TEXT), draw(st.sampled_from(langfuse.WINDOWS))] = stats
    return langfuse._families(found, [])


@st.composite
def hub_families(draw: st.DrawFn, source: HuggingFaceSource) -> list[Metric]:
    outcomes = []
    for model in draw(st.lists(TEXT, max_size=3, unique=True)):
        facts = ModelFacts(
            sha=draw(TEXT),
            quantization=draw(TEXT),
            architecture=draw(TEXT),
            license=draw(TEXT),
            gated=draw(TEXT),
            private=draw(st.booleans()),
            pipeline_tag=draw(TEXT),
            parameters=draw(st.none() | COUNT),
            weights_bytes=draw(st.none() | COUNT),
            context_length=draw(st.none() | COUNT),
        )
        lookup = draw(st.none() | st.just(Lookup(model, 0.0, facts=facts)))
        outcomes.append(Outcome(model, lookup))
    return source._families(outcomes)


@st.composite
def inventory_families(draw: st.DrawFn) -> list[Metric]:
    instances = [
        {
            "instance": draw(TEXT),
            "url": draw(TEXT),
            "gpus": draw(TEXT),
            "vllm_version": draw(TEXT),
            "models": [{"id": draw(TEXT), "root": draw(TEXT)}],
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    routes = [
        {"model_name": draw(TEXT), "litellm_model": draw(TEXT), "api_base": draw(TEXT)}
        for _ in range(draw(st.integers(0, 2)))
    ]
    models = inventory.join(
        routes=routes, instances=instances, containers=[], gpus=[], hub={}, usage={}
    )
    return inventory._families(models)


@st.composite
def raw_families(draw: st.DrawFn) -> list[RawFamily]:
    page = exposition(draw(families("vllm:", ["model_name", "engine"], max_families=2)))
    return relabel_page(page, "fuzz", label=("vllm_instance", draw(TEXT)), keep=lambda n: True)


@pytest.fixture(scope="module")
def hub_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HuggingFaceSource]:
    source = HuggingFaceSource(
        list,
        endpoint="http://hub.invalid",
        token=SecretStr("hf_fuzz"),
        cache_dir=Path(tmp_path_factory.mktemp("hub")),
        cache_ttl_seconds=0,
        interval_seconds=30,
        timeout_seconds=1,
        max_response_bytes=1024,
    )
    yield source
    asyncio.run(source.aclose())


def pages(data: st.DataObject, hub_source: HuggingFaceSource) -> tuple[str, str]:
    """One random snapshot per source, stored; the page the agent would serve in both formats."""
    store = Store()
    exposition_ = Exposition(store, __version__)
    built: dict[str, list[Metric]] = {
        "vllm": data.draw(vllm_families()),
        "litellm": data.draw(litellm_families()),
        "docker": data.draw(docker_families()),
        "nvml": data.draw(nvml_families()),
        "langfuse": data.draw(langfuse_families()),
        "huggingface": data.draw(hub_families(hub_source)),
        "inventory": data.draw(inventory_families()),
    }
    store.register(built)
    for name, metrics in built.items():
        state = data.draw(st.sampled_from(SourceState))
        raw = tuple(data.draw(raw_families())) if name == "vllm" else ()
        collection = Collection(
            families=tuple(metrics), raw=raw, state=state, error=data.draw(TEXT)
        )
        duration = data.draw(st.floats(0, 1e6))
        cap = data.draw(st.none() | st.integers(1, 50))
        store.put(Snapshot.from_collection(name, collection, 1.7e9, duration, cap))
    page = exposition_.page
    return page.text.decode(), page.openmetrics.decode()


@FUZZ
@given(st.data())
def test_the_served_page_parses_again(hub_source: HuggingFaceSource, data: st.DataObject) -> None:
    text, openmetrics = pages(data, hub_source)
    names = [f.name for f in parse_text(text)]
    assert "inferwatch_source_up" in names
    om = list(parse_om(openmetrics))  # type: ignore[no-untyped-call]
    assert len({f.name for f in om}) == len(om)  # no family twice
    for family in parse_text(text):
        for sample in family.samples:
            assert isinstance(sample.value, float)
            if family.name.startswith("inferwatch_source"):
                assert math.isfinite(sample.value)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
@SLOW_FUZZ
@given(st.data())
def test_promtool_finds_nothing_about_inferwatch_families(
    hub_source: HuggingFaceSource, data: st.DataObject
) -> None:
    text, _ = pages(data, hub_source)
    findings = promtool_findings(text)
    problems = [
        line
        for line in findings.splitlines()
        if line.startswith("inferwatch_") or "error" in line or "exit status" in line
    ]
    assert not problems, "\n".join(problems)
