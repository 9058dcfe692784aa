"""Reading from upstreams over HTTP: bounded in time and bytes, with errors a person can act on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import ssl
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx


class UpstreamError(Exception):
    """A read from an upstream failed; the message names what and where."""


class Unreachable(UpstreamError):
    """Connection refused, reset, DNS failure: the upstream is down or restarting."""


class TimedOut(UpstreamError):
    """The upstream did not answer within the timeout."""


class TooLarge(UpstreamError):
    """The answer exceeded the byte cap and was cut off."""


class Malformed(UpstreamError):
    """The answer arrived but could not be parsed."""


class BadStatus(UpstreamError):
    """The upstream answered with a non-success status."""

    def __init__(self, message: str, status: int, body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ConfigError(UpstreamError):
    """The upstream rejected our configuration (credentials): fixing it is the user's move."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    sent_credentials: tuple[str, ...] = field(default=(), repr=False)
    """The credential headers the request carried (the client's auth included)."""

    def json(self, what: str) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise Malformed(f"{what}: invalid JSON ({exc})") from None
        except RecursionError:  # "[[[[..." nested deeper than the parser's stack
            raise Malformed(f"{what}: invalid JSON (nested too deeply)") from None


def _describe(url: httpx.URL | str) -> str:
    # Never echo credentials that may sit in a URL's userinfo or query; a query is also noise
    # (Langfuse's is a 600-character JSON document).
    return redact_url(str(url))


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    ok_statuses: frozenset[int] = frozenset({200}),
) -> Reply:
    """GET ``url``, reading at most ``max_bytes`` of the body.

    Raises an :class:`UpstreamError` subclass for every way the read can fail; a status outside
    ``ok_statuses`` raises :class:`BadStatus` carrying the (capped) body so callers can classify it.
    """
    where = _describe(url)
    try:
        try:
            reply = await _get(client, url, headers, max_bytes, where)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # The server closed (or reset) a kept-alive connection (it restarted): a GET is
            # safe to repeat once, on a fresh connection, as browsers and urllib3 do.
            reply = await _get(client, url, headers, max_bytes, where)
    except (httpx.TimeoutException, TimeoutError):
        raise TimedOut(f"{where}: no answer within the timeout") from None
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        reason = str(exc) or "the connection failed or was closed"
        raise Unreachable(f"{where}: {type(exc).__name__}: {reason}") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{where}: {type(exc).__name__}: {exc}") from None
    except httpx.InvalidURL as exc:  # a URL from a container label or a setting
        raise UpstreamError(f"{where}: invalid URL ({exc})") from None
    if reply.status not in ok_statuses:
        snippet = _scrub(reply.body[:200].decode("utf-8", "replace").strip(), reply)
        raise BadStatus(
            f"{where}: HTTP {reply.status} {snippet}".rstrip(), reply.status, reply.body
        )
    return reply


_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "cookie"})


def _scrub(text: str, reply: Reply) -> str:
    """Remove the credentials we sent from an upstream's error text: some echo what they got
    (the header, its token, or a Basic pair decoded)."""
    for value in reply.sent_credentials:
        scheme, _, token = value.partition(" ")
        secrets = [value, token]
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                pair = base64.b64decode(token, validate=True).decode("utf-8", "replace")
                secrets += [pair, pair.partition(":")[2]]
        for secret in secrets:  # whole value first
            if len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
    return text


async def _get(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None,
    max_bytes: int,
    where: str,
) -> Reply:
    # httpx's timeout bounds each phase; a slow drip of bytes also needs an overall deadline.
    deadline = 2 * (client.timeout.read or 30.0)
    async with asyncio.timeout(deadline), client.stream("GET", url, headers=headers) as response:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"{where}: answer of {int(declared)} bytes exceeds cap {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{where}: answer exceeds cap of {max_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if response.headers.get("content-encoding", "identity") != "identity":
            body = _decode(response, body, where, max_bytes)
        sent = tuple(
            value for name, value in response.request.headers.items() if name in _CREDENTIAL_HEADERS
        )
        return Reply(response.status_code, body, response.headers.get("content-type", ""), sent)


def _decode(response: httpx.Response, raw: bytes, where: str, max_bytes: int) -> bytes:
    """Decompress a compressed body without letting a small bomb expand past the cap."""
    encoding = response.headers["content-encoding"].lower()
    if encoding not in ("gzip", "deflate"):
        raise Malformed(f"{where}: unsupported content-encoding {encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(wbits)
    try:
        body = decompressor.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise Malformed(f"{where}: corrupt {encoding} body ({exc})") from None
    if len(body) > max_bytes or decompressor.unconsumed_tail:
        raise TooLarge(f"{where}: decompressed answer exceeds cap of {max_bytes} bytes")
    return body


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # httpx builds (and loads the CA bundle into) a new context per client, ~1 MB each: one
    # client per vLLM endpoint would pay that 64 times. One shared context serves them all.
    return ssl.create_default_context()


def new_client(
    timeout_seconds: float, *, max_connections: int = 16, auth: httpx.Auth | None = None
) -> httpx.AsyncClient:
    """Pooled keep-alive connections, a timeout on every phase, redirects followed."""
    return httpx.AsyncClient(
        auth=auth,
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=8),
        headers={"Accept-Encoding": "gzip", "User-Agent": "inferwatch-agent"},
        verify=_tls_context(),
        trust_env=False,
    )


def split_userinfo(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """``http://user:pass@host/x`` -> (``http://host/x``, Basic auth for user:pass).

    Requests with the auth are what httpx sends for the URL with userinfo, but the URL the
    source builds its requests and its error messages from no longer carries the password."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url, None  # fetch reports it, redacted
    if not parsed.username and not parsed.password:
        return url, None
    clean = str(parsed.copy_with(username=None, password=None))
    return clean, httpx.BasicAuth(parsed.username, parsed.password)


@functools.lru_cache(maxsize=1024)  # the same few hundred endpoint URLs, every poll
def redact_url(url: str) -> str:
    """Drop userinfo, query and fragment: they can carry credentials. Never raises."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # a port that is no number, an unclosed "[": cut by hand
        return _cut_credentials(url)
    if not parts.netloc:  # no "//": "user:pass@host" reads as scheme "user"
        return _cut_credentials(url)
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _cut_credentials(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    path = path.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}{separator}{authority.rpartition('@')[2]}{slash}{path}"
