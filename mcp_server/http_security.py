"""What guards the streamable-HTTP transport.

- Bind: loopback unless ``INFERWATCH_MCP_TOKEN`` is set (``check_bind``).
- Bearer token: when set, every request needs ``Authorization: Bearer <token>`` (``BearerAuth``,
  compared in constant time; 401 with ``WWW-Authenticate`` otherwise).
- Host and Origin (DNS rebinding) and the body size limit: the MCP SDK's own checks, fed with
  our lists (``transport_security``): a foreign Host gets 421, a foreign Origin 403, a body over
  ``INFERWATCH_MCP_MAX_REQUEST_BYTES`` 413.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.settings import ServerSettings

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_ANY_ADDRESS = ("", "0.0.0.0", "::")


class BindRefused(Exception):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def configured_token(settings: ServerSettings) -> SecretStr | None:
    """``INFERWATCH_MCP_TOKEN``, or None when unset or empty."""
    token = settings.token
    return token if token is not None and token.get_secret_value() else None


def check_bind(host: str, token: SecretStr | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(host) and token is None:
        raise BindRefused(
            f"refusing to listen on {host!r} without a token: set INFERWATCH_MCP_TOKEN to a long "
            "random secret (clients send 'Authorization: Bearer <token>'), or bind to 127.0.0.1"
        )


def _host_header(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def transport_security(host: str, port: int, settings: ServerSettings) -> TransportSecuritySettings:
    """Accepted Host and Origin values: loopback names and the bound address with our port,
    plus ``INFERWATCH_MCP_ALLOWED_HOSTS`` / ``INFERWATCH_MCP_ALLOWED_ORIGINS``."""
    names = list(_LOOPBACK_NAMES)
    if host not in _ANY_ADDRESS and _host_header(host) not in names:
        names.append(_host_header(host))
    port_part = str(port) if port else "*"
    hosts = [f"{name}:{port_part}" for name in names]
    if port == 80:
        hosts += names
    origins = [f"http://{h}" for h in hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *settings.allowed_hosts],
        allowed_origins=[*origins, *settings.allowed_origins],
    )


class BearerAuth:
    """ASGI middleware: every HTTP request must carry the bearer token."""

    def __init__(self, app: ASGIApp, token: SecretStr) -> None:
        self.app = app
        self._digest = hashlib.sha256(token.get_secret_value().encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        supplied = hashlib.sha256(credentials.strip().encode()).digest()
        if scheme.lower() == "bearer" and hmac.compare_digest(supplied, self._digest):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        log.warning(
            "refused %s %s from %s: %s bearer token",
            scope.get("method"),
            scope.get("path"),
            client[0] if client else "?",
            "wrong" if header else "no",
        )
        await _unauthorized(send, supplied=bool(header))


async def _unauthorized(send: Send, supplied: bool) -> None:
    message = (
        "wrong bearer token" if supplied else "missing bearer token"
    ) + ": send 'Authorization: Bearer <token>' with the server's INFERWATCH_MCP_TOKEN"
    body = json.dumps({"error": message}).encode()
    challenge = 'Bearer realm="inferwatch-mcp"' + (', error="invalid_token"' if supplied else "")
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def http_app(server: MCPServer[Any], host: str, port: int, settings: ServerSettings) -> ASGIApp:
    """The server's streamable-HTTP app at ``/mcp`` with every guard above."""
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        max_request_body_size=settings.max_request_bytes,
        transport_security=transport_security(host, port, settings),
        host=host,
    )
    token = configured_token(settings)
    if token is not None:
        app = BearerAuth(app, token)
    return app
