"""The HTTP side of the fake daemon: dockerd 20.10's routes, headers, errors and streams.

Every path may carry a `/v1.NN` prefix (the SDK prefixes the negotiated version); one newer than
1.41 or older than 1.12 is refused with 400, as dockerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from agent.simulator.docker_daemon import Daemon, NoSuchObject
from agent.simulator.docker_events import Event, check_event_filters, event_matches
from agent.simulator.docker_logs import multiplexed
from agent.simulator.docker_state import (
    check_list_filters,
    image_inspect,
    inspect,
    list_entry,
    listed,
)
from agent.simulator.docker_stats import (
    Sample,
    stats_json,
    stopped_stats_json,
    take_sample,
)
from agent.simulator.docker_wire import (
    API_VERSION,
    ENGINE_VERSION,
    MIN_API_VERSION,
    NANOS,
    BadParameter,
    parse_bool,
    parse_filters,
    parse_timestamp,
    rfc3339_nano,
    version_tuple,
)

RouteHandler = Callable[[web.Request, re.Match[str]], Awaitable[web.StreamResponse]]
VERSION_PREFIX = re.compile(r"/v([0-9.]+)(?=/)")
STATS_INTERVAL_SECONDS = 1.0  # dockerd's collector samples each container once a second
SERVER_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"Docker/{ENGINE_VERSION} (linux)",
}
GET = frozenset({"GET"})


def docker_json(payload: Any, status: int = 200) -> web.Response:
    """JSON as Go's encoder writes it: compact, one trailing newline."""
    body = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    return web.Response(status=status, body=body, content_type="application/json")


def docker_error(status: int, message: str) -> web.Response:
    return docker_json({"message": message}, status=status)


async def _server_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SERVER_HEADERS)


