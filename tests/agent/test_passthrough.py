from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from agent.passthrough import RawFamily, aggregate_page, merge, relabel_page
from agent.sources.litellm import ALLOWED_LABELS, is_internal_traffic
from agent.upstream import Malformed

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def _vllm(text: str, instance: str = "gpu-0:8000") -> list[RawFamily]:
    return relabel_page(
        text,
        "http://gpu-0:8000/metrics",
        label=("vllm_instance", instance),
        keep=lambda n: n.startswith("vllm:"),
    )


def _render(families: list[RawFamily]) -> str:
    return "".join(f.text() for f in families)


def _reference(text: str, prefix: str) -> list[tuple[str, str, list[Sample]]]:
    """What prometheus_client's own parser reads: (family, type, samples) without _created."""
    result = []
    for f in text_string_to_metric_families(text):
        if not f.name.startswith(prefix) or f.name.endswith("_created"):
            continue
        samples = [
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for s in f.samples
            if not s.name.endswith("_created")
        ]
        result.append((f.name, f.type, samples))
    return result


def _all_samples(text: str) -> set[Sample]:
    return {s for _, _, samples in _reference(text, "") for s in samples}


def test_relabel_keeps_exactly_what_the_reference_parser_reads(fixtures: Path) -> None:
    page = (fixtures / "vllm/vllm-0.33.0-metrics.txt").read_text()
    fast = _render(_vllm(page))
    expected = {
        (name, tuple(sorted((*labels, ("vllm_instance", "gpu-0:8000")))), value)
        for _, _, samples in _reference(page, "vllm:")
        for name, labels, value in samples
    }
    assert _all_samples(fast) == expected
    assert "_created" not in fast
    assert "python_gc" not in fast and "process_" not in fast


def test_empty_label_sets_get_only_the_instance_label() -> None:
    page = "# HELP vllm:x X.\n# TYPE vllm:x gauge\nvllm:x{} 1\n"
    assert _vllm(page)[0].samples == ('vllm:x{vllm_instance="gpu-0:8000"} 1',)


def test_aggregation_sums_user_traffic_and_keeps_only_safe_labels(fixtures: Path) -> None:
    page = (fixtures / "litellm-1.108.7/metrics_slash.body.raw").read_text()
    families = aggregate_page(
        page,
        "litellm",
        keep=lambda n: n.startswith("litellm_"),
        allowed_labels=ALLOWED_LABELS,
        exclude=is_internal_traffic,
    )
    text = _render(families)
    for _, _, samples in _reference(text, ""):
        for name, labels, _ in samples:
            assert ALLOWED_LABELS.issuperset(dict(labels)), (name, labels)
    # Per-key gauges cannot be summed: the family is left out rather than invented.
    assert "litellm_remaining_api_key_budget_metric" not in text
    assert "litellm_deployment_state{" in text  # only safe labels: passes unchanged

    def total(samples: set[Sample], keep_internal: bool) -> float:
        return sum(
            v
            for name, labels, v in samples
            if name == "litellm_proxy_total_requests_metric_total"
            and (keep_internal or not is_internal_traffic(dict(labels)))
        )

    upstream = _all_samples(page)
    ours = _all_samples(text)
    assert total(ours, True) == total(upstream, False) < total(upstream, True)
    # Histogram buckets stay cumulative after summing.
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for name, labels, v in ours
        if name == "litellm_request_total_latency_metric_bucket"
        and dict(labels).get("requested_model") == "mock-gpt"
    )
    values = [v for _, v in buckets]
    assert values == sorted(values) and values


def test_summary_quantiles_are_not_summed_but_counts_are() -> None:
    page = (
        "# TYPE rpc_seconds summary\n"
        'rpc_seconds{user="a",quantile="0.5"} 1\n'
        'rpc_seconds{user="b",quantile="0.5"} 3\n'
        'rpc_seconds_count{user="a"} 2\n'
        'rpc_seconds_count{user="b"} 5\n'
    )
    [family] = aggregate_page(
        page, "x", keep=lambda n: True, allowed_labels=frozenset({"quantile"})
    )
    assert family.samples == ("rpc_seconds_count 7.0",)


