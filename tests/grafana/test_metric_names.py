"""Every metric a dashboard or alert rule reads is one the demo agent emits (read from a real
scrape), or is listed below as coming from another exporter. A renamed metric fails here."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.grafana.dashboards import (
    DASHBOARDS,
    RULE_FILES,
    Query,
    dashboard_files,
    load,
    queries,
    rule_queries,
)
from tests.grafana.promql import metric_names

pytestmark = pytest.mark.integration

OTHER_EXPORTERS: dict[str, str] = {
    "up": "Prometheus writes it for every scrape target",
    "scrape_duration_seconds": "Prometheus writes it for every scrape target",
    "scrape_samples_scraped": "Prometheus writes it for every scrape target",
    "ALERTS": "Prometheus writes it for every pending or firing alert",
    "ALERTS_FOR_STATE": "Prometheus writes it for every pending or firing alert",
    "DCGM_FI_DEV_XID_ERRORS": "dcgm-exporter only: Xid errors need DCGM, NVML does not report them",
    "DCGM_FI_DEV_MEMORY_TEMP": "dcgm-exporter only: HBM temperature needs DCGM",
}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count"),
}


@pytest.fixture(scope="module")
def emitted(demo_agent_url: str) -> set[str]:
    """Series names the demo agent exposes: every family in its declared type's sample forms."""
    text = httpx.get(demo_agent_url + "/metrics", timeout=10).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    assert len(names) > 100, "the demo agent's scrape looks empty"
    return names


def unknown(found: Iterable[Query], emitted: set[str]) -> list[str]:
    return [
        f"{name!r} in {query.where}"
        for query in found
        for name in sorted(metric_names(query.expr))
        if name not in emitted and name not in OTHER_EXPORTERS
    ]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in dashboard_files()])
def test_dashboard_metrics_exist(emitted: set[str], path: Path) -> None:
    problems = unknown(queries(load(path)), emitted)
    assert not problems, "neither emitted by the agent nor in OTHER_EXPORTERS: " + ", ".join(
        problems
    )


@pytest.mark.parametrize("path", RULE_FILES)
def test_rule_metrics_exist(emitted: set[str], path: Path | None) -> None:
    problems = unknown(rule_queries(path), emitted)
    assert not problems, "neither emitted by the agent nor in OTHER_EXPORTERS: " + ", ".join(
        problems
    )


def test_other_exporters_list_only_names_the_agent_does_not_emit(emitted: set[str]) -> None:
    assert not set(OTHER_EXPORTERS) & emitted


def test_a_renamed_metric_is_caught(emitted: set[str]) -> None:
    dashboard = copy.deepcopy(load(DASHBOARDS / "vllm.json"))
    renamed = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets") or []:
            before = target["expr"]
            target["expr"] = before.replace("num_requests_waiting", "num_requests_queued")
            renamed += target["expr"] != before
    assert renamed
    problems = unknown(queries(dashboard), emitted)
    assert any("'vllm:num_requests_queued' in inferwatch-vllm" in p for p in problems), problems