class DockerRoutes:
    """Routes requests to handlers reading a `Daemon`; `stopping` ends streams and waits."""

    def __init__(self, daemon: Daemon, stopping: asyncio.Event) -> None:
        self._daemon = daemon
        self._stopping = stopping
        container = r"/containers/(?P<ref>[^/]+)"
        self._routes: list[tuple[frozenset[str], re.Pattern[str], RouteHandler]] = [
            (frozenset({"GET", "HEAD"}), re.compile("/_ping"), self._ping),
            (GET, re.compile("/version"), self._version),
            (GET, re.compile("/info"), self._info),
            (GET, re.compile("/containers/json"), self._containers),
            (GET, re.compile(f"{container}/json"), self._inspect),
            (GET, re.compile(f"{container}/stats"), self._stats),
            (GET, re.compile(f"{container}/logs"), self._logs),
            (GET, re.compile("/events"), self._events),
            (GET, re.compile("/images/(?P<ref>.+)/json"), self._image),
        ]

    def app(self, middlewares: Sequence[Any] = ()) -> web.Application:
        app = web.Application(middlewares=list(middlewares))
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        app.on_response_prepare.append(_server_headers)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        prefix = VERSION_PREFIX.match(path)
        if prefix is not None:
            refusal = _version_refusal(prefix.group(1))
            if refusal is not None:
                return docker_error(400, refusal)
            path = path[prefix.end() :]
        for methods, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is not None and request.method in methods:
                return await self._handle(handler, request, match)
        return docker_error(404, "page not found")

    async def _handle(
        self, handler: RouteHandler, request: web.Request, match: re.Match[str]
    ) -> web.StreamResponse:
        try:
            return await handler(request, match)
        except BadParameter as error:
            return docker_error(400, str(error))
        except NoSuchObject as error:
            return docker_error(404, error.message)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # -- system --------------------------------------------------------------------------------

    async def _ping(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        headers = {
            "Builder-Version": "2",
            "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache",
        }
        return web.Response(text="OK", headers=headers, content_type="text/plain")

    async def _version(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return docker_json(version_json())

    async def _info(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return docker_json(self._info_json())

    def _info_json(self) -> dict[str, Any]:
        host = self._daemon.host
        states = self._daemon.containers
        running = sum(state.running for state in states)
        runtimes = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
        runtimes["nvidia"] = {"path": "nvidia-container-runtime"}
        return {
            "ID": "KXQ4:2WJB:OVEN:ZU3J:5SSL:FM7E:5Y2G:JJ6V:4B5X:3TQM:CKZV:JMGA",
            "Containers": len(states),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": len(states) - running,
            "Images": len({state.spec.image for state in states}),
            "Driver": "overlay2",
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "PidsLimit": True,
            "Debug": False,
            "NEventsListener": self._daemon.hub.listeners,
            "SystemTime": rfc3339_nano(self._daemon.now_ns()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "systemd",
            "CgroupVersion": "2",
            "KernelVersion": platform.release(),
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "OSVersion": "12",
            "OSType": "linux",
            "Architecture": "x86_64",
            "NCPU": host.ncpu,
            "MemTotal": host.mem_total,
            "DockerRootDir": "/var/lib/docker",
            "Name": host.name,
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": ENGINE_VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": "runc",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive"},
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "docker-init",
            "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
            "Warnings": None,
        }

    # -- containers ----------------------------------------------------------------------------

    async def _containers(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        filters = parse_filters(request.query.get("filters"))
        check_list_filters(filters)
        all_ = parse_bool(request.query.get("all"))
        now_ns = self._daemon.now_ns()
        shown = [state for state in self._daemon.containers if listed(state, filters, all_=all_)]
        limit = _integer(request.query.get("limit"), "limit")
        if limit is not None and limit > 0:
            shown = shown[:limit]
        return docker_json([list_entry(state, now_ns) for state in shown])

    async def _inspect(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        return docker_json(inspect(self._daemon.lookup(match["ref"])))

    async def _image(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        reference, created_ns = self._daemon.image(match["ref"])
        return docker_json(image_inspect(reference, created_ns))

    async def _stats(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        state = self._daemon.lookup(match["ref"])
        if not state.running:
            return docker_json(stopped_stats_json(state))
        if parse_bool(request.query.get("stream"), default=True):
            return await self._stream_stats(request, match["ref"])
        host = self._daemon.host
        if parse_bool(request.query.get("one-shot")):
            return docker_json(stats_json(state, host, self._daemon.now_ns(), None))
        # Without one-shot dockerd waits for its next sample, to fill precpu_stats.
        first = take_sample(state, host, self._daemon.now_ns())
        await self._sleep(STATS_INTERVAL_SECONDS)
        return docker_json(stats_json(state, host, self._daemon.now_ns(), first))

    async def _stream_stats(self, request: web.Request, reference: str) -> web.StreamResponse:
        response = await _open_stream(request)
        previous: Sample | None = None
        with contextlib.suppress(ConnectionResetError, NoSuchObject):
            while not self._stopping.is_set():
                state = self._daemon.lookup(reference)
                if not state.running:
                    break
                now_ns = self._daemon.now_ns()
                body = stats_json(state, self._daemon.host, now_ns, previous)
                await response.write(json.dumps(body, separators=(",", ":")).encode() + b"\n")
                previous = take_sample(state, self._daemon.host, now_ns)
                await self._sleep(STATS_INTERVAL_SECONDS)
        return response

    async def _logs(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        """The lines so far (`follow` is not emulated: the response ends after them)."""
        state = self._daemon.lookup(match["ref"])
        query = request.query
        streams = frozenset(
            name for name in ("stdout", "stderr") if parse_bool(query.get(name, "0"))
        )
        if not streams:
            raise BadParameter("Bad parameters: you must choose at least one stream")
        lines = state.logs.select(
            now_ns=self._daemon.now_ns(),
            streams=streams,
            since_ns=_timestamp(query.get("since")),
            until_ns=_timestamp(query.get("until")),
            tail=_tail(query.get("tail")),
        )
        response = await _open_stream(request, content_type="application/octet-stream")
        await response.write(multiplexed(lines, timestamps=parse_bool(query.get("timestamps"))))
        return response

    # -- events --------------------------------------------------------------------------------

    async def _events(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        filters = parse_filters(request.query.get("filters"))
        check_event_filters(filters)
        since = request.query.get("since")
        until_ns = _timestamp(request.query.get("until"))
        replay, queue = self._daemon.hub.subscribe(parse_timestamp(since) if since else None)
        try:
            response = await _open_stream(request)
            with contextlib.suppress(ConnectionResetError):
                for past in replay:
                    await _write_event(response, past, filters, until_ns)
                while (event := await self._next_event(queue, until_ns)) is not None:
                    await _write_event(response, event, filters, until_ns)
        finally:
            self._daemon.hub.unsubscribe(queue)
        return response

    async def _next_event(self, queue: asyncio.Queue[Event | None], until_ns: int) -> Event | None:
        """The next event, or None when the stream ends (server closing, `until` reached)."""
        timeout = None
        if until_ns:
            timeout = (until_ns - self._daemon.now_ns()) / NANOS
            if timeout <= 0:
                return None
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return None


async def _open_stream(
    request: web.Request, content_type: str = "application/json"
) -> web.StreamResponse:
    """A chunked response with its headers sent, as dockerd flushes them before any data."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


async def _write_event(
    response: web.StreamResponse, event: Event, filters: dict[str, list[str]], until_ns: int
) -> None:
    if event_matches(event, filters) and not (until_ns and event["timeNano"] > until_ns):
        await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")


def _timestamp(raw: str | None) -> int:
    return parse_timestamp(raw) if raw else 0


def _integer(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadParameter(f'invalid value for "{name}": "{raw}"') from None


def _tail(raw: str | None) -> int | None:
    """`tail`: "all" (None) or a count; a negative count also means all."""
    lines = None if raw == "all" else _integer(raw, "tail")
    return None if lines is None or lines < 0 else lines


def _version_refusal(version: str) -> str | None:
    requested = version_tuple(version)
    if requested > version_tuple(API_VERSION):
        return (
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    if requested < version_tuple(MIN_API_VERSION):
        return (
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    return None


def version_json() -> dict[str, Any]:
    """`GET /version` of Debian bookworm's docker.io."""
    kernel = platform.release()
    details = {
        "ApiVersion": API_VERSION,
        "Arch": "amd64",
        "BuildTime": "2023-04-10T11:05:35.000000000+00:00",
        "Experimental": "false",
        "GitCommit": "5d6db84",
        "GoVersion": "go1.19.8",
        "KernelVersion": kernel,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return {
        "Platform": {"Name": ""},
        "Components": [
            {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
            {"Name": "containerd", "Version": "1.6.20~ds1", "Details": {"GitCommit": ""}},
            {"Name": "runc", "Version": "1.1.5+ds1", "Details": {"GitCommit": ""}},
            {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": ""}},
        ],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "5d6db84",
        "GoVersion": "go1.19.8",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": details["BuildTime"],
    }
