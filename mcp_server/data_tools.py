"""The read-only data tools: the agent's API, Prometheus queries, Grafana's dashboard API.

Each tool is a thin call into a client on the ``ServerContext``; descriptions stay short
because every client pays for them in tokens on every conversation.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.agent_client import AgentStatus, GpuList, ModelList
from mcp_server.context import ServerContext, tool_errors
from mcp_server.grafana.models import DashboardSpec, DashboardSummary
from mcp_server.prometheus import QueryResult

# They only read, and only from the configured agent, Prometheus and Grafana.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


class DashboardList(BaseModel):
    dashboards: list[DashboardSummary]


def register(server: MCPServer[Any], ctx: ServerContext) -> None:
    @server.tool(annotations=READ_ONLY)
    async def agent_status() -> AgentStatus:
        """inferwatch agent readiness and each source's poll status (up, last error)."""
        with tool_errors():
            return await ctx.agent.status()

    @server.tool(annotations=READ_ONLY)
    async def list_models() -> ModelList:
        """Served models: LiteLLM routes, vLLM instances, GPUs, Hub metadata, Langfuse usage."""
        with tool_errors():
            return await ctx.agent.models()

    @server.tool(annotations=READ_ONLY)
    async def list_gpus() -> GpuList:
        """GPUs: utilization, memory, temperature, power, processes by container."""
        with tool_errors():
            return await ctx.agent.gpus()

    @server.tool(annotations=READ_ONLY)
    async def query_prometheus(
        expr: Annotated[str, Field(description="PromQL")],
        time: Annotated[str | None, Field(description="instant query time; default now")] = None,
        start: Annotated[str | None, Field(description="range start (makes a range query)")] = None,
        end: Annotated[str | None, Field(description="range end; default now")] = None,
        step: Annotated[str | None, Field(description="range step, e.g. 30s, 5m")] = None,
    ) -> QueryResult:
        """Run a PromQL query, instant or range. Times: now-1h, unix seconds or RFC 3339."""
        with tool_errors():
            return await ctx.prometheus.query(expr, time=time, start=start, end=end, step=step)

    @server.tool(annotations=READ_ONLY)
    async def list_dashboards(
        query: Annotated[str, Field(description="title search")] = "",
        tag: Annotated[str | None, Field(description="only dashboards with this tag")] = None,
    ) -> DashboardList:
        """Grafana dashboards: uid, title, url, tags, folder."""
        with tool_errors():
            return DashboardList(dashboards=await ctx.grafana.search(query, tag))

    @server.tool(annotations=READ_ONLY)
    async def get_dashboard(
        uid: Annotated[str, Field(description="dashboard uid")],
    ) -> DashboardSpec:
        """A Grafana dashboard's panels (id, title, type, queries, unit, row), variables, time."""
        with tool_errors():
            return await ctx.grafana.dashboard(uid)
