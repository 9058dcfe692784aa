"""Drafts from dashboards: valid as written, a suggestion per panel, event panels may be empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.grafana.api import parse_dashboard
from mcp_server.grafana.errors import PanelNotFound
from mcp_server.grafana.models import DashboardSpec
from mcp_server.scenario_drafts import draft_scenario, plain_query
from mcp_server.scenario_loader import load_text
from mcp_server.scenario_model import NoEmptyPanelsCheck, PromQLCheck, Scenario
from tests.stack import REPO

SHIPPED = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "scenarios" / "dashboards" / "gpus.json"
)


def spec_of(path: Path) -> DashboardSpec:
    return parse_dashboard(json.loads(path.read_text()))


def loaded(text: str) -> Scenario:
    result = load_text(text, Path("draft.yaml"))
    assert result.problems == [], text
    assert result.scenario is not None
    return result.scenario


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('DCGM_FI_DEV_GPU_UTIL{instance=~"$instance", gpu=~"$gpu"}', "DCGM_FI_DEV_GPU_UTIL"),
        (
            'sum(increase(x{instance=~"$instance", kind="cuda_oom"}[$__range]))',
            'sum(increase(x{kind="cuda_oom"}[1h]))',
        ),
        ('rate(x{a="1", b=~"${b:regex}"}[$__rate_interval])', 'rate(x{a="1"}[5m])'),
        ('{job="$job"}', '{job=~".+"}'),
        ("sum by (model)\n  (rate(x[$__interval]))", "sum by (model) (rate(x[1m]))"),
    ],
)
def test_panel_queries_become_plain_promql(expr: str, expected: str) -> None:
    assert plain_query(expr) == (expected, None)


def test_a_query_that_cannot_be_made_plain_says_why() -> None:
    assert plain_query("topk($n, up)") == (
        None,
        "its query uses the variable $n outside a label matcher",
    )
    query, why = plain_query("rate(x[5m]")
    assert query is None and why is not None and "never closed" in why


def test_a_draft_suggests_per_panel_and_allows_event_panels_to_be_empty() -> None:
    text = draft_scenario(spec_of(FIXTURE))
    assert text.startswith("# yaml-language-server: $schema=./schema.json\n")
    scenario = loaded(text)
    assert scenario.name == "inferwatch-gpus-draft" and scenario.severity == "advisory"
    assert scenario.variables == {"instance": ["all"]}
    assert scenario.panels is None
    [empty] = scenario.checks_of(NoEmptyPanelsCheck)
    assert empty.allowed_empty == ["Xid errors"]
    assert [check.describe() for check in scenario.checks_of(PromQLCheck)] == [
        "count(DCGM_FI_DEV_GPU_UTIL) >= 1",
        "count(DCGM_FI_DEV_FB_USED) >= 1",
        "count(DCGM_FI_DEV_GPU_UTIL) >= 1",
    ]
    # Suggestions stay comments: ranges from the unit, "nothing happened" for event panels.
    assert (
        "  # - promql: DCGM_FI_DEV_GPU_UTIL\n"
        "  #   for_every_series: true\n"
        '  #   expect: "between 0 and 100"' in text
    )
    assert '  # - promql: "sum(increase(DCGM_FI_DEV_XID_ERRORS[5m])) or vector(0)"' in text
    assert scenario.expectations == [
        'The "GPU utilization" panel draws at least one line reaching the right edge '
        "(recent data), with values between 0 and 100 %",
        'The "GPU memory used" panel draws at least one line reaching the right edge '
        "(recent data), with values in MB or GB",
        'The "Xid errors" panel shows no events, or says No data',
        'The "GPUs" stat shows a number',
    ]


def test_a_draft_for_some_panels_names_them() -> None:
    scenario = loaded(draft_scenario(spec_of(FIXTURE), ["GPUs", "GPU utilization"], name="mine"))
    assert scenario.name == "mine"
    assert scenario.panels == ["GPUs", "GPU utilization"]
    assert len(scenario.expectations) == 2


def test_a_draft_for_a_panel_the_dashboard_lacks_lists_its_panels() -> None:
    with pytest.raises(
        PanelNotFound, match="has no panel 'GPU utilisation'; panels: 'GPU utilization'"
    ):
        draft_scenario(spec_of(FIXTURE), ["GPU utilisation"])


@pytest.mark.skipif(not SHIPPED, reason="no dashboards in grafana/dashboards yet")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_a_draft_from_each_shipped_dashboard_validates(path: Path) -> None:
    spec = spec_of(path)
    scenario = loaded(draft_scenario(spec))
    assert scenario.dashboard == spec.uid
    titles = {panel.title for panel in spec.panels if panel.type not in ("text", "row")}
    mentioned = " ".join(scenario.expectations)
    assert all(f'"{title}"' in mentioned for title in titles)
    assert scenario.checks_of(PromQLCheck) != []
