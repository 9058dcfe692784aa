"""``inferwatch-mcp``: the MCP server over stdio (default) or streamable HTTP at ``/mcp``.

Logs go to stderr only: over stdio, stdout is the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from mcp_server.http_security import (
    MCP_PATH,
    BindRefused,
    check_bind,
    configured_token,
    http_app,
    is_loopback,
)
from mcp_server.server import InferwatchServer, build_server
from mcp_server.settings import ServerSettings, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch-mcp",
        description="MCP server: the inferwatch agent, Prometheus and Grafana as read-only tools.",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "streamable-http"),
        help="default stdio (INFERWATCH_MCP_TRANSPORT)",
    )
    parser.add_argument("--host", help="HTTP bind address, default 127.0.0.1")
    parser.add_argument("--port", type=int, help="HTTP port, default 8765")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="env file with settings (like .env)"
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="default INFO (INFERWATCH_MCP_LOG_LEVEL)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config is not None and not args.config.is_file():
        print(f"inferwatch-mcp: config file {args.config} does not exist", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("transport", args.transport),
            ("host", args.host),
            ("port", args.port),
            ("log_level", args.log_level),
        )
        if value is not None
    }
    try:
        settings = Settings(env_file=args.config, server=overrides)
    except ValueError as exc:  # pydantic's ValidationError names every bad setting
        print(f"inferwatch-mcp: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.server.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    server = build_server(settings)
    try:
        if settings.server.transport == "stdio":
            server.run("stdio")
            return 0
        return _serve_http(server, settings.server)
    except KeyboardInterrupt:
        return 0


def _serve_http(server: InferwatchServer, settings: ServerSettings) -> int:
    try:
        check_bind(settings.host, configured_token(settings))
    except BindRefused as exc:
        print(f"inferwatch-mcp: {exc}", file=sys.stderr)
        return 2
    app = http_app(server, settings.host, settings.port, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # our stderr logging, not uvicorn's (whose access log goes to stdout)
        log_level=settings.log_level.lower(),
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    )
    log = logging.getLogger(__name__)
    log.info(
        "MCP endpoint at http://%s:%d%s (bearer token %s)",
        settings.host,
        settings.port,
        MCP_PATH,
        "required" if configured_token(settings) is not None else "off",
    )
    if not is_loopback(settings.host) and not settings.allowed_hosts:
        log.warning(
            "listening on %s, but only loopback Host headers are accepted: add the name clients "
            "use (host:port) to INFERWATCH_MCP_ALLOWED_HOSTS",
            settings.host,
        )
    asyncio.run(uvicorn.Server(config).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
