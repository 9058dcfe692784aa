"""``python -m mcp_server`` as a client starts it: over stdio, and over streamable HTTP with its
guards (bearer token, Host and Origin checks, body size limit, loopback-only without a token)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_server.support import structured, unreachable_url
from tests.stack import REPO, free_port, stop

HTTP_COMMAND = (sys.executable, "-m", "mcp_server", "--transport", "streamable-http")
TOKEN = "test-token-7d1f0c9e5b"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "inferwatch-tests", "version": "1"},
    },
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _quiet_env(**extra: str) -> dict[str, str]:
    """The server's environment: nothing of ours leaks in from the caller's settings."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("INFERWATCH_", "GRAFANA_"))}
    return {
        **keep,
        "PROMETHEUS_URL": unreachable_url(),
        "GRAFANA_URL": unreachable_url(),
        **extra,
    }


async def test_stdio_lists_tools_and_calls_one(demo_agent_url: str, tmp_path: Path) -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server", "--log-level", "debug"],
        env=_quiet_env(INFERWATCH_AGENT_URL=demo_agent_url),
        cwd=REPO,
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(parameters, errlog=errlog)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            status = structured(await client.call_tool("agent_status", {}))
    assert {"agent_status", "query_prometheus", "get_dashboard"} <= names
    assert status["ready"] is True
    # DEBUG logging was on and the protocol on stdout still worked: the logs went to stderr.
    assert "DEBUG" in (tmp_path / "stderr.log").read_text()


class HTTPServer:
    def __init__(self, port: int, process: subprocess.Popen[bytes], logs: Path) -> None:
        self.port = port
        self.process = process
        self.logs = logs
        self.url = f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def http_server(
    demo_agent_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HTTPServer]:
    port = free_port()
    logs = tmp_path_factory.mktemp("mcp-http")
    env = _quiet_env(
        INFERWATCH_AGENT_URL=demo_agent_url,
        INFERWATCH_MCP_TOKEN=TOKEN,
        INFERWATCH_MCP_ALLOWED_HOSTS=f"mcp.example.test:{port}",
        INFERWATCH_MCP_ALLOWED_ORIGINS="https://console.example.test",
        INFERWATCH_MCP_MAX_REQUEST_BYTES="65536",
    )
    with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*HTTP_COMMAND, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
        )
    server = HTTPServer(port, process, logs)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        stop(process)


def _wait_until_listening(server: HTTPServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"inferwatch-mcp exited with {server.process.returncode}: "
                + (server.logs / "stderr").read_text()[-2000:]
            )
        try:
            httpx.get(server.url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{server.url} did not answer within {timeout:g}s")


def _post(server: HTTPServer, headers: dict[str, str], body: bytes | None = None) -> httpx.Response:
    content = json.dumps(INITIALIZE).encode() if body is None else body
    return httpx.post(server.url, content=content, headers={**MCP_HEADERS, **headers}, timeout=10)


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_streamable_http_client_with_the_token(http_server: HTTPServer) -> None:
    http = httpx2.AsyncClient(headers=BEARER, timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(http_server.url, http_client=http)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        status = structured(await client.call_tool("agent_status", {}))
    assert "list_gpus" in names
    assert status["ready"] is True


def test_no_token_is_401_with_a_challenge(http_server: HTTPServer) -> None:
    response = _post(http_server, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="inferwatch-mcp"'
    assert "INFERWATCH_MCP_TOKEN" in response.json()["error"]


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN[:-1]}"]
)
def test_a_wrong_token_is_401(http_server: HTTPServer, authorization: str) -> None:
    response = _post(http_server, {"Authorization": authorization})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}"]
)
def test_a_foreign_host_is_refused(http_server: HTTPServer, host: str) -> None:
    response = _post(http_server, {**BEARER, "Host": host.format(port=http_server.port)})
    assert response.status_code == 421
    assert "Host" in response.text


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://localhost:1", "https://console.example.test:444"]
)
def test_a_foreign_origin_is_refused(http_server: HTTPServer, origin: str) -> None:
    response = _post(http_server, {**BEARER, "Origin": origin})
    assert response.status_code == 403
    assert "Origin" in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "localhost:{port}", "Origin": "http://localhost:{port}"},
        {"Host": "[::1]:{port}"},
        {"Host": "mcp.example.test:{port}"},  # INFERWATCH_MCP_ALLOWED_HOSTS
        {"Origin": "https://console.example.test"},  # INFERWATCH_MCP_ALLOWED_ORIGINS
    ],
)
def test_allowed_hosts_and_origins_pass(http_server: HTTPServer, headers: dict[str, str]) -> None:
    filled = {key: value.format(port=http_server.port) for key, value in headers.items()}
    response = _post(http_server, {**BEARER, **filled})
    assert response.status_code == 200, response.text


def test_a_body_over_the_limit_is_413(http_server: HTTPServer) -> None:
    response = _post(http_server, BEARER, body=b"[" + b" " * 70_000 + b"]")
    assert response.status_code == 413


def test_logs_go_to_stderr_only(http_server: HTTPServer) -> None:
    assert _post(http_server, BEARER).status_code == 200
    assert (http_server.logs / "stdout").read_bytes() == b""
    assert TOKEN not in (http_server.logs / "stderr").read_text()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_refuses_to_listen_beyond_loopback_without_a_token(host: str) -> None:
    finished = subprocess.run(
        [*HTTP_COMMAND, "--host", host, "--port", str(free_port())],
        cwd=REPO,
        env=_quiet_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "INFERWATCH_MCP_TOKEN" in finished.stderr
    assert finished.stdout == ""
