"""Hostile tool arguments cannot make the MCP server reach outside its configured origins, nor read
outside its scenarios folder.

An "attacker" server (another loopback port) stands in for the outside target and records every
request; it answers whatever it is asked with a plausible body carrying ``MARKER``, so content
from it would show in a tool's output. For each attempt, through the real tools and an in-process
MCP client: the attacker received nothing, the tool answered with its own error (not a crash) or
with a confined result, and nothing of the attacker's (or of a file outside the folder) came back.
The HTTP guards of the transport (token, Host, Origin, body size) are in test_transports.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_server.server import build_server
from mcp_server.settings import Settings
from tests.fakes.grafana import GrafanaStandIn
from tests.fakes.grafana_api import FakeGrafanaAPI
from tests.fakes.http import serve
from tests.mcp_server.support import make_settings, text, unreachable_url

MARKER = "ATTACKER-CONTENT-7c41"
SECRET = "outside-secret-93d2"  # a valid scenario name: it would list and run if read
FIXTURE_UID = "inferwatch-fixture"  # served by FakeGrafanaAPI


@dataclass
class Attacker:
    """The outside target: records every request and answers it plausibly, with ``MARKER``."""

    url: str = ""
    seen: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.seen.append(f"{request.method} {request.path_qs}")
            body = {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {"m": MARKER}, "value": [1, "1"]}],
                },
                "dashboard": {"uid": MARKER, "title": MARKER, "panels": []},
                "version": "13.2.0",
            }
            return web.json_response(body)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


@pytest.fixture
async def attacker() -> AsyncIterator[Attacker]:
    target = Attacker()
    async with serve(target.app()) as url:
        target.url = url
        yield target


@dataclass(frozen=True)
class Outcome:
    is_error: bool
    text: str  # everything the client got back
    structured: dict[str, Any] | None = None


async def call(client: Client, name: str, arguments: dict[str, Any]) -> Outcome:
    """A tool call, or (``draft_scenario``) a prompt, as the client sees it."""
    if name == "draft_scenario":
        try:
            prompt = await client.get_prompt(name, arguments)
        except MCPError as error:
            return Outcome(True, str(error))
        return Outcome(False, json.dumps(prompt.model_dump(), default=str))
    result = await client.call_tool(name, arguments)
    structured = result.structured_content
    everything = text(result) + (json.dumps(structured, default=str) if structured else "")
    if result.is_error:
        # A crash reads "Error executing tool NAME" alone: the SDK hides what was raised.
        assert everything.startswith(f"Error executing tool {name}: "), everything[:300]
    return Outcome(result.is_error, everything, structured)


def refused(outcome: Outcome, attacker: Attacker) -> str:
    """The outcome's error message, after checking nothing reached or came from the attacker."""
    assert attacker.seen == [], attacker.seen
    assert MARKER not in outcome.text
    assert outcome.is_error, outcome.text[:300]
    return outcome.text


# --- dashboard uids -----------------------------------------------------------------------------


def hostile_uids(attacker: Attacker) -> list[str]:
    host, url = attacker.host, attacker.url
    return [
        "../../api/admin/users",
        "..%2F..%2Fapi%2Fadmin%2Fusers",
        "..",
        ".",
        "%2e%2e",
        f"//{host}/x",
        f"{url}/",
        f"@{host}",
        f"x@{host}/api",
        "x?orgId=2&uid=y",
        "x#/../../api/admin/users",
        "..\\..\\api\\admin\\users",
        f"x\r\nHost: {host}\r\n\r\nGET /smuggled HTTP/1.1",
        "x\nX-Injected: 1",
        "\u2025\u2215api\u2215admin",  # two-dot leader, division slash
        "\uff0e\uff0e\uff0fapi\uff0fadmin",  # fullwidth dots and solidus
        "x" * 10_000,
        "",
    ]


# Where a uid may lead on the configured Grafana: its dashboard route, one segment long, and the
# search and health calls that surround it.
ALLOWED_GRAFANA = re.compile(
    r"/api/health|/api/search\?[^#]*|/api/dashboards/uid/(?!\.\.?$)[^/?#]+"
)

UID_TOOLS: dict[str, dict[str, Any]] = {
    "get_dashboard": {},
    "check_dashboard": {},
    "screenshot_dashboard": {},
    "screenshot_panel": {"panel": "GPUs"},
    "verify_dashboard": {"expectations": ["Lines are drawn"]},
    "draft_scenario": {},
}


