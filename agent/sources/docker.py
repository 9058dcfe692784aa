"""Docker: discover vLLM containers, read every container's resources, count failure log lines.

The docker SDK is synchronous: one poll runs in a worker thread, with inspect, stats and log reads
fanned out over a small pool. Stats are read one-shot (no 1-2 s wait per container) and CPU is
computed against the previous sample this source kept. A background thread follows the event
stream so a started or stopped vLLM container is picked up at once; the periodic poll stays as
the safety net and reconnects when the daemon comes back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests
import urllib3.exceptions
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.settings import DockerSettings
from agent.snapshot import Collection
from agent.sources import containers as c
from agent.sources.vllm import VLLMEndpoint
from agent.upstream import ConfigError, Malformed, TimedOut, TooLarge, Unreachable, UpstreamError

log = logging.getLogger(__name__)

Wake = Callable[[str], None]
_LIFECYCLE = frozenset({"start", "die", "stop", "kill", "destroy", "restart", "pause", "unpause"})
_GONE = frozenset({"die", "stop", "kill", "destroy"})
_MAX_LOG_LINE = 64 * 1024
_START_SLACK_NS = 1_000_000_000
_SINCE_SLACK_NS = 1_000_000
_READ_CHUNK = 64 * 1024
_MAX_EVENT_BYTES = 1024 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# What a failed call to the daemon raises: the SDK's errors, requests' and urllib3's, sockets'.
_TRANSPORT_ERRORS = (
    docker.errors.DockerException,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)


@dataclass(slots=True)
class _Tracked:
    """What this source remembers about one container between polls."""

    id: str
    cpu: c.CPUSample | None = None
    started_at: str = ""
    restarts: int = 0
    log_since_ns: int = 0
    log_partial: str = ""
    frames_at_since: int = 0
    log_events: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ContainerReading:
    """One container as one poll saw it."""

    id: str
    name: str
    image: str
    image_version: str
    state: str
    gpus: str
    is_vllm: bool
    vllm_url: str | None
    pid: int
    cpu_ratio: float | None = None
    memory_used_bytes: float | None = None
    memory_limit_bytes: float | None = None
    network: tuple[float, float] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id[:12],
            "image": self.image,
            "image_version": self.image_version,
            "state": self.state,
            "gpus": self.gpus,
            "vllm": self.is_vllm,
            "vllm_url": self.vllm_url,
            "cpu_usage_ratio": self.cpu_ratio,
            "memory_usage_bytes": self.memory_used_bytes,
            "memory_limit_bytes": self.memory_limit_bytes,
        }


def describe_docker_error(exc: BaseException, where: str) -> UpstreamError:
    """A Docker SDK failure as an error a person can act on."""
    text = str(exc)
    if isinstance(exc, PermissionError) or "Permission denied" in text:
        return ConfigError(
            f"permission denied on the Docker socket {where}: run the agent as root or in the"
            " docker group, or mount the socket read-only into its container"
        )
    if "No such file or directory" in text or isinstance(exc, FileNotFoundError):
        return Unreachable(
            f"no Docker socket at {where}: is dockerd running? (set DOCKER_HOST otherwise)"
        )
    if "Connection refused" in text:
        return Unreachable(f"the Docker daemon at {where} refuses connections")
    return Unreachable(f"Docker daemon at {where}: {type(exc).__name__}: {text[:200]}")


class DockerSource:
    """The ``docker`` source; also the endpoint provider that feeds discovered vLLM containers
    to the vLLM source, and the container-name lookup the NVML source maps PIDs with."""

    name = "docker"
    depends_on: tuple[str, ...] = ()

    def __init__(
        self,
        settings: DockerSettings,
        *,
        vllm_image_patterns: Sequence[str],
        interval_seconds: float,
        timeout_seconds: float,
        client_factory: Callable[[], docker.DockerClient] | None = None,
        max_workers: int = 64,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_seconds = settings.poll_interval_seconds or interval_seconds
        self._where = settings.docker_host or "the default socket (unix:///var/run/docker.sock)"
        self._patterns = list(vllm_image_patterns)
        self._name_globs = settings.containers
        self._log_budget = settings.log_bytes_per_cycle
        self._timeout = timeout_seconds
        self._factory = client_factory or (
            lambda: _client(settings, timeout_seconds, max_workers, max_response_bytes)
        )
        # dockerd answers a one-shot stats read at its next 1 s collection tick: reads issued
        # together share that tick, so every running container is read at once.
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        self._clock = clock
        self._client: docker.DockerClient | None = None
        self._failures = 0
        self._retry_at = float("-inf")
        self._last_error: UpstreamError | None = None
        self._tracked: dict[str, _Tracked] = {}  # by container name
        self._lock = threading.Lock()
        self._polling = threading.Lock()
        self._endpoints: tuple[VLLMEndpoint, ...] = ()
        self._names_by_id: dict[str, str] = {}
        self._wake: Wake | None = None
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._stream: Any = None

    # --- what other sources read -------------------------------------------------------------

    def endpoints(self) -> Sequence[VLLMEndpoint]:
        return self._endpoints

    def container_name(self, container_id: str) -> str | None:
        return self._names_by_id.get(container_id)

    # --- polling ------------------------------------------------------------------------------

    async def collect(self) -> Collection:
        return await asyncio.to_thread(self._poll)

    def _poll(self) -> Collection:
        # A poll that overran its timeout was cancelled, but its thread cannot be: never run two.
        if not self._polling.acquire(blocking=False):
            raise UpstreamError(f"the previous poll of {self._where} is still running")
        try:
            return self._poll_once()
        finally:
            self._polling.release()

    def _poll_once(self) -> Collection:
        client = self._connect()
        warnings: list[str] = []
        try:
            info = client.info()
            listing = client.api.containers(all=True)
            if not isinstance(info, dict) or not _is_listing(listing):
                raise Malformed(
                    f"Docker daemon at {self._where}: /info or /containers/json "
                    "did not answer what the Engine API documents"
                )
            readings = self._read_containers(client, listing, warnings)
            log_events = self._read_logs(
                client, [r for r in readings if r.is_vllm and r.state == "running"]
            )
        except _TRANSPORT_ERRORS as exc:  # at any call: the daemon went away mid-poll
            self._drop_client()
            raise describe_docker_error(exc, self._where) from None
        self._publish(readings)
        families = [
            _docker_info(info),
            *_container_families(readings, self._tracked, log_events),
        ]
        data = {"containers": [r.as_json() for r in readings]}
        return Collection(families=tuple(families), data=data, error="; ".join(warnings) or None)

    def _connect(self) -> docker.DockerClient:
        if self._client is not None:
            return self._client
        if self._clock() < self._retry_at and self._last_error is not None:
            raise type(self._last_error)(f"{self._last_error} (next try in a moment)")
        try:
            client = self._factory()
            client.ping()
        except _TRANSPORT_ERRORS as exc:
            self._failures += 1
            self._retry_at = self._clock() + min(300.0, self.interval_seconds * 2**self._failures)
            self._last_error = describe_docker_error(exc, self._where)
            raise self._last_error from None
        self._client, self._failures, self._last_error = client, 0, None
        return client

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _read_containers(
        self, client: docker.DockerClient, listing: list[dict[str, Any]], warnings: list[str]
    ) -> list[ContainerReading]:
        wanted = [entry for entry in listing if self._wanted(entry)]
        running = [entry for entry in wanted if entry.get("State") == "running"]
        ids = [entry["Id"] for entry in running]
        inspected = zip(ids, self._pool.map(lambda cid: _inspect(client, cid), ids), strict=True)
        live = {cid: attrs for cid, attrs in inspected if attrs is not None}
        stats = dict(zip(live, self._pool.map(lambda cid: _stats(client, cid), live), strict=True))
        readings = []
        for entry in wanted:
            attrs = live.get(entry["Id"])
            if entry.get("State") == "running" and attrs is None:
                continue  # vanished between the list and the inspect
            readings.append(self._reading(entry, attrs, stats.get(entry["Id"]), warnings))
        return readings

    def _wanted(self, entry: Mapping[str, Any]) -> bool:
        """vLLM containers always; others when their name matches INFERWATCH_DOCKER_CONTAINERS."""
        name = _name(entry)
        return self._is_vllm_image(str(entry.get("Image") or "")) or any(
            fnmatch.fnmatchcase(name, glob) for glob in self._name_globs
        )

    def _is_vllm_image(self, reference: str) -> bool:
        return c.repository_matches(c.parse_image_reference(reference).repository, self._patterns)

    def _reading(
        self,
        entry: Mapping[str, Any],
        attrs: Mapping[str, Any] | None,
        stats: Mapping[str, Any] | None,
        warnings: list[str],
    ) -> ContainerReading:
        name = _name(entry)
        attrs = attrs or {}
        config = c.mapping(attrs.get("Config"))
        reference = str(config.get("Image") or entry.get("Image") or "")
        image = c.parse_image_reference(reference)
        labels = {str(k): str(v) for k, v in c.mapping(entry.get("Labels")).items()}
        gpus, gpu_warning = c.gpus_of(attrs, labels)
        is_vllm = c.repository_matches(image.repository, self._patterns)
        url, url_warning = c.vllm_url(name, attrs, labels) if is_vllm else (None, None)
        warnings.extend(f"{name}: {w}" for w in (gpu_warning, url_warning) if w)
        state = str(entry.get("State") or "")
        tracked = self._track(name, entry["Id"], attrs)
        reading = ContainerReading(
            id=entry["Id"],
            name=name,
            image=reference,
            image_version=image.version,
            state=state,
            gpus=gpus,
            is_vllm=is_vllm,
            vllm_url=url,
            pid=c.count(c.mapping(attrs.get("State")).get("Pid")) or 0,
        )
        if stats is None:
            return reading
        sample = c.cpu_sample(stats)
        ratio = c.cpu_ratio(tracked.cpu, sample)
        tracked.cpu = sample or tracked.cpu
        used, limit = c.memory_used(stats)
        return dataclasses.replace(
            reading,
            cpu_ratio=ratio,
            memory_used_bytes=used,
            memory_limit_bytes=limit,
            network=c.network_bytes(stats),
        )

    def _track(self, name: str, container_id: str, attrs: Mapping[str, Any]) -> _Tracked:
        """Per-name memory: a new start of the same container is a restart."""
        with self._lock:
            tracked = self._tracked.get(name)
            state = c.mapping(attrs.get("State"))
            started = str(state.get("StartedAt") or "")
            if tracked is None or tracked.id != container_id:
                tracked = _Tracked(id=container_id, started_at=started)
                tracked.restarts = c.count(attrs.get("RestartCount")) or 0
                # Docker stamps StartedAt after the process began: its first lines come earlier.
                started_ns = c.parse_timestamp_ns(started)
                tracked.log_since_ns = max(0, started_ns - _START_SLACK_NS) if started_ns else 0
                self._tracked[name] = tracked
            elif started and tracked.started_at and started != tracked.started_at:
                tracked.restarts += 1
                tracked.cpu = None  # counters restart with the container
            if started:
                tracked.started_at = started
            return tracked

    def _read_logs(
        self, client: docker.DockerClient, vllm: Sequence[ContainerReading]
    ) -> dict[str, Counter[str]]:
        list(self._pool.map(lambda r: self._tail(client, r, self._tracked[r.name]), vllm))
        return {r.name: self._tracked[r.name].log_events for r in vllm}

    def _tail(
        self, client: docker.DockerClient, reading: ContainerReading, tracked: _Tracked
    ) -> None:
        """Read the log from where the last poll stopped, at most the byte budget per poll."""
        # The SDK sends "since" as a float, which cannot hold nanoseconds: ask from a little
        # earlier and let the timestamps decide what was already counted.
        since = (tracked.log_since_ns - _SINCE_SLACK_NS) / 1e9 if tracked.log_since_ns else None
        try:
            stream = client.api.logs(
                reading.id,
                stdout=True,
                stderr=True,
                timestamps=True,
                stream=True,
                follow=False,  # the SDK follows a stream unless told not to
                since=since,
            )
        except _TRANSPORT_ERRORS as exc:
            log.debug("logs of %s unavailable: %s", reading.name, exc)
            return
        to_skip = tracked.frames_at_since
        try:
            read = 0
            for frame in stream:
                to_skip, counted = self._count_frame(frame, tracked, to_skip)
                read += len(frame) if counted else 0
                if read >= self._log_budget:
                    break  # the rest waits for the next poll
        finally:
            stream.close()

    @staticmethod
    def _count_frame(frame: bytes, tracked: _Tracked, to_skip: int) -> tuple[int, bool]:
        """One log message as the daemon frames it: ``<RFC 3339 time> <text>``. Lines over
        16 KiB arrive as several frames, only the last ending in a newline; a line is classified
        once, from its first 64 KiB, when its last frame arrives.

        "since" is inclusive and frames share a timestamp (every frame of a long line does), so
        the frames read at the last timestamp are counted and that many are skipped when the
        next poll reads them again. Returns how many are still to skip and whether this frame
        was new."""
        stamp, _, text = frame.decode("utf-8", "replace").partition(" ")
        at = c.parse_timestamp_ns(stamp)
        if at is None or at < tracked.log_since_ns:
            return to_skip, False
        if at == tracked.log_since_ns:
            if to_skip:
                return to_skip - 1, False
            tracked.frames_at_since += 1
        else:
            tracked.log_since_ns, tracked.frames_at_since = at, 1
        if len(tracked.log_partial) < _MAX_LOG_LINE:
            tracked.log_partial += text[: _MAX_LOG_LINE - len(tracked.log_partial)]
        if text.endswith("\n"):
            tracked.log_events.update(c.log_event_kinds(tracked.log_partial))
            tracked.log_partial = ""
        return 0, True

    def _publish(self, readings: Sequence[ContainerReading]) -> None:
        endpoints = tuple(e for e in map(_endpoint, readings) if e is not None)
        self._names_by_id = {r.id: r.name for r in readings}
        with self._lock:
            present = {r.name for r in readings}
            for name in [n for n in self._tracked if n not in present]:
                del self._tracked[name]  # destroyed: forget it
        if endpoints != self._endpoints:
            self._endpoints = endpoints
            if self._wake is not None:
                self._wake("vllm")

    # --- events -------------------------------------------------------------------------------

    def watch(self, wake: Wake) -> None:
        """Follow the daemon's container events in a thread until :meth:`aclose`."""
        self._wake = wake
        self._watcher = threading.Thread(
            target=self._follow_events, name="docker-events", daemon=True
        )
        self._watcher.start()

    def _follow_events(self) -> None:
        delay = 1.0
        failing = False
        while not self._stop.is_set():
            try:
                client = self._factory()
                self._stream = client.events(decode=False, filters={"type": "container"})
                if failing:
                    log.info("docker event stream reconnected")
                failing, delay = False, 1.0
                for event in _events(self._stream, self._where):
                    self._on_event(event, client)
            except Exception as exc:  # the daemon went away: reconnect with backoff
                if not failing and not self._stop.is_set():
                    log.warning(
                        "docker event stream lost: %s", describe_docker_error(exc, self._where)
                    )
                failing = True
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)

    def _on_event(self, event: Mapping[str, Any], client: docker.DockerClient) -> None:
        action = str(event.get("Action") or event.get("status") or "").split(":")[0]
        if action not in _LIFECYCLE or self._wake is None:
            return
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id") or "")
        image = str((actor.get("Attributes") or {}).get("image") or event.get("from") or "")
        if action == "start" and self._is_vllm_image(image):
            self._add_started(client, container_id)
        if action in _GONE:
            remaining = tuple(
                e for e in self._endpoints if self._names_by_id.get(container_id) != e.container
            )
            if remaining != self._endpoints:
                self._endpoints = remaining  # gone from the next vLLM poll, which starts now
                self._wake("vllm")
        self._wake("docker")

    def _add_started(self, client: docker.DockerClient, container_id: str) -> None:
        """A vLLM container started: poll it now, without waiting for a whole Docker poll."""
        attrs = _inspect(client, container_id)
        if attrs is None:
            return
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        entry = {
            "Id": attrs.get("Id", container_id),
            "Names": [attrs.get("Name") or container_id[:12]],
            "Image": config.get("Image") or "",
            "Labels": config.get("Labels") or {},
            "State": state.get("Status") or "running",
        }
        endpoint = _endpoint(self._reading(entry, attrs, None, []))
        if endpoint is None or endpoint in self._endpoints:
            return
        self._names_by_id = {**self._names_by_id, entry["Id"]: endpoint.container}
        self._endpoints = (*[e for e in self._endpoints if e.url != endpoint.url], endpoint)
        if self._wake is not None:
            self._wake("vllm")

    async def aclose(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            await asyncio.to_thread(_close_quietly, stream)
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join, 5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._drop_client()


class _BoundedAPIClient(docker.APIClient):
    """The SDK's client, reading every answer that is not a stream with a byte cap and an
    overall deadline: requests would read an endless or dripping body for ever, in a thread
    the poll's timeout cannot stop."""

    max_bytes = DEFAULT_MAX_RESPONSE_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deadline_seconds = 2.0 * float(kwargs.get("timeout") or 60)
        super().__init__(*args, **kwargs)
        self._bound()

    def _retrieve_server_version(self) -> str:
        self._bound()  # the constructor asks /version before it returns
        version: str = super()._retrieve_server_version()  # type: ignore[misc]
        return version

    def _bound(self) -> None:
        if self._read_bounded not in self.hooks["response"]:
            self.hooks["response"].append(self._read_bounded)

    def _read_bounded(
        self, response: requests.Response, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("stream"):
            return response  # events and logs: their readers bound what they read
        deadline = time.monotonic() + self._deadline_seconds
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_READ_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise TooLarge(f"{response.url}: answer exceeds cap of {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise TimedOut(f"{response.url}: answer not complete within the timeout")
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)
        return response


class _BoundedDockerClient(docker.DockerClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.api = _BoundedAPIClient(*args, **kwargs)


def _client(
    settings: DockerSettings, timeout: float, pool_size: int, max_bytes: int
) -> docker.DockerClient:
    options: dict[str, Any] = {
        "version": "auto",
        "timeout": int(max(1, timeout)),
        "max_pool_size": pool_size,
    }
    client: docker.DockerClient
    if settings.docker_host:
        client = _BoundedDockerClient(base_url=settings.docker_host, **options)
    else:
        client = _BoundedDockerClient.from_env(**options)
    if isinstance(client.api, _BoundedAPIClient):
        client.api.max_bytes = max_bytes
    return client


def _is_listing(listing: Any) -> bool:
    return isinstance(listing, list) and all(
        isinstance(entry, dict) and isinstance(entry.get("Id"), str) for entry in listing
    )


def _events(chunks: Iterable[bytes | str], where: str) -> Iterator[Mapping[str, Any]]:
    """The daemon's events, one JSON object per line. The SDK's own decoder buffers until an
    object is complete, without a bound: one endless line would take all the memory."""
    pending = b""
    for chunk in chunks:
        pending += chunk.encode() if isinstance(chunk, str) else chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line) if line.strip() else None
            except ValueError:
                log.debug("skipped a docker event that is not JSON: %.80r", line)
                continue
            if isinstance(event, dict):
                yield event
        if len(pending) > _MAX_EVENT_BYTES:
            raise Malformed(f"Docker daemon at {where}: an event longer than {_MAX_EVENT_BYTES} B")


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception as exc:  # closing a dead stream may raise anything the transport likes
        log.debug("closing the event stream: %s", exc)


def _name(entry: Mapping[str, Any]) -> str:
    names = entry.get("Names")
    if not isinstance(names, list) or not names:
        names = [entry.get("Id", "")[:12]]
    return str(names[0]).lstrip("/")


def _endpoint(reading: ContainerReading) -> VLLMEndpoint | None:
    if not (reading.is_vllm and reading.state == "running" and reading.vllm_url):
        return None
    return VLLMEndpoint(
        instance=reading.name,
        url=reading.vllm_url,
        container=reading.name,
        image=reading.image,
        version=reading.image_version,
        gpus=reading.gpus,
    )


def _inspect(client: docker.DockerClient, container_id: str) -> dict[str, Any] | None:
    try:
        attrs: dict[str, Any] = client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return None
    return attrs if isinstance(attrs, dict) else None


def _stats(client: docker.DockerClient, container_id: str) -> dict[str, Any] | None:
    try:
        stats: dict[str, Any] = client.api.stats(container_id, stream=False, one_shot=True)
    except (docker.errors.NotFound, docker.errors.APIError):
        return None
    return stats if isinstance(stats, dict) else None


def _docker_info(info: Mapping[str, Any]) -> Metric:
    family = GaugeMetricFamily(
        "inferwatch_docker_info",
        "The Docker engine: version, default runtime, whether an NVIDIA runtime is registered.",
        labels=["server_version", "default_runtime", "nvidia_runtime"],
    )
    nvidia = any("nvidia" in str(name) for name in c.mapping(info.get("Runtimes")))
    family.add_metric(
        [
            str(info.get("ServerVersion") or ""),
            str(info.get("DefaultRuntime") or ""),
            str(nvidia).lower(),
        ],
        1.0,
    )
    return family


def _container_families(
    readings: Sequence[ContainerReading],
    tracked: Mapping[str, _Tracked],
    log_events: Mapping[str, Counter[str]],
) -> list[Metric]:
    running = [r for r in readings if r.state == "running"]
    info = GaugeMetricFamily(
        "inferwatch_container_info",
        "A running container; value is always 1.",
        labels=["container", "container_id", "image", "image_version", "gpus"],
    )
    cpu = GaugeMetricFamily(
        "inferwatch_container_cpu_usage_ratio",
        "CPU used, in cores (Docker's CPU% / 100), since the previous poll.",
        labels=["container"],
    )
    memory = GaugeMetricFamily(
        "inferwatch_container_memory_usage_bytes",
        "Memory used without inactive page cache (Docker's formula).",
        labels=["container"],
    )
    limit = GaugeMetricFamily(
        "inferwatch_container_memory_limit_bytes", "Memory limit.", labels=["container"]
    )
    received = CounterMetricFamily(
        "inferwatch_container_network_receive_bytes", "Bytes received.", labels=["container"]
    )
    sent = CounterMetricFamily(
        "inferwatch_container_network_transmit_bytes", "Bytes sent.", labels=["container"]
    )
    restarts = CounterMetricFamily(
        "inferwatch_container_restarts", "Times the container started again.", labels=["container"]
    )
    events = CounterMetricFamily(
        "inferwatch_container_log_events",
        "Failure lines in a vLLM container's log, by kind.",
        labels=["container", "kind"],
    )
    states = GaugeMetricFamily(
        "inferwatch_docker_containers", "Containers by state.", labels=["state"]
    )
    for state, count in sorted(Counter(r.state for r in readings).items()):
        states.add_metric([state], float(count))
    for r in running:
        info.add_metric([r.name, r.id[:12], r.image, r.image_version, r.gpus], 1.0)
        restarts.add_metric([r.name], float(tracked[r.name].restarts) if r.name in tracked else 0.0)
        if r.cpu_ratio is not None:
            cpu.add_metric([r.name], r.cpu_ratio)
        if r.memory_used_bytes is not None:
            memory.add_metric([r.name], r.memory_used_bytes)
        if r.memory_limit_bytes is not None:
            limit.add_metric([r.name], r.memory_limit_bytes)
        if r.network is not None:
            received.add_metric([r.name], r.network[0])
            sent.add_metric([r.name], r.network[1])
    for name, counts in sorted(log_events.items()):
        for kind, _ in c.LOG_EVENT_KINDS:
            events.add_metric([name, kind], float(counts.get(kind, 0)))
    return [states, info, cpu, memory, limit, received, sent, restarts, events]
