from __future__ import annotations

import asyncio
import gzip
import socket

import pytest
from aiohttp import web

from agent.upstream import (
    BadStatus,
    Malformed,
    TimedOut,
    TooLarge,
    Unreachable,
    fetch,
    new_client,
    redact_url,
)
from tests.fakes.http import serve


def _app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        for _ in range(40_000):  # 2.6 GB if nobody stops reading; the client must
            await response.write(chunk)
        return response

    async def declared_huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 2048)

    async def bomb(request: web.Request) -> web.Response:
        body = gzip.compress(b"\0" * (20 * 1024 * 1024))
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=503, text="draining")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/ok")

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="{not json")

    app = web.Application()
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/endless", endless),
            web.get("/declared", declared_huge),
            web.get("/bomb", bomb),
            web.get("/hang", hang),
            web.get("/503", teapot),
            web.get("/redirect", redirect),
            web.get("/notjson", not_json),
        ]
    )
    return app


async def test_reads_a_body_and_follows_redirects() -> None:
    async with serve(_app()) as base, new_client(2) as client:
        reply = await fetch(client, base + "/redirect", max_bytes=100)
        assert reply.body == b"hello"


async def test_an_endless_body_is_cut_at_the_cap() -> None:
    async with serve(_app()) as base, new_client(5) as client:
        with pytest.raises(TooLarge, match="exceeds cap of 1048576 bytes"):
            await fetch(client, base + "/endless", max_bytes=1024 * 1024)


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    async with serve(_app()) as base, new_client(2) as client:
        with pytest.raises(TooLarge, match="2048 bytes exceeds cap 1000"):
            await fetch(client, base + "/declared", max_bytes=1000)


async def test_a_gzip_bomb_cannot_expand_past_the_cap() -> None:
    async with serve(_app()) as base, new_client(2) as client:
        with pytest.raises(TooLarge, match="decompressed"):
            await fetch(client, base + "/bomb", max_bytes=1024 * 1024)


async def test_a_hang_becomes_a_timeout() -> None:
    async with serve(_app()) as base, new_client(0.3) as client:
        with pytest.raises(TimedOut, match="/hang: no answer within the timeout"):
            await fetch(client, base + "/hang", max_bytes=100)


async def test_refused_connection_is_unreachable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with new_client(2) as client:
        with pytest.raises(Unreachable, match=f"127.0.0.1:{port}/x: ConnectError"):
            await fetch(client, f"http://127.0.0.1:{port}/x", max_bytes=100)


async def test_bad_status_carries_status_and_body() -> None:
    async with serve(_app()) as base, new_client(2) as client:
        with pytest.raises(BadStatus, match="HTTP 503 draining") as caught:
            await fetch(client, base + "/503", max_bytes=100)
    assert caught.value.status == 503


async def test_invalid_json_is_malformed_and_names_what() -> None:
    async with serve(_app()) as base, new_client(2) as client:
        reply = await fetch(client, base + "/notjson", max_bytes=100)
        with pytest.raises(Malformed, match="model list: invalid JSON"):
            reply.json("model list")


async def test_errors_never_echo_credentials_in_urls() -> None:
    async with serve(_app()) as base, new_client(2) as client:
        url = base.replace("http://", "http://admin:hunter2@") + "/503"
        with pytest.raises(BadStatus) as caught:
            await fetch(client, url, max_bytes=100)
    assert "hunter2" not in str(caught.value)


def test_redact_url_drops_userinfo_and_query() -> None:
    assert (
        redact_url("https://u:p@api.example:8443/v1?key=s3cret#x") == "https://api.example:8443/v1"
    )
    assert redact_url("") == ""


async def test_an_upstream_echoing_our_key_does_not_leak_it() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=401, text=f"invalid token: {request.headers['Authorization']}")

    app = web.Application()
    app.add_routes([web.get("/echo", echo)])
    async with serve(app) as base, new_client(2) as client:
        with pytest.raises(BadStatus) as caught:
            await fetch(
                client,
                base + "/echo",
                max_bytes=1000,
                headers={"Authorization": "Bearer sk-live-0123456789"},
            )
    assert "sk-live-0123456789" not in str(caught.value)
    assert "invalid token: <redacted>" in str(caught.value)