@pytest.mark.parametrize("tool", sorted(UID_TOOLS))
async def test_a_dashboard_uid_cannot_lead_elsewhere(
    tool: str, attacker: Attacker, fake_grafana: FakeGrafanaAPI, grafana_url: str
) -> None:
    key = "dashboard" if tool in ("verify_dashboard", "draft_scenario") else "uid"
    async with Client(build_server(make_settings(grafana_url=grafana_url))) as client:
        for uid in hostile_uids(attacker):
            refused(await call(client, tool, {key: uid, **UID_TOOLS[tool]}), attacker)
    strays = [path for path, _ in fake_grafana.requests if not ALLOWED_GRAFANA.fullmatch(path)]
    assert strays == [], "requests off the dashboard route"


# --- redirects ----------------------------------------------------------------------------------


async def test_grafana_api_redirects_to_elsewhere_are_not_followed(
    attacker: Attacker, fake_grafana: FakeGrafanaAPI, grafana_url: str
) -> None:
    dashboard = f"/api/dashboards/uid/{FIXTURE_UID}"
    async with Client(build_server(make_settings(grafana_url=grafana_url))) as client:
        # The browser reads Grafana's version first (and keeps it).
        fake_grafana.redirects = {"/api/health": f"{attacker.url}/api/health"}
        health = refused(await call(client, "screenshot_dashboard", {"uid": "x"}), attacker)
        fake_grafana.redirects = {dashboard: f"{attacker.url}/api/dashboards/uid/x"}
        direct = refused(await call(client, "get_dashboard", {"uid": FIXTURE_UID}), attacker)
        # One hop stays on Grafana, the next leaves it.
        fake_grafana.redirects = {dashboard: "/hop", "/hop": f"//{attacker.host}/x"}
        two_hops = refused(await call(client, "get_dashboard", {"uid": FIXTURE_UID}), attacker)
        fake_grafana.redirects = {"/api/search": f"{attacker.url}/api/search"}
        search = refused(await call(client, "list_dashboards", {}), attacker)
        # The browser tools read the dashboard through the API first.
        fake_grafana.redirects = {dashboard: f"{attacker.url}/api/dashboards/uid/x"}
        browser = refused(await call(client, "check_dashboard", {"uid": FIXTURE_UID}), attacker)
    for message in (direct, two_hops, search):
        assert "not followed" in message and attacker.host in message
    assert "HTTP 302" in browser, browser
    assert "HTTP 302" in health, health


async def test_grafana_page_redirects_to_elsewhere_are_refused(
    attacker: Attacker, fake_grafana: FakeGrafanaAPI, grafana_url: str, chromium: str
) -> None:
    settings = make_settings(grafana_url=grafana_url, grafana={"chromium_path": chromium})
    async with Client(build_server(settings)) as client:
        fake_grafana.redirects = {f"/d/{FIXTURE_UID}": f"{attacker.url}/stolen"}
        page = refused(await call(client, "check_dashboard", {"uid": FIXTURE_UID}), attacker)
        fake_grafana.redirects = {f"/d-solo/{FIXTURE_UID}": f"//{attacker.host}/solo"}
        panel_id = await first_panel_id(client)
        solo = refused(
            await call(
                client, "screenshot_panel", {"uid": FIXTURE_UID, "panel": panel_id, "solo": True}
            ),
            attacker,
        )
    assert f"refused to open {attacker.url}/stolen" in page
    assert f"refused to open {attacker.url}/solo" in solo


async def first_panel_id(client: Client) -> str:
    spec = (await client.call_tool("get_dashboard", {"uid": FIXTURE_UID})).structured_content
    assert spec is not None
    return str(spec["panels"][0]["id"])


# --- panel titles -------------------------------------------------------------------------------


def titles_on_the_page(attacker: Attacker) -> list[str]:
    url = attacker.url
    return [
        f"{url}/",
        f"\"]); fetch('{url}/js'); //",
        f"'], img[src='{url}/css'], a[href='",
        f"<img src='{url}/img'>",
        "*",
    ]


def titles_not_on_the_page(attacker: Attacker) -> list[str]:
    url = attacker.url
    return [f"{url}/other", f"\"]); fetch('{url}/other'); //", "**", "0", "t" * 10_000]


def hostile_dashboard(titles: list[str]) -> dict[str, Any]:
    panels = [
        {
            "id": number,
            "type": "stat",
            "title": title,
            "gridPos": {"x": 0, "y": 4 * number, "w": 24, "h": 4},
            "targets": [{"refId": "A", "expr": "vector(1)"}],
        }
        for number, title in enumerate(titles, 1)
    ]
    return {"uid": "hostile-titles", "title": "Hostile titles", "panels": panels}


