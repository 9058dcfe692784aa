"""Errors about Grafana, each with a message a person can act on (what, where, what to set)."""

from __future__ import annotations

from collections.abc import Sequence


class GrafanaError(Exception):
    """Anything that keeps us from reading or seeing a dashboard."""


class GrafanaUnreachable(GrafanaError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Grafana at {url} cannot be reached ({reason}); check GRAFANA_URL")
        self.url = url


class GrafanaAuthError(GrafanaError):
    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"Grafana at {url} refused us (HTTP {status}); set GRAFANA_SERVICE_ACCOUNT_TOKEN "
            "(a Viewer service account token) or GRAFANA_USER and GRAFANA_PASSWORD"
        )
        self.url = url
        self.status = status


class GrafanaHTTPError(GrafanaError):
    def __init__(self, url: str, status: int, detail: str) -> None:
        super().__init__(f"Grafana answered HTTP {status} for {url}: {detail}")
        self.url = url
        self.status = status


class DashboardNotFound(GrafanaError):
    def __init__(self, uid: str, known: Sequence[str]) -> None:
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"no dashboard with uid {uid!r}; dashboards: {listed}")
        self.uid = uid
        self.known = list(known)


class PanelNotFound(GrafanaError):
    def __init__(self, uid: str, panel: str | int, known: Sequence[str]) -> None:
        listed = ", ".join(repr(title) for title in known) or "none"
        super().__init__(f"dashboard {uid!r} has no panel {panel!r}; panels: {listed}")
        self.uid = uid
        self.panel = panel
        self.known = list(known)


class DashboardNotReady(GrafanaError):
    def __init__(self, uid: str, waited_seconds: float, loading: Sequence[str]) -> None:
        names = ", ".join(repr(title) for title in loading) or "none named (requests in flight)"
        super().__init__(
            f"dashboard {uid!r} was not ready after {waited_seconds:.0f}s; still loading: {names}"
        )
        self.uid = uid
        self.loading = list(loading)


class NavigationRefused(GrafanaError):
    def __init__(self, url: str, origin: str) -> None:
        super().__init__(f"refused to open {url}: only the Grafana origin {origin} is allowed")
        self.url = url
