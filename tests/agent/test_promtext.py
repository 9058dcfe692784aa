from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest

from agent import promtext
from agent.exposition import FamiliesCollector
from agent.sources.litellm import ALLOWED_LABELS, is_internal_traffic
from agent.upstream import Malformed


def test_parses_vllm_sample_and_drops_created(fixtures: Path) -> None:
    text = (fixtures / "vllm/vllm-0.33.0-metrics.txt").read_text()
    families = promtext.without_created(promtext.parse(text, "vllm"))
    names = {f.name for f in families}
    assert "vllm:prompt_tokens" in names
    assert not any(n.endswith("_created") for n in names)
    assert not any(s.name.endswith("_created") for f in families for s in f.samples)
    histogram = next(f for f in families if f.name == "vllm:e2e_request_latency_seconds")
    assert {s.name for s in histogram.samples} == {
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:e2e_request_latency_seconds_count",
        "vllm:e2e_request_latency_seconds_sum",
    }


@pytest.mark.parametrize(
    "text",
    [
        'vllm:x{model_name="a} 1\n',  # unterminated label value
        "vllm:x 1 abc\n",
        "garbage garbage\n",
        "\x00\x01\x02\n",
        "# TYPE vllm:x counter\nvllm:x notanumber\n",
        '{model_name="a"} 1\n',
    ],
)
def test_malformed_text_names_the_source(text: str) -> None:
    with pytest.raises(Malformed, match=r"^http://up/metrics: malformed exposition text"):
        promtext.parse(text, "http://up/metrics")


def test_counter_without_total_suffix_gets_one() -> None:
    families = promtext.parse("# TYPE jobs counter\njobs 3\n", "x")
    assert [s.name for s in families[0].samples] == ["jobs_total"]
    rendered = generate_latest(FamiliesCollector(families))
    assert b"jobs_total 3.0" in rendered


def test_upstream_timestamps_are_dropped() -> None:
    families = promtext.parse("vllm:x 1 1700000000000\n", "x")
    assert families[0].samples[0].timestamp is None


def test_litellm_aggregation_drops_identities_and_health_checks(fixtures: Path) -> None:
    text = (fixtures / "litellm-1.108.7/metrics_slash.body.raw").read_text()
    raw = promtext.without_created(promtext.parse(text, "litellm"))
    families = promtext.aggregate(raw, ALLOWED_LABELS, exclude=is_internal_traffic)
    by_name = {f.name: f for f in families}
    for family in families:
        for s in family.samples:
            assert ALLOWED_LABELS.issuperset(s.labels), (family.name, s.labels)
    # Per-key gauges cannot be summed: the family is left out rather than invented.
    assert "litellm_remaining_api_key_budget_metric" not in by_name
    assert "litellm_deployment_state" in by_name  # only safe labels: passes unchanged

    def total(fams: list[object], name: str, **match: str) -> float:
        return sum(
            s.value
            for f in fams
            for s in f.samples  # type: ignore[attr-defined]
            if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
        )

    name = "litellm_proxy_total_requests_metric_total"
    user_traffic = sum(
        s.value
        for f in raw
        for s in f.samples
        if s.name == name and not is_internal_traffic(s.labels)
    )
    assert total(list(families), name) == user_traffic
    assert total(list(raw), name) > user_traffic  # the fixture does contain health checks