async def test_panel_titles_are_matched_as_text(
    attacker: Attacker, tmp_path: Path, chromium: str
) -> None:
    on_page = titles_on_the_page(attacker)
    (tmp_path / "hostile.json").write_text(json.dumps(hostile_dashboard(on_page)))
    # Panels query a Prometheus that is down: they show errors, which is all this needs.
    with GrafanaStandIn(tmp_path, unreachable_url()) as grafana:
        settings = make_settings(grafana_url=grafana.url, grafana={"chromium_path": chromium})
        async with Client(build_server(settings)) as client:
            for title in titles_not_on_the_page(attacker):
                arguments = {"uid": "hostile-titles", "panel": title}
                missing = await call(client, "screenshot_panel", arguments)
                assert "has no panel" in refused(missing, attacker)
            for title in (on_page[1], "*"):  # each a page load: the selector-like ones
                arguments = {"uid": "hostile-titles", "panel": title}
                shot = await call(client, "screenshot_panel", arguments)
                assert not shot.is_error, shot.text[:300]
                assert shot.text.startswith(f"Panel {title!r} of hostile-titles")
            check = await call(client, "check_dashboard", {"uid": "hostile-titles"})
    assert not check.is_error, check.text[:300]
    assert check.structured is not None
    assert [panel["title"] for panel in check.structured["panels"]] == on_page  # read as text
    assert attacker.seen == []
    assert MARKER not in check.text + shot.text


# --- PromQL -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # as sent, still encoded
    raw_query: str  # as sent, still encoded
    queries: list[str]  # the decoded values of every ``query`` parameter
    host: str


@dataclass
class FakePrometheus:
    """Prometheus' query API, recording each request as it arrived."""

    redirect_to: str | None = None
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            self.seen.append(
                Seen(
                    request.method,
                    request.raw_path.split("?")[0],
                    request.raw_path.partition("?")[2],
                    request.query.getall("query", []),
                    request.host,
                )
            )
            if self.redirect_to is not None:
                raise web.HTTPFound(self.redirect_to)
            result = [{"metric": {"__name__": "up"}, "value": [1.0, "1"]}]
            data = {"resultType": "vector", "result": result}
            if request.path.endswith("query_range"):
                data = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "1"]]}]}
            return web.json_response({"status": "success", "data": data})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[FakePrometheus, str]]:
    fake = FakePrometheus()
    async with serve(fake.app()) as url:
        yield fake, url


def hostile_queries(attacker: Attacker) -> list[str]:
    host, url = attacker.host, attacker.url
    return [
        f"up @ {host}",
        f"{url}/api/v1/query?query=up",
        f"//{host}/api/v1/query",
        f"@{host}",
        "/../api/v1/admin/tsdb/delete_series?match[]=up",
        "../../api/v1/admin/tsdb/delete_series",
        f"up\r\nHost: {host}\r\n\r\nGET /smuggled HTTP/1.1",
        "up&query=vector(666)&time=0",
        f'up{{job="x"}} # {url}',
        f"up#{url}",
        "up\x00",
    ]


async def test_promql_reaches_only_the_configured_query_api(
    attacker: Attacker, prometheus: tuple[FakePrometheus, str]
) -> None:
    fake, url = prometheus
    configured_host = url.removeprefix("http://")
    async with Client(build_server(make_settings(prometheus_url=url))) as client:
        for expr in hostile_queries(attacker):
            for extra, path in (
                ({}, "/api/v1/query"),
                ({"start": "now-5m"}, "/api/v1/query_range"),
            ):
                fake.seen.clear()
                outcome = await call(client, "query_prometheus", {"expr": expr, **extra})
                assert not outcome.is_error, outcome.text[:300]
                [seen] = fake.seen
                assert (seen.method, seen.path, seen.host) == ("GET", path, configured_host)
                assert seen.queries == [expr.strip()]  # one parameter, the whole expression
                assert not set(seen.raw_query) & set("\r\n\x00 #"), seen.raw_query
    assert attacker.seen == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"expr": "up or " * 174_763}, "the limit is 10000"),  # 1 MiB
        ({"expr": "up", "time": "{url}/"}, "cannot read time"),
        ({"expr": "up", "start": "now-1h", "step": "1s&query=vector(1)"}, "cannot read duration"),
        ({"expr": "up", "start": "//{host}/x"}, "cannot read time"),
        ({"expr": "up", "start": "now-1h", "end": "now-1h@{host}"}, "cannot read"),
    ],
)
async def test_promql_arguments_that_break_the_limits_are_refused_before_any_request(
    attacker: Attacker,
    prometheus: tuple[FakePrometheus, str],
    arguments: dict[str, str],
    message: str,
) -> None:
    fake, url = prometheus
    filled = {k: v.format(url=attacker.url, host=attacker.host) for k, v in arguments.items()}
    async with Client(build_server(make_settings(prometheus_url=url))) as client:
        answer = refused(await call(client, "query_prometheus", filled), attacker)
    assert message in answer
    assert len(answer) < 1000  # the refused expression is not echoed back
    assert fake.seen == []


