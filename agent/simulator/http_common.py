"""HTTP plumbing shared by the simulated servers: responses, faults, a reopenable listener, and
:class:`LoopbackServer`, the lifecycle of a stand-alone fake upstream."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agent.simulator.background import AsyncServer
from agent.simulator.config import Fault
from agent.simulator.faults import (
    DEFAULT_FAULT_DELAY,
    Behaviour,
    FaultBoard,
    FaultState,
    RequestCounter,
)
from agent.simulator.textformat import CONTENT_TYPE

JSON_CONTENT_TYPE = "application/json"
METRICS_PATHS = frozenset({"/metrics", "/metrics/"})
GARBAGE_EXPOSITION = (
    '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0" 3 x\n'
)
GARBAGE_JSON = '{"data":[{"id":"truncated'
HUGE_CHUNK_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(payload: Any, status: int = 200) -> web.Response:
    """JSON as FastAPI writes it (compact, UTF-8)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return web.Response(status=status, text=body, content_type=JSON_CONTENT_TYPE)


def internal_server_error() -> web.Response:
    return web.Response(status=500, text="Internal Server Error", content_type="text/plain")


def exposition_response(text: str) -> web.Response:
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def fault_middleware(target: str, behaviour: Behaviour) -> Any:
    """Counts every request, then applies latency, the server's fault and random failures."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        behaviour.counter.add(target, request.path)
        if behaviour.latency_seconds > 0:
            await behaviour.sleep(behaviour.latency_seconds)
        state = behaviour.faults.get(target)
        if state.fault is Fault.SLOW:
            await behaviour.sleep(state.delay)
        elif state.fault is Fault.FLAPPING:
            # Two dropped, two answered: a client's one retry does not hide it.
            if behaviour.counter.total_for(target) // 2 % 2:
                return _drop(request)
        elif state.fault is not Fault.NONE and state.fault is not Fault.UNAUTHORIZED:
            return await _misbehave(request, state.fault, behaviour)
        if behaviour.fails_at_random():
            return internal_server_error()
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return json_response({"detail": "Not Found"}, status=404)
        except web.HTTPMethodNotAllowed:
            return json_response({"detail": "Method Not Allowed"}, status=405)

    return middleware


async def _misbehave(
    request: web.Request, fault: Fault, behaviour: Behaviour
) -> web.StreamResponse:
    is_metrics = request.path in METRICS_PATHS
    if fault is Fault.ERROR_500:
        return internal_server_error()
    if fault is Fault.GARBAGE:
        if is_metrics:
            return exposition_response(GARBAGE_EXPOSITION)
        return web.Response(text=GARBAGE_JSON, content_type=JSON_CONTENT_TYPE)
    if fault is Fault.HUGE:
        return await _stream_endless(request, is_metrics, behaviour)
    if fault is Fault.REFUSE:
        # A request on a connection opened before the refusal: drop the connection.
        request.protocol.force_close()
        return web.Response(status=503)
    if fault is Fault.RESTART:
        return await _die_mid_body(request, is_metrics)
    await behaviour.stopping.wait()  # HANG
    return web.Response(status=503)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer (the client sees it end before a status line)."""
    if request.transport is not None:
        request.transport.close()
    request.protocol.force_close()
    return web.Response(status=503)


async def _die_mid_body(request: web.Request, is_metrics: bool) -> web.StreamResponse:
    """200, headers promising a longer body, part of it, then the connection drops."""
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPE if is_metrics else JSON_CONTENT_TYPE}
    )
    response.content_length = HUGE_CHUNK_BYTES
    await response.prepare(request)
    await response.write(b"# HELP vllm:x cut\n" if is_metrics else b'{"data":[{"id":"cut')
    if request.transport is not None:
        request.transport.abort()
    request.protocol.force_close()
    return response


