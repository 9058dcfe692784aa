"""The inferwatch MCP server: one ``ServerContext``, the data tools, and the tools of optional
modules (``browser_tools``, ``scenario_tools``) when they are installed.

A module adds tools by defining ``register(server, ctx)``; it is imported by name, and only its
absence is forgiven (an import error inside it still raises).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import Tool

from mcp_server import data_tools
from mcp_server.context import ServerContext
from mcp_server.settings import Settings

# Registered in this order, after the data tools.
OPTIONAL_TOOL_MODULES = ("mcp_server.browser_tools", "mcp_server.scenario_tools")

INSTRUCTIONS = (
    "Watches a self-hosted LLM stack (LiteLLM, vLLM, GPUs, Langfuse) through the inferwatch "
    "agent, Prometheus and Grafana."
)

Register = Callable[[MCPServer[Any], ServerContext], None]


def _version() -> str:
    try:
        return version("inferwatch")
    except PackageNotFoundError:  # a source tree without an install
        return "0.0.0+unknown"


class InferwatchServer(MCPServer[ServerContext]):
    """``MCPServer`` holding its ``ServerContext``, listing tools with compact schemas."""

    def __init__(self, ctx: ServerContext) -> None:
        @asynccontextmanager
        async def lifespan(_: MCPServer[ServerContext]) -> AsyncIterator[ServerContext]:
            ctx.enter()
            try:
                yield ctx
            finally:
                await ctx.leave()

        super().__init__(
            "inferwatch",
            instructions=INSTRUCTIONS,
            version=_version(),
            lifespan=lifespan,
            log_level=ctx.settings.server.log_level,
        )
        self.context = ctx

    async def list_tools(self) -> list[Tool]:
        # pydantic titles every schema and property after its name, and gives results defaults:
        # bytes every client pays for that say nothing new. Validation is unchanged.
        return [
            tool.model_copy(
                update={
                    "input_schema": compact_schema(tool.input_schema, drop=("title",)),
                    "output_schema": compact_schema(tool.output_schema, drop=("title", "default"))
                    if tool.output_schema is not None
                    else None,
                }
            )
            for tool in await super().list_tools()
        ]


_NAMED_SUBSCHEMAS = ("properties", "$defs", "definitions", "patternProperties")


def compact_schema(schema: Any, drop: tuple[str, ...]) -> Any:
    """A JSON Schema without the ``drop`` keywords (a property *named* like one is kept)."""
    if isinstance(schema, list):
        return [compact_schema(item, drop) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in drop:
            continue
        if key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            out[key] = {name: compact_schema(sub, drop) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value, drop)
    return out


def optional_register(module_name: str) -> Register | None:
    """``module_name.register`` if that module exists; None if it does not."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    register: Register = module.register
    return register


def build_server(settings: Settings | None = None) -> InferwatchServer:
    ctx = ServerContext(settings if settings is not None else Settings())
    server = InferwatchServer(ctx)
    data_tools.register(server, ctx)
    for name in OPTIONAL_TOOL_MODULES:
        register = optional_register(name)
        if register is not None:
            register(server, ctx)
    return server