async def test_a_prometheus_redirect_to_elsewhere_is_not_followed(
    attacker: Attacker, prometheus: tuple[FakePrometheus, str]
) -> None:
    fake, url = prometheus
    fake.redirect_to = f"{attacker.url}/api/v1/query?query=up"
    async with Client(build_server(make_settings(prometheus_url=url))) as client:
        answer = refused(await call(client, "query_prometheus", {"expr": "up"}), attacker)
    assert "not followed" in answer and "PROMETHEUS_URL" in answer


# --- scenario files -----------------------------------------------------------------------------

GOOD = "name: {name}\ndashboard: inferwatch-gpus\nexpect: [Lines are drawn]\n"


def scenario_folder(tmp_path: Path) -> Path:
    """scenarios/ with one good file, and links out of it to files that hold ``SECRET``."""
    folder = tmp_path / "scenarios"
    (folder / "sub").mkdir(parents=True)
    (folder / "gpus.yaml").write_text(GOOD.format(name="gpus"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(GOOD.format(name=SECRET))
    (outside / "secret.txt").write_text(f"{SECRET}: not yaml: [\n")
    (folder / "link.yaml").symlink_to(outside / "secret.yaml")
    (folder / "text-link.yaml").symlink_to(outside / "secret.txt")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    return folder


def scenario_settings(folder: Path) -> Settings:
    settings = make_settings()
    settings.harness = settings.harness.model_copy(update={"scenarios_dir": folder})
    settings.judge = settings.judge.model_copy(
        update={"api_key": None, "cache_dir": folder.parent / "verdicts"}
    )
    return settings


def hostile_paths(tmp_path: Path) -> list[str]:
    return [
        "sub/../../outside/secret.yaml",
        str(tmp_path / "outside" / "secret.yaml"),
        "link.yaml",
        "text-link.yaml",
        "linked/secret.yaml",
        "gpus.yaml\x00../outside/secret.yaml",
        "\x00",
        "%2e%2e/outside/secret.yaml",
        "..\\outside\\secret.yaml",
        "~/secret.yaml",
        "x" * 10_000 + ".yaml",
        "/" + "a/" * 3000 + "b.yaml",
    ]


@pytest.mark.parametrize(
    ("tool", "key", "extra"),
    [("validate_scenario", "path", {"online": False}), ("run_scenario", "name", {})],
)
async def test_scenario_paths_stay_in_the_scenarios_folder(
    tmp_path: Path, tool: str, key: str, extra: dict[str, Any]
) -> None:
    folder = scenario_folder(tmp_path)
    async with Client(build_server(scenario_settings(folder))) as client:
        for path in hostile_paths(tmp_path):
            outcome = await call(client, tool, {key: path, **extra})
            assert outcome.is_error, f"{path[:80]!r}: {outcome.text[:300]}"
            assert SECRET not in outcome.text
        # The folder's own file still loads.
        good = await call(client, tool, {key: "gpus.yaml", **extra})
    if tool == "validate_scenario":
        assert not good.is_error and '"name": "gpus"' in good.text
    else:
        assert "ANTHROPIC_API_KEY is not set" in good.text


async def test_list_scenarios_does_not_follow_links_out_of_the_folder(tmp_path: Path) -> None:
    folder = scenario_folder(tmp_path)
    async with Client(build_server(scenario_settings(folder))) as client:
        listing = await call(client, "list_scenarios", {})
        by_name = await call(client, "run_scenario", {"name": SECRET})
    assert listing.structured is not None, listing.text[:300]
    assert [info["name"] for info in listing.structured["scenarios"]] == ["gpus"]
    assert sorted(listing.structured["problems"]) == [
        f"{name}: links outside the scenarios folder; not read"
        for name in ("link.yaml", "text-link.yaml")
    ]
    assert SECRET not in listing.text
    assert by_name.is_error and by_name.text.endswith("; scenarios: gpus")
