"""The server as a whole: its tool list, optional tool modules, and the shared context."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from mcp_server import server as server_module
from mcp_server.context import ServerContext
from mcp_server.server import InferwatchServer, build_server, optional_register
from tests.mcp_server.support import make_settings, structured
from tests.mcp_server.tools_list_size import measure, report

DATA_TOOLS = {
    "agent_status",
    "list_models",
    "list_gpus",
    "query_prometheus",
    "list_dashboards",
    "get_dashboard",
}


def _keys(schema: object) -> set[str]:
    """Every keyword used anywhere in a schema, property names excluded."""
    if isinstance(schema, list):
        return set().union(*map(_keys, schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            found |= set().union(*map(_keys, value.values())) if value else set()
        else:
            found |= _keys(value)
    return found


async def test_data_tools_are_listed_read_only_with_compact_schemas() -> None:
    async with Client(build_server(make_settings())) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= DATA_TOOLS
    for name in DATA_TOOLS:
        tool = tools[name]
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is False
        assert tool.description and len(tool.description) <= 100, name
        assert tool.output_schema is not None, name
        assert "title" not in _keys(tool.input_schema), name
        assert not {"title", "default"} & _keys(tool.output_schema), name
    # A property named "title" is data, not the keyword: it stays.
    dashboard_schema = tools["get_dashboard"].output_schema or {}
    assert "title" in dashboard_schema["$defs"]["PanelSpec"]["properties"]
    assert tools["query_prometheus"].input_schema["required"] == ["expr"]


async def test_tools_list_size_of_the_data_tools() -> None:
    sizes = await measure()
    print("\n" + report(sizes))
    ours = {name: size for name, size in sizes["tools"].items() if name in DATA_TOOLS}
    # Budgets with headroom: a description or model that grows past them is worth a look.
    assert sum(size["without_output"] for size in ours.values()) < 3_000
    assert sum(size["bytes"] for size in ours.values()) < 12_000


def test_a_missing_optional_module_is_skipped() -> None:
    assert optional_register("mcp_server.no_such_tools") is None


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> str:
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_an_import_error_inside_an_optional_module_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _module(tmp_path, monkeypatch, "iw_broken_tools", "import iw_missing_dependency\n")
    with pytest.raises(ModuleNotFoundError, match="iw_missing_dependency"):
        optional_register(name)


async def test_optional_modules_register_their_tools_with_the_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _module(
        tmp_path,
        monkeypatch,
        "iw_extra_tools",
        "def register(server, ctx):\n"
        "    @server.tool()\n"
        "    async def grafana_origin() -> str:\n"
        '        """Where Grafana is."""\n'
        "        return ctx.settings.grafana.url\n",
    )
    monkeypatch.setattr(server_module, "OPTIONAL_TOOL_MODULES", (name,))
    settings = make_settings(grafana_url="http://127.0.0.1:3999")
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("grafana_origin", {})
    assert structured(result) == {"result": "http://127.0.0.1:3999"}


class Browser:
    """Stands for any long-lived object a tool module keeps (a browser, say)."""

    made = 0

    def __init__(self) -> None:
        Browser.made += 1
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_lazy_makes_one_instance_however_many_ask_at_once() -> None:
    ctx = ServerContext(make_settings())
    got: list[Browser] = []
    before = Browser.made

    async def make() -> Browser:
        await anyio.sleep(0.01)  # callers overlap while the first one is being made
        return Browser()

    async def ask() -> None:
        got.append(await ctx.lazy("browser", make))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(ask)
    assert Browser.made - before == 1
    assert all(instance is got[0] for instance in got)
    assert await ctx.lazy("browser", Browser) is got[0]  # a sync factory works too
    await ctx.aclose()
    assert got[0].closed


async def test_a_failing_factory_leaves_nothing_behind() -> None:
    ctx = ServerContext(make_settings())

    def fail() -> Browser:
        raise RuntimeError("no browser here")

    with pytest.raises(RuntimeError, match="no browser here"):
        await ctx.lazy("browser", fail)
    assert isinstance(await ctx.lazy("browser", Browser), Browser)
    await ctx.aclose()


async def test_the_last_session_out_closes_lazy_objects_and_the_next_gets_new_ones() -> None:
    server: InferwatchServer = build_server(make_settings())
    ctx = server.context
    async with Client(server), Client(server):
        first = await ctx.lazy("browser", Browser)
    assert first.closed
    async with Client(server):
        second = await ctx.lazy("browser", Browser)
        assert second is not first
        assert not second.closed
    assert second.closed
    assert ctx.resources == [ctx.agent, ctx.prometheus, ctx.grafana]


async def test_clients_reopen_after_the_context_closed(
    grafana_server: InferwatchServer,
) -> None:
    for _ in range(2):
        async with Client(grafana_server) as client:
            listed = structured(await client.call_tool("list_dashboards", {"query": "fixture"}))
            assert [d["uid"] for d in listed["dashboards"]] == ["inferwatch-fixture"]
