from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from agent import promtext
from agent.passthrough import RawFamily, merge, relabel_page
from agent.upstream import Malformed


def _vllm(text: str, instance: str = "gpu-0:8000") -> list[RawFamily]:
    return relabel_page(
        text,
        "http://gpu-0:8000/metrics",
        label=("vllm_instance", instance),
        keep=lambda n: n.startswith("vllm:"),
    )


def _samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_same_samples_as_the_reference_parser(fixtures: Path) -> None:
    """The fast path keeps exactly what parsing with prometheus_client would keep."""
    page = (fixtures / "vllm/vllm-0.33.0-metrics.txt").read_text()
    fast = "".join(f.text() for f in _vllm(page))
    families = promtext.keep_families(
        promtext.without_created(promtext.parse(page, "x")), lambda n: n.startswith("vllm:")
    )
    expected = {
        (s.name, tuple(sorted({**s.labels, "vllm_instance": "gpu-0:8000"}.items())), s.value)
        for f in families
        for s in f.samples
    }
    assert _samples(fast) == expected
    assert not any("_created" in line for line in fast.splitlines())
    assert "python_gc" not in fast and "process_" not in fast


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


def test_counters_render_in_both_formats() -> None:
    page = (
        "# HELP vllm:prompt_tokens_total Prompt tokens.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{engine="0"} 12 1700000000000\n'
        'vllm:prompt_tokens_created{engine="0"} 1.7e9\n'
        "vllm:untyped 1\n"
    )
    families = _vllm(page)
    text = "".join(f.text() for f in families)
    assert 'vllm:prompt_tokens_total{vllm_instance="gpu-0:8000",engine="0"} 12\n' in text  # no ts
    om = "".join(f.openmetrics() for f in families) + "# EOF\n"
    parsed = {f.name: f for f in parse_om(om)}  # type: ignore[no-untyped-call]
    assert parsed["vllm:prompt_tokens"].type == "counter"
    assert parsed["vllm:untyped"].type == "unknown"


def test_injected_label_is_escaped_and_upstream_escapes_survive() -> None:
    page = 'vllm:x{model_name="we\\"ird\\\\mo\\ndel"} 1\n'
    families = _vllm(page, instance='host"with\\odd\nname')
    [family] = list(text_string_to_metric_families("".join(f.text() for f in families)))
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
        ("# TYPE vllm:x bogus\n", r":1: unknown metric type 'bogus'"),
        ('vllm:x{vllm_instance="spoof"} 1\n', r":1: sample already has a vllm_instance label"),
        ("\x00\x01garbage\n", r":1: not a valid sample line"),
    ],
)
def test_a_malformed_page_is_rejected_whole_with_line_number(page: str, message: str) -> None:
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
