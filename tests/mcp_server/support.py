"""Helpers the MCP server tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any

from mcp_types import CallToolResult, TextContent

from mcp_server.settings import Settings
from tests.stack import free_port


def unreachable_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


def make_settings(
    *,
    agent_url: str | None = None,
    prometheus_url: str | None = None,
    grafana_url: str | None = None,
    upstream: dict[str, Any] | None = None,
    grafana: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> Settings:
    """Settings for tests: everything explicit, nothing taken from the caller's GRAFANA_* env."""
    return Settings(
        upstream={
            "agent_url": agent_url or unreachable_url(),
            "prometheus_url": prometheus_url or unreachable_url(),
            "http_timeout_seconds": 5.0,
            **(upstream or {}),
        },
        grafana={
            "url": grafana_url or unreachable_url(),
            "service_account_token": None,
            "user": None,
            "password": None,
            "http_timeout_seconds": 5.0,
            **(grafana or {}),
        },
        server=server or {},
    )


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def error_text(result: CallToolResult) -> str:
    """The message of a failed tool call (fails the test if the call succeeded)."""
    assert result.is_error, f"expected an error, got {result.structured_content}"
    return text(result)


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful tool call (fails the test on an error)."""
    assert not result.is_error, text(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content
