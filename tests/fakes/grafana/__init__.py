"""A Grafana 13.2 stand-in for tests: ``GrafanaStandIn`` and the ``grafana_standin`` fixture."""

from tests.fakes.grafana.server import GrafanaStandIn, PanelBehaviour, RecordedRequest

__all__ = ["GrafanaStandIn", "PanelBehaviour", "RecordedRequest"]
