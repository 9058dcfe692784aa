"""A fake Anthropic Messages API on a loopback port, driven by the real ``anthropic`` client.

Claude cannot run here, so this stands in for ``POST /v1/messages``, speaking the wire format
in FACTS.md: SSE with an ``event:`` line on every event (message_start, content_block_start,
ping, content_block_delta with text_delta or input_json_delta, content_block_stop,
message_delta with stop_reason and usage, message_stop), plain JSON when ``stream`` is false,
and the API's error bodies (``{"type":"error","error":{"type":...,"message":...}}``) with
``retry-after`` / ``retry-after-ms``, a 529 ``overloaded_error``, and an ``event: error`` in
the middle of a stream. The key is accepted from ``x-api-key`` or ``Authorization: Bearer``
(anthropic 2.14 sends the latter).

It answers like a judge would: it reads the numbered ``<expectation index="n">`` tags of the
request and returns one verdict per expectation (``pass`` unless scripted otherwise), as JSON
text for structured output, or as a tool_use input when a tool is forced by ``tool_choice``.

It runs in its own thread and event loop, so sync tests, async tests and subprocesses (through
``ANTHROPIC_BASE_URL``) can all use it. Each request is recorded (headers, JSON body, images'
sizes) for assertions; ``leaks()`` finds secrets anywhere but the credential header.

    with FakeAnthropic() as fake:
        fake.script(rate_limited(retry_after="1"), Answer(verdicts=["pass", "fail"]))
        ... AsyncAnthropic(api_key=FAKE_API_KEY, base_url=fake.url) ...
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from tests.fakes.http import serve

FAKE_API_KEY = "sk-ant-FAKE.judge.key.for.tests"
_EXPECTATION = re.compile(r'<expectation index="(\d+)">(.*?)</expectation>', re.DOTALL)
_START_TIMEOUT_SECONDS = 10.0
_CREDENTIAL_HEADERS = frozenset({"x-api-key", "authorization"})


@dataclass(frozen=True)
class Answer:
    """A successful reply. By default "pass" for every expectation found in the request."""

    verdicts: Sequence[str] | None = None
    confidence: float = 0.9
    reason: str = "the panel shows it"
    # The reply text, verbatim, instead of verdict JSON (malformed JSON, wrong schema...).
    text: str | None = None
    # None: estimated from the request (images by pixels / 750, text by length / 4).
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str = "end_turn"
    latency_seconds: float = 0.0
    chunk_chars: int = 40


@dataclass(frozen=True)
class Fail:
    """An HTTP error status with the API's error body."""

    status: int
    error_type: str
    message: str = "scripted failure"
    retry_after: str | None = None
    retry_after_ms: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FailMidStream:
    """Status 200, a few events, then ``event: error`` and the end of the stream."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass(frozen=True)
class Hang:
    """Never finish: with ``after_start``, send the headers and message_start first."""

    after_start: bool = True


Behaviour = Answer | Fail | FailMidStream | Hang


def rate_limited(retry_after: str | None = None, retry_after_ms: str | None = None) -> Fail:
    return Fail(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        retry_after=retry_after,
        retry_after_ms=retry_after_ms,
    )


def overloaded() -> Fail:
    return Fail(529, "overloaded_error", "Overloaded")


def server_error() -> Fail:
    return Fail(500, "api_error", "Internal server error")


@dataclass(frozen=True)
class RecordedImage:
    media_type: str
    width: int
    height: int
    size_bytes: int
    base64_chars: int


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]

    @property
    def blocks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                found.append({"type": "text", "text": content})
            elif isinstance(content, list):
                found.extend(block for block in content if isinstance(block, dict))
        return found

    @property
    def text(self) -> str:
        """Every text the request carries: system prompt and text blocks."""
        system = self.body.get("system", "")
        if isinstance(system, list):
            system = "\n".join(str(block.get("text", "")) for block in system)
        texts = [b.get("text", "") for b in self.blocks if b.get("type") == "text"]
        return "\n".join([str(system), *map(str, texts)])

    @property
    def expectations(self) -> list[str]:
        return [html.unescape(text) for _, text in _EXPECTATION.findall(self.text)]

    @property
    def images(self) -> list[RecordedImage]:
        recorded = []
        for block in self.blocks:
            source = block.get("source", {})
            if block.get("type") != "image" or source.get("type") != "base64":
                continue
            encoded = str(source.get("data", ""))
            data = base64.b64decode(encoded)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
            recorded.append(
                RecordedImage(str(source.get("media_type")), width, height, len(data), len(encoded))
            )
        return recorded


@dataclass
class _Server:
    loop: asyncio.AbstractEventLoop
    stopping: asyncio.Event
    release: asyncio.Event
    url: str = ""


@dataclass
class FakeAnthropic:
    # When set, a request with another x-api-key gets the API's 401.
    api_key: str | None = FAKE_API_KEY
    default: Behaviour = field(default_factory=Answer)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _script: deque[Behaviour] = field(default_factory=deque, init=False, repr=False)
    _requests: list[RecordedRequest] = field(default_factory=list, init=False, repr=False)
    _ids: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _server: _Server | None = field(default=None, init=False, repr=False)
    _started: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _error: BaseException | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        if self._server is None or not self._server.url:
            raise RuntimeError("the fake Anthropic server is not running")
        return self._server.url

    def env(self) -> dict[str, str]:
        """The environment that points the SDK (or a subprocess) at this server."""
        return {"ANTHROPIC_BASE_URL": self.url, "ANTHROPIC_API_KEY": self.api_key or "any"}

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, one per coming request; after them, ``default`` answers."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def leaks(self, *secrets: str) -> list[str]:
        """Where any of ``secrets`` appears, except the credential header (its only place).

        anthropic 2.x sends the key as ``Authorization: Bearer``, older clients as ``x-api-key``.
        """
        found = []
        for number, request in enumerate(self.requests, start=1):
            for secret in filter(None, secrets):
                needle = secret.encode()
                if needle in request.raw or needle in request.path.encode():
                    found.append(f"request {number}: body or path contains {secret[:6]}...")
                for name, value in request.headers.items():
                    if name not in _CREDENTIAL_HEADERS and secret in value:
                        found.append(f"request {number}: header {name} contains {secret[:6]}...")
        return found

    def start(self) -> FakeAnthropic:
        self._thread = threading.Thread(target=self._run, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_SECONDS) or self._error is not None:
            raise RuntimeError(f"the fake Anthropic server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.loop.call_soon_threadsafe(server.release.set)
            server.loop.call_soon_threadsafe(server.stopping.set)
            thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # The server thread.

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start()
            self._error = error
            self._started.set()

    async def _serve(self) -> None:
        server = _Server(asyncio.get_running_loop(), asyncio.Event(), asyncio.Event())
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        async with serve(app) as url:
            server.url = url
            self._server = server
            self._started.set()
            await server.stopping.wait()

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        recorded = RecordedRequest(
            request.method,
            request.path_qs,
            {name.lower(): value for name, value in request.headers.items()},
            raw,
            body if isinstance(body, dict) else {},
        )
        with self._lock:
            self._requests.append(recorded)
            behaviour = self._script.popleft() if self._script else self.default
            request_id = f"req_fake_{next(self._ids):04d}"

        key = _credential(request)
        if not key:
            return _error(401, "authentication_error", "x-api-key header is required", request_id)
        if self.api_key is not None and key != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key", request_id)
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "body is not JSON", request_id)
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return _error(400, "invalid_request_error", f"{name}: Field required", request_id)

        if isinstance(behaviour, Fail):
            return _error(
                behaviour.status,
                behaviour.error_type,
                behaviour.message,
                request_id,
                retry_after=behaviour.retry_after,
                retry_after_ms=behaviour.retry_after_ms,
                extra=behaviour.headers,
            )
        if isinstance(behaviour, Hang):
            return await self._hang(request, recorded, behaviour, request_id)
        if isinstance(behaviour, FailMidStream):
            return await self._fail_mid_stream(request, recorded, behaviour, request_id)
        if behaviour.latency_seconds:
            await asyncio.sleep(behaviour.latency_seconds)
        reply = _Reply.of(behaviour, recorded)
        if body.get("stream"):
            return await _stream(request, reply, request_id)
        return web.json_response(reply.message(final=True), headers={"request-id": request_id})

    async def _hang(
        self, request: web.Request, recorded: RecordedRequest, hang: Hang, request_id: str
    ) -> web.StreamResponse:
        assert self._server is not None
        response = _sse_response(request_id)
        if hang.after_start:
            await response.prepare(request)
            reply = _Reply.of(Answer(), recorded)
            await _event(response, "message_start", {"type": "message_start", **reply.start()})
        await self._server.release.wait()
        return response

    async def _fail_mid_stream(
        self, request: web.Request, recorded: RecordedRequest, fail: FailMidStream, request_id: str
    ) -> web.StreamResponse:
        reply = _Reply.of(Answer(), recorded)
        response = _sse_response(request_id)
        await response.prepare(request)
        await _event(response, "message_start", {"type": "message_start", **reply.start()})
        await _event(response, *reply.block_start())
        await _event(response, *reply.deltas()[0])
        error = {"type": "error", "error": {"type": fail.error_type, "message": fail.message}}
        await _event(response, "error", error)
        await response.write_eof()
        return response


@dataclass(frozen=True)
class _Reply:
    """One answer, rendered as a message, as SSE events, or as a tool call."""

    model: str
    text: str
    as_tool: str | None
    input_tokens: int
    output_tokens: int
    stop_reason: str
    chunk_chars: int
    message_id: str

    @classmethod
    def of(cls, answer: Answer, request: RecordedRequest) -> _Reply:
        text = answer.text
        if text is None:
            expectations = request.expectations
            verdicts = list(answer.verdicts or ["pass"] * len(expectations))
            text = json.dumps(
                {
                    "verdicts": [
                        {
                            "index": index,
                            "verdict": verdict,
                            "confidence": answer.confidence,
                            "reason": f"{answer.reason} ({verdict})",
                        }
                        for index, verdict in enumerate(verdicts, start=1)
                    ]
                }
            )
        choice = request.body.get("tool_choice") or {}
        as_tool = choice.get("name") if choice.get("type") == "tool" else None
        pixels = sum(image.width * image.height for image in request.images)
        return cls(
            model=str(request.body.get("model", "claude-fake")),
            text=text,
            as_tool=as_tool,
            input_tokens=answer.input_tokens
            if answer.input_tokens is not None
            else pixels // 750 + len(request.text) // 4 + 1,
            output_tokens=answer.output_tokens
            if answer.output_tokens is not None
            else len(text) // 4 + 1,
            stop_reason="tool_use"
            if as_tool and answer.stop_reason == "end_turn"
            else answer.stop_reason,
            chunk_chars=max(1, answer.chunk_chars),
            message_id=f"msg_fake_{abs(hash(text)) % 10**12:012d}",
        )

    def start(self) -> dict[str, Any]:
        return {
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": self.input_tokens,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            }
        }

    def block_start(self) -> tuple[str, dict[str, Any]]:
        block: dict[str, Any] = (
            {"type": "tool_use", "id": "toolu_fake_01", "name": self.as_tool, "input": {}}
            if self.as_tool
            else {"type": "text", "text": ""}
        )
        return "content_block_start", {
            "type": "content_block_start",
            "index": 0,
            "content_block": block,
        }

    def deltas(self) -> list[tuple[str, dict[str, Any]]]:
        chunks = [
            self.text[i : i + self.chunk_chars] for i in range(0, len(self.text), self.chunk_chars)
        ] or [""]
        delta: list[tuple[str, dict[str, Any]]] = []
        for chunk in chunks:
            payload = (
                {"type": "input_json_delta", "partial_json": chunk}
                if self.as_tool
                else {"type": "text_delta", "text": chunk}
            )
            delta.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": payload},
                )
            )
        return delta

    def message(self, *, final: bool) -> dict[str, Any]:
        started = self.start()["message"]
        if not final:
            return dict(started)
        content: dict[str, Any]
        if self.as_tool:
            content = {
                "type": "tool_use",
                "id": "toolu_fake_01",
                "name": self.as_tool,
                "input": json.loads(self.text),
            }
        else:
            content = {"type": "text", "text": self.text}
        return {
            **started,
            "content": [content],
            "stop_reason": self.stop_reason,
            "usage": {**started["usage"], "output_tokens": self.output_tokens},
        }


async def _stream(request: web.Request, reply: _Reply, request_id: str) -> web.StreamResponse:
    response = _sse_response(request_id)
    await response.prepare(request)
    await _event(response, "message_start", {"type": "message_start", **reply.start()})
    await _event(response, *reply.block_start())
    await _event(response, "ping", {"type": "ping"})
    for name, data in reply.deltas():
        await _event(response, name, data)
    await _event(response, "content_block_stop", {"type": "content_block_stop", "index": 0})
    await _event(
        response,
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    await _event(response, "message_stop", {"type": "message_stop"})
    await response.write_eof()
    return response


def _credential(request: web.Request) -> str | None:
    """The API key: ``x-api-key``, or ``Authorization: Bearer`` (what anthropic 2.x sends)."""
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return bearer[len("bearer ") :].strip()
    return request.headers.get("x-api-key")


def _sse_response(request_id: str) -> web.StreamResponse:
    return web.StreamResponse(
        headers={
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "request-id": request_id,
        }
    )


async def _event(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


def _error(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    *,
    retry_after: str | None = None,
    retry_after_ms: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> web.Response:
    headers = {"request-id": request_id, **dict(extra)}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
    return web.json_response(body, status=status, headers=headers, reason=_REASONS.get(status))


_REASONS = {529: "Overloaded"}


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running fake, reset for each test (script it with ``fake_anthropic.script(...)``)."""
    with FakeAnthropic() as fake:
        yield fake


__all__ = [
    "FAKE_API_KEY",
    "Answer",
    "Behaviour",
    "Fail",
    "FailMidStream",
    "FakeAnthropic",
    "Hang",
    "RecordedImage",
    "RecordedRequest",
    "fake_anthropic",
    "overloaded",
    "rate_limited",
    "server_error",
]