async def _stream_endless(
    request: web.Request, is_metrics: bool, behaviour: Behaviour
) -> web.StreamResponse:
    """200 with a body that never ends, written chunk by chunk until the client leaves."""
    content_type = CONTENT_TYPE if is_metrics else JSON_CONTENT_TYPE
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    if is_metrics:
        line = b"# padding padding padding padding padding padding padding padding\n"
    else:
        await response.write(b'{"data":[')
        line = b'{"id":"padding","object":"model"},'
    chunk = line * (HUGE_CHUNK_BYTES // len(line))
    try:
        while not behaviour.stopping.is_set():
            await response.write(chunk)
            await asyncio.sleep(0)  # let other requests run however fast the client reads
    except ConnectionError:  # the client left (aiohttp: "Connection lost")
        pass
    return response


SHUTDOWN_TIMEOUT_SECONDS = 1.0


def plain_behaviour(faults: FaultBoard, counter: RequestCounter) -> Behaviour:
    """A server's behaviour with no added latency or random failures (only injected faults)."""
    return Behaviour(
        faults=faults,
        counter=counter,
        latency_seconds=0.0,
        failure_rate=0.0,
        rng=random.Random(0),
        stopping=asyncio.Event(),
    )


async def open_listener(app: web.Application, host: str, port: int) -> Listener:
    """Set ``app`` up and bind its socket; it serves from the next turn of the loop."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    listener = Listener(runner, host, port)
    listener.open()
    return listener


class Listener:
    """Serves one aiohttp app on a socket that can be closed (refusing connections) and
    reopened on the same port. `open` and `refuse` must run on the event loop's thread."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self._host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def open(self) -> None:
        """Bind and listen now (connections wait in the backlog); serve from the next loop turn."""
        if self._sock is not None:
            return
        family, kind, proto, _, address = socket.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._sock = sock
        task = asyncio.get_running_loop().create_task(self._serve(sock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, sock: socket.socket) -> None:
        protocol_factory = self._runner.server
        assert protocol_factory is not None, "runner.setup() first"
        try:
            server = await asyncio.get_running_loop().create_server(protocol_factory, sock=sock)
        except (OSError, ValueError):  # refused before it started serving: socket closed
            return
        if self._sock is sock:
            self._server = server
        else:
            server.close()

    async def wait_serving(self) -> None:
        await asyncio.gather(*self._tasks)

    def refuse(self) -> None:
        """Stop listening (new connections are refused) and drop open connections."""
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        if self._server is not None:
            self._server.close()
            self._server = None
        else:
            sock.close()
        protocol_factory = self._runner.server
        if protocol_factory is not None:
            for connection in protocol_factory.connections:
                connection.force_close()

    async def close(self) -> None:
        self.refuse()
        await self.wait_serving()
        await self._runner.cleanup()


class LoopbackServer(AsyncServer):
    """One simulated upstream on its own ephemeral loopback port: its fault board, its request
    counts and its listener. Subclasses build the app from the request :class:`Behaviour`.
    Faults and counts may be set and read from any thread; ``start``/``stop`` run on the serving
    loop."""

    def __init__(self, target: str, description: str, host: str) -> None:
        self._target = target
        self._description = description
        self._host = host
        self._faults = FaultBoard([target])
        self._counter = RequestCounter()
        self._listener: Listener | None = None
        self._behaviour: Behaviour | None = None

    def _app(self, behaviour: Behaviour) -> web.Application:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port; returns once it accepts connections (or, with REFUSE
        set, once it has stopped listening again)."""
        if self._listener is not None:
            raise RuntimeError(f"{self._description} is already started")
        self._behaviour = plain_behaviour(self._faults, self._counter)
        self._listener = await open_listener(self._app(self._behaviour), self._host, 0)
        await self._listener.wait_serving()
        if self._faults.get(self._target).fault is Fault.REFUSE:
            self._listener.refuse()

    async def stop(self) -> None:
        """Stop serving; hanging and endless answers end at once."""
        if self._behaviour is not None:
            self._behaviour.stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        self._behaviour = None

    # -- what tests and the demo drive ---------------------------------------------------------

    @property
    def url(self) -> str:
        if self._listener is None:
            raise RuntimeError(f"{self._description} is not started")
        return self._listener.url

    def request_count(self, path: str) -> int:
        """Requests on ``path`` (no query string)."""
        return self._counter.get(self._target, path)

    @property
    def requests_total(self) -> int:
        return self._counter.total_for(self._target)

    def set_fault(self, fault: Fault, *, delay: float = DEFAULT_FAULT_DELAY) -> None:
        """Misbehave from the next request on. REFUSE must be set on the serving loop's thread."""
        self._faults.set(self._target, FaultState(fault, delay))
        if self._listener is not None:
            if fault is Fault.REFUSE:
                self._listener.refuse()
            else:
                self._listener.open()