def test_histogram_named_total_loses_its_created_family() -> None:
    page = (
        "# TYPE vllm:iteration_tokens_total histogram\n"
        'vllm:iteration_tokens_total_bucket{le="+Inf"} 3\n'
        "vllm:iteration_tokens_total_count 3\n"
        "vllm:iteration_tokens_total_sum 9\n"
        "# TYPE vllm:iteration_tokens_total_created gauge\n"
        "vllm:iteration_tokens_total_created 1.7e9\n"
    )
    assert [f.name for f in _vllm(page)] == ["vllm:iteration_tokens_total"]


def test_counters_render_in_both_formats_without_timestamps() -> None:
    page = (
        "# HELP vllm:prompt_tokens_total Prompt tokens.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{engine="0"} 12 1700000000000\n'
        'vllm:prompt_tokens_created{engine="0"} 1.7e9\n'
        "vllm:untyped 1\n"
    )
    families = _vllm(page)
    text = _render(families)
    assert 'vllm:prompt_tokens_total{vllm_instance="gpu-0:8000",engine="0"} 12\n' in text
    om = "".join(f.openmetrics() for f in families) + "# EOF\n"
    parsed = {f.name: f for f in parse_om(om)}  # type: ignore[no-untyped-call]
    assert parsed["vllm:prompt_tokens"].type == "counter"
    assert parsed["vllm:untyped"].type == "unknown"


def test_injected_label_is_escaped_and_upstream_escapes_survive() -> None:
    page = 'vllm:x{model_name="we\\"ird\\\\mo\\ndel"} 1\n'
    families = _vllm(page, instance='host"with\\odd\nname')
    [family] = list(text_string_to_metric_families(_render(families)))
    assert family.samples[0].labels == {
        "model_name": 'we"ird\\mo\ndel',
        "vllm_instance": 'host"with\\odd\nname',
    }


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ('vllm:x{model_name="a} 1\n', r":1: not a valid sample line"),
        ("# TYPE vllm:x gauge\nvllm:x 1\nvllm:x{a=b} 2\n", r":3: not a valid sample line"),
        ("vllm:x one\n", r":1: 'one' is not a number"),
        ("vllm:x 1_000\n", r":1: '1_000' is not a Prometheus number"),
        ("vllm:x \u0661\u0662\n", r":1: '\u0661\u0662' is not a Prometheus number"),
        ("vllm:x infinity\n", r":1: 'infinity' is not a Prometheus number"),
        ("# TYPE vllm:x bogus\n", r":1: unknown metric type 'bogus'"),
        ('vllm:x{vllm_instance="spoof"} 1\n', r": vllm:x already has a vllm_instance label"),
        ("\x00\x01garbage\n", r":1: not a valid sample line"),
        ("vllm:x 1 2 3\n", r":1: not a valid sample line"),
    ],
)
def test_a_malformed_page_is_rejected_whole_naming_the_line(page: str, message: str) -> None:
    with pytest.raises(Malformed, match=r"^http://gpu-0:8000/metrics" + message):
        _vllm(page)


def test_merge_keeps_one_family_per_name_and_reports_type_conflicts() -> None:
    a = _vllm("# TYPE vllm:x gauge\nvllm:x 1\n", "a")
    b = _vllm("# TYPE vllm:x gauge\nvllm:x 2\n", "b")
    conflicts: list[tuple[str, str, str]] = []
    merged = merge([a, b], lambda *conflict: conflicts.append(conflict))
    assert [(f.name, len(f.samples)) for f in merged] == [("vllm:x", 2)]
    assert conflicts == []
    c = _vllm("# TYPE vllm:x_total gauge\nvllm:x_total 3\n", "c")
    d = _vllm("# TYPE vllm:x counter\nvllm:x 3\n", "d")
    merge([c, d], lambda *conflict: conflicts.append(conflict))
    assert conflicts == [("vllm:x_total", "gauge", "counter")]


def test_old_and_new_counter_spellings_merge_into_one_family() -> None:
    old = _vllm("# TYPE vllm:jobs counter\nvllm:jobs 1\n", "old")
    older = _vllm("# TYPE vllm:jobs counter\nvllm:jobs_total 2\n", "older")
    new = _vllm("# TYPE vllm:jobs_total counter\nvllm:jobs_total 3\n", "new")
    [family] = merge([old, older, new], lambda *conflict: None)
    assert family.name == "vllm:jobs_total"
    assert [line.split("{")[0] for line in family.samples] == ["vllm:jobs_total"] * 3
