"""The HTTP guards' decisions (the wire behaviour is in test_transports.py)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from mcp_server.http_security import (
    BindRefused,
    check_bind,
    configured_token,
    is_loopback,
    transport_security,
)
from mcp_server.settings import ServerSettings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]"])
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com", "localhost.evil"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_beyond_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", SecretStr("t0ken"))
    with pytest.raises(BindRefused, match="set INFERWATCH_MCP_TOKEN"):
        check_bind("0.0.0.0", None)


def test_an_empty_token_is_no_token() -> None:
    assert configured_token(ServerSettings(token="")) is None
    assert configured_token(ServerSettings(token="t")) is not None


def test_allowed_hosts_and_origins_carry_the_port() -> None:
    settings = ServerSettings(allowed_hosts="mcp.example.com:443, other:*", allowed_origins="")
    security = transport_security("127.0.0.1", 8765, settings)
    assert security.allowed_hosts == [
        "127.0.0.1:8765",
        "localhost:8765",
        "[::1]:8765",
        "mcp.example.com:443",
        "other:*",
    ]
    assert security.allowed_origins == [
        "http://127.0.0.1:8765",
        "http://localhost:8765",
        "http://[::1]:8765",
    ]


def _plain() -> ServerSettings:
    """No extra hosts or origins, whatever the environment says."""
    return ServerSettings(allowed_hosts=[], allowed_origins=[])


def test_a_bound_address_is_allowed_but_not_a_wildcard() -> None:
    settings = _plain()
    assert "192.0.2.1:8765" in transport_security("192.0.2.1", 8765, settings).allowed_hosts
    assert "[fd00::1]:8765" in transport_security("fd00::1", 8765, settings).allowed_hosts
    assert len(transport_security("0.0.0.0", 8765, settings).allowed_hosts) == 3


def test_an_ephemeral_port_allows_any_port() -> None:
    assert "localhost:*" in transport_security("127.0.0.1", 0, _plain()).allowed_hosts
