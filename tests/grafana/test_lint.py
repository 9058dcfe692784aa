"""Dashboard and provisioning lint: fast, no processes. Each check is shown to catch a fault."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana import lint
from tests.grafana.dashboards import (
    DASHBOARDS,
    DATASOURCE_UID,
    PROVISIONING,
    REPO,
    UIDS,
    dashboard_files,
    load,
    load_all,
    panels,
    rule_queries,
)

DASHBOARD_PATHS = [pytest.param(path, id=path.name) for path in dashboard_files()]
# Where compose mounts grafana/dashboards inside the Grafana container.
DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards"
# The vLLM dashboard reads both metric generations: (0.11+ name, 0.10-and-older name).
VLLM_GENERATIONS = [
    ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    ("vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket"),
]
GPU_DASHBOARD_AGENT_NAMES = {
    "inferwatch_gpu_process_memory_bytes",
    "inferwatch_container_gpu_memory_bytes",
}
MAX_EVENT_ONLY_PANELS = 3


def test_every_dashboard_ships() -> None:
    assert sorted(path.name for path in dashboard_files()) == sorted(UIDS)


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_dashboard_is_valid_json(path: Path) -> None:
    try:
        json.loads(path.read_text())
    except json.JSONDecodeError as error:
        pytest.fail(f"{path.relative_to(REPO)}: {error}")


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_dashboard_lint(path: Path) -> None:
    dashboard = load(path)
    problems = [
        *lint.check_identity(dashboard, UIDS.get(path.name, "?")),
        *lint.check_panels(dashboard),
        *lint.check_datasources(dashboard),
        *lint.check_variables(dashboard),
        *lint.check_event_only(dashboard),
    ]
    assert not problems, f"{path.relative_to(REPO)}:\n  " + "\n  ".join(problems)


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path).get("uid") for path in dashboard_files()]
    assert len(uids) == len(set(uids)), uids


def test_few_panels_are_event_only() -> None:
    titles = [t for d in load_all().values() for t in lint.event_only_titles(d)]
    assert len(titles) <= MAX_EVENT_ONLY_PANELS, f"event-only panels: {titles}"


def test_gpu_dashboard_speaks_the_dcgm_dialect_only() -> None:
    names = lint.metric_names_of(load(DASHBOARDS / "gpus.json"))
    foreign = {n for n in names if not n.startswith("DCGM_FI_")} - GPU_DASHBOARD_AGENT_NAMES
    assert not foreign, f"a real dcgm-exporter cannot feed {sorted(foreign)}"
    assert names >= GPU_DASHBOARD_AGENT_NAMES, "per-container GPU memory is missing"


@pytest.mark.parametrize(("new", "old"), VLLM_GENERATIONS)
def test_vllm_dashboard_reads_both_metric_generations(new: str, old: str) -> None:
    names = lint.metric_names_of(load(DASHBOARDS / "vllm.json"))
    assert {new, old} <= names


def test_model_inventory_joins_model_info_with_hub_metadata() -> None:
    dashboard = load(DASHBOARDS / "models.json")
    inventory = next(p for p in panels(dashboard) if p.get("title") == "Model inventory")
    assert inventory["type"] == "table"
    targets = inventory["targets"]
    assert all(t.get("format") == "table" and t.get("instant") for t in targets)
    exprs = " ".join(t["expr"] for t in targets)
    assert "inferwatch_model_info" in exprs
    assert re.search(r"inferwatch_hf_model_\w+", exprs)
    assert [t["id"] for t in inventory["transformations"]] == ["merge", "organize"]


# -- provisioning ----------------------------------------------------------------------------------


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_datasource_is_provisioned_with_the_fixed_uid() -> None:
    files = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    assert files, "no datasource provisioning file"
    sources = [s for f in files for s in (_yaml(f).get("datasources") or [])]
    prometheus = [s for s in sources if s.get("uid") == DATASOURCE_UID]
    assert len(prometheus) == 1, sources
    source = prometheus[0]
    assert source["name"] == "Prometheus"
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source.get("isDefault") is True
    # Grafana's $__rate_interval needs the real scrape interval (prometheus.yml scrapes every 30s).
    assert source["jsonData"]["timeInterval"] == "30s"
    assert all(_yaml(f).get("apiVersion") == 1 for f in files)


def test_dashboard_provider_loads_the_folder() -> None:
    files = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    assert files, "no dashboard provisioning file"
    providers = [p for f in files for p in (_yaml(f).get("providers") or [])]
    assert len(providers) == 1, providers
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_IN_CONTAINER
    assert provider.get("allowUiUpdates") is False
    assert all(_yaml(f).get("apiVersion") == 1 for f in files)


def test_compose_mounts_dashboards_where_the_provider_looks() -> None:
    compose = REPO / "compose.yaml"
    if not compose.exists():
        pytest.skip("compose.yaml is not in this checkout yet")
    mounts = set()
    for service in (_yaml(compose).get("services") or {}).values():
        for volume in service.get("volumes") or []:
            if isinstance(volume, str) and ":" in volume:
                source, target = volume.split(":")[:2]
            elif isinstance(volume, dict):
                source, target = str(volume.get("source")), str(volume.get("target"))
            else:
                continue
            mounts.add(((REPO / source).resolve(), target.rstrip("/")))
    assert (DASHBOARDS.resolve(), DASHBOARDS_IN_CONTAINER) in mounts
    assert (PROVISIONING.resolve(), "/etc/grafana/provisioning") in mounts


# -- the checks catch faults ----------------------------------------------------------------------


def _broken(change: Any) -> dict[str, Any]:
    dashboard = copy.deepcopy(load(DASHBOARDS / "vllm.json"))
    change(dashboard)
    return dashboard


def _first_panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in panels(dashboard) if p.get("type") != "row")


def _collapsed_panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    row = next(p for p in dashboard["panels"] if p.get("type") == "row" and p.get("collapsed"))
    panel: dict[str, Any] = row["panels"][0]
    return panel


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: _collapsed_panel(d).update(id=_first_panel(d)["id"]), "used 2 times"),
        (lambda d: _collapsed_panel(d).update(title=""), "has no title"),
        (lambda d: _first_panel(d)["fieldConfig"]["defaults"].pop("unit"), "no unit"),
        (lambda d: _first_panel(d)["fieldConfig"]["defaults"].update(unit="second"), "'second'"),
        (lambda d: _first_panel(d).update(gridPos={"x": 20, "y": 0, "w": 8, "h": 4}), "wider"),
        (lambda d: _first_panel(d).update(gridPos={"x": 2, "y": 2, "w": 4, "h": 4}), "overlap"),
        (
            lambda d: _first_panel(d)["fieldConfig"]["defaults"]["thresholds"]["steps"].append(
                {"color": "red", "value": -1}
            ),
            "not ascending",
        ),
    ],
)
def test_panel_checks_catch(change: Any, expected: str) -> None:
    problems = lint.check_panels(_broken(change))
    assert any(expected in p for p in problems), problems


def test_datasource_check_catches_a_hard_coded_uid() -> None:
    def hard_code(d: dict[str, Any]) -> None:
        _collapsed_panel(d)["targets"][0]["datasource"] = {"type": "prometheus", "uid": "P1809F7"}

    problems = lint.check_datasources(_broken(hard_code))
    assert any("'P1809F7'" in p and "hard-coded" in p for p in problems), problems


def test_variable_check_catches_undefined_and_exact_matched_multi_values() -> None:
    def misuse(d: dict[str, Any]) -> None:
        target = _first_panel(d)["targets"][0]
        target["expr"] = 'up{instance="$instance", job=~"$jobs"}'

    problems = lint.check_variables(_broken(misuse))
    assert any("$jobs" in p and "does not define" in p for p in problems), problems
    assert any("use =~ or !~" in p for p in problems), problems


def test_identity_check_catches_a_missing_tag_and_a_wrong_uid() -> None:
    problems = lint.check_identity(_broken(lambda d: d.update(tags=["x"])), "inferwatch-gpus")
    assert any("lack 'inferwatch'" in p for p in problems)
    assert any("expected 'inferwatch-gpus'" in p for p in problems)


def test_event_only_marker_must_lead_the_description() -> None:
    def bury(d: dict[str, Any]) -> None:
        _first_panel(d)["description"] = "Requests. Event-only: sometimes"

    assert lint.check_event_only(_broken(bury))


def test_rule_checks_skip_with_the_reason_when_there_are_no_rule_files() -> None:
    with pytest.raises(pytest.skip.Exception, match="no rule files in prometheus/rules/"):
        rule_queries(None)
