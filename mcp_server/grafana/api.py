"""Grafana's HTTP API: health, dashboard search, and dashboards parsed into ``DashboardSpec``.

Auth: a service-account token (``Authorization: Bearer``), else basic auth, else anonymous.
Redirects are followed only while they stay on the configured Grafana origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel

from mcp_server.bounded import ResponseTooLarge, send_bounded
from mcp_server.grafana.errors import (
    DashboardNotFound,
    GrafanaAuthError,
    GrafanaHTTPError,
    GrafanaUnreachable,
)
from mcp_server.grafana.models import DashboardSpec, DashboardSummary, PanelSpec, Target, Variable
from mcp_server.settings import GrafanaSettings

MAX_REDIRECTS = 3
# Grafana's largest answers are dashboards: a few MB at most.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class GrafanaHealth(BaseModel):
    version: str | None = None
    database: str | None = None
    commit: str | None = None


def dashboard_path(uid: str) -> str | None:
    """``/api/dashboards/uid/<uid>`` with the uid as one path segment; None for a uid that
    cannot be one ('', '.', '..': URL normalization would send the request to another route)."""
    if uid in ("", ".", ".."):
        return None
    return f"/api/dashboards/uid/{quote(uid, safe='')}"


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class GrafanaAPI:
    def __init__(self, settings: GrafanaSettings) -> None:
        self._settings = settings
        self.url = settings.url
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self._settings
            headers: dict[str, str] = {"Accept": "application/json"}
            auth: httpx.BasicAuth | None = None
            if s.service_account_token is not None:
                headers["Authorization"] = f"Bearer {s.service_account_token.get_secret_value()}"
            elif s.user:
                password = s.password.get_secret_value() if s.password else ""
                auth = httpx.BasicAuth(s.user, password)
            self._client = httpx.AsyncClient(
                base_url=s.url,
                headers=headers,
                auth=auth,
                timeout=s.http_timeout_seconds,
                follow_redirects=False,
            )
        return self._client

    async def health(self) -> GrafanaHealth:
        response = await self._get("/api/health")
        return GrafanaHealth.model_validate(self._ok_json(response))

    async def search(self, query: str = "", tag: str | None = None) -> list[DashboardSummary]:
        params: dict[str, str | list[str]] = {"type": "dash-db"}
        if query:
            params["query"] = query
        if tag:
            params["tag"] = [tag]
        body = self._ok_json(await self._get("/api/search", params))
        if not isinstance(body, list):
            raise GrafanaHTTPError(self.url + "/api/search", 200, "expected a list of dashboards")
        return [
            DashboardSummary(
                uid=str(hit.get("uid", "")),
                title=str(hit.get("title", "")),
                url=self._absolute(str(hit.get("url", ""))),
                tags=[str(t) for t in hit.get("tags") or []],
                folder=hit.get("folderTitle") or None,
            )
            for hit in body
            if isinstance(hit, dict)
        ]

    async def raw_dashboard(self, uid: str) -> dict[str, Any]:
        """The API's answer as it is: ``{"dashboard": <JSON model>, "meta": {...}}``."""
        path = dashboard_path(uid)
        if path is None:
            raise DashboardNotFound(uid, await self._known_uids())
        response = await self._get(path)
        if response.status_code == 404:
            raise DashboardNotFound(uid, await self._known_uids())
        body = self._ok_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            raise GrafanaHTTPError(str(response.url), 200, "no 'dashboard' object in the answer")
        return body

    async def dashboard(self, uid: str) -> DashboardSpec:
        body = await self.raw_dashboard(uid)
        return parse_dashboard(body["dashboard"], uid)

    async def _known_uids(self) -> list[str]:
        try:
            return [hit.uid for hit in await self.search()]
        except (GrafanaUnreachable, GrafanaAuthError, GrafanaHTTPError):
            return []

    def _absolute(self, path: str) -> str:
        if not path.startswith("/"):
            return path
        base = urlsplit(self.url)
        if base.path and path.startswith(base.path.rstrip("/") + "/"):
            return f"{base.scheme}://{base.netloc}{path}"
        return self.url + path

    async def _get(
        self, path: str, params: Mapping[str, str | list[str]] | None = None
    ) -> httpx.Response:
        client = self.client
        request = client.build_request("GET", path, params=params)
        home = _origin(request.url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await send_bounded(
                    client,
                    request,
                    max_bytes=MAX_RESPONSE_BYTES,
                    deadline=2 * self._settings.http_timeout_seconds,
                )
            except ResponseTooLarge as exc:
                raise GrafanaHTTPError(str(request.url), 200, str(exc)) from None
            except (httpx.TimeoutException, TimeoutError):
                raise GrafanaUnreachable(
                    str(request.url), f"no answer within {self._settings.http_timeout_seconds:g}s"
                ) from None
            except httpx.HTTPError as exc:
                reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                raise GrafanaUnreachable(str(request.url), reason) from None
            if not response.is_redirect:
                break
            target = response.url.join(response.headers["location"])
            if _origin(target) != home:
                raise GrafanaHTTPError(
                    str(request.url),
                    response.status_code,
                    f"redirected to {target}, outside {self.url}: not followed; check GRAFANA_URL",
                )
            request = client.build_request("GET", target)
        else:
            raise GrafanaHTTPError(str(request.url), response.status_code, "too many redirects")
        if response.status_code in (401, 403):
            raise GrafanaAuthError(str(response.url), response.status_code)
        return response

    def _ok_json(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise GrafanaHTTPError(str(response.url), response.status_code, _detail(response))
        try:
            return response.json()
        except ValueError:
            raise GrafanaHTTPError(
                str(response.url), 200, "the answer is not JSON; does GRAFANA_URL point at Grafana?"
            ) from None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body)[:200]


# --- the dashboard JSON model ----------------------------------------------------------------


def parse_dashboard(model: Mapping[str, Any], uid: str | None = None) -> DashboardSpec:
    """Grafana's classic dashboard JSON -> ``DashboardSpec`` (rows flattened into ``row``)."""
    time = model.get("time") or {}
    return DashboardSpec(
        uid=str(model.get("uid") or uid or ""),
        title=str(model.get("title") or ""),
        tags=[str(t) for t in model.get("tags") or []],
        time_from=str(time.get("from") or "now-6h"),
        time_to=str(time.get("to") or "now"),
        variables=[_variable(v) for v in (model.get("templating") or {}).get("list") or []],
        panels=_number(list(_panels(model))),
    )


def _panels(model: Mapping[str, Any]) -> Iterator[PanelSpec]:
    """Panels in layout order; an expanded row owns the panels below it, a collapsed row nests
    them; dashboards older than schema 16 keep rows in ``rows``."""
    for old_row in model.get("rows") or []:
        title = old_row.get("title") or None
        for panel in old_row.get("panels") or []:
            yield _panel(panel, title)
    row: str | None = None
    for panel in _by_position(model.get("panels") or []):
        if panel.get("type") == "row":
            row = str(panel.get("title") or "") or None
            for nested in _by_position(panel.get("panels") or []):
                yield _panel(nested, row)
        else:
            yield _panel(panel, row)


def _by_position(panels: Iterable[Any]) -> list[Mapping[str, Any]]:
    def key(panel: Mapping[str, Any]) -> tuple[float, float]:
        grid = panel.get("gridPos") or {}
        return float(grid.get("y", 0)), float(grid.get("x", 0))

    return sorted((p for p in panels if isinstance(p, Mapping)), key=key)


def _panel(panel: Mapping[str, Any], row: str | None) -> PanelSpec:
    library = panel.get("libraryPanel") or {}
    datasource = _datasource(panel.get("datasource"))
    unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
    raw_id = panel.get("id")
    return PanelSpec(
        id=raw_id if isinstance(raw_id, int) else -1,
        title=str(panel.get("title") or library.get("name") or ""),
        type=str(panel.get("type") or ""),
        targets=[_target(t, datasource) for t in panel.get("targets") or [] if isinstance(t, dict)],
        unit=str(unit) if unit else None,
        description=str(panel.get("description") or "") or None,
        row=row,
    )


def _number(panels: list[PanelSpec]) -> list[PanelSpec]:
    """Grafana gives a panel without an id the next free one when it loads the dashboard."""
    next_id = max((p.id for p in panels), default=0) + 1
    numbered = []
    for panel in panels:
        if panel.id < 0:
            panel = panel.model_copy(update={"id": next_id})
            next_id += 1
        numbered.append(panel)
    return numbered


def _target(target: Mapping[str, Any], panel_datasource: str | None) -> Target:
    expr = target.get("expr")
    if not isinstance(expr, str):
        query = target.get("query")
        expr = query if isinstance(query, str) else ""
    legend = target.get("legendFormat")
    return Target(
        ref_id=str(target.get("refId") or ""),
        expr=expr,
        datasource=_datasource(target.get("datasource")) or panel_datasource,
        legend=str(legend) if legend else None,
    )


def _datasource(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        name = value.get("uid") or value.get("type")
        return str(name) if name else None
    return None


def _variable(raw: Mapping[str, Any]) -> Variable:
    query = raw.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    current = (raw.get("current") or {}).get("value")
    values = current if isinstance(current, list) else [] if current in (None, "") else [current]
    return Variable(
        name=str(raw.get("name") or ""),
        type=str(raw.get("type") or ""),
        label=str(raw.get("label") or "") or None,
        query=str(query) if query not in (None, "") else None,
        current=[str(v) for v in values],
        multi=bool(raw.get("multi")),
        include_all=bool(raw.get("includeAll")),
    )
