"""The metric-name extractor the dashboard checks rely on finds names and only names."""

from __future__ import annotations

import pytest

from tests.grafana.promql import metric_names, variable_selector


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        ('up{job="a", instance=~"b.*"}', {"up"}),
        ("rate(http_requests_total[5m])", {"http_requests_total"}),
        (
            "histogram_quantile(0.95, sum by (le, vllm_instance) "
            '(rate(vllm:time_to_first_token_seconds_bucket{model_name=~"x"}[4s])))',
            {"vllm:time_to_first_token_seconds_bucket"},
        ),
        (
            "max by (vllm_instance) (vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)",
            {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
        ),
        ("sum(a) without (job) / on (instance) group_left (gpu, pid) b", {"a", "b"}),
        ("sum(x == bool 2) + y offset 1h30m + z @ 1609746000", {"x", "y", "z"}),
        (
            'label_replace(m{a="$1"}, "hf_repo", "$1", "model", "(.+)") * 3.6e9 - Inf',
            {"m"},
        ),
        ('{__name__="renamed_metric", job="x"}', {"renamed_metric"}),
        ("max_over_time(rate(c_total[1m])[10m:30s])", {"c_total"}),
        ('count_values("v", build_info) > 0 unless absent(other)', {"build_info", "other"}),
        ("SUM BY (le) (q) AND ON () r", {"q", "r"}),
        ("topk(3, requests)", {"requests"}),
        ("DCGM_FI_DEV_FB_USED * 1048576", {"DCGM_FI_DEV_FB_USED"}),
        ("0x1F + .5 + 1e6", set()),
    ],
)
def test_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_variable_selector() -> None:
    query = 'label_values(inferwatch_vllm_instance_info{instance=~"$instance"}, model_name)'
    assert variable_selector(query) == 'inferwatch_vllm_instance_info{instance=~"$instance"}'
    assert variable_selector("label_values(instance)") is None
    assert variable_selector("query_result(up)") is None
