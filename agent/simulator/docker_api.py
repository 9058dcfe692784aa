"""A fake Docker Engine API (dockerd 20.10.24, API 1.41) that the real `docker` SDK can use.

It serves, on a unix socket (or loopback TCP): `/_ping`, `/version`, `/info`, the container list
with its `all` and `filters` (status, label, name, id, ancestor, exited), inspect (GPUs in
`HostConfig.DeviceRequests`), stats (one-shot at once with zeroed `precpu_stats`; otherwise
after the real daemon's 1 s wait for a second sample), logs (the multiplexed frames of non-TTY
containers; `follow` is not emulated), the endless `/events` stream, and image inspect. The
containers' lifecycle is driven from any thread and emits dockerd's events. The `--demo` mode
points `DOCKER_HOST` at it; real tests use a real dockerd.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from aiohttp import web

from agent.simulator.background import AsyncServer, BackgroundServer
from agent.simulator.config import Fault, VLLMInstanceSpec
from agent.simulator.docker_daemon import Daemon
from agent.simulator.docker_logs import cuda_oom_message, vllm_engine_core_failure
from agent.simulator.docker_routes import DockerRoutes
from agent.simulator.docker_state import FakeContainer
from agent.simulator.docker_wire import digest
from agent.simulator.faults import DEFAULT_FAULT_DELAY, FaultBoard, FaultState, RequestCounter
from agent.simulator.http_common import fault_middleware, plain_behaviour

__all__ = [
    "FakeContainer",
    "FakeDockerAPI",
    "FakeDockerAPIThread",
    "cuda_oom_message",
    "demo_containers",
    "vllm_engine_core_failure",
]

T = TypeVar("T")
SHUTDOWN_TIMEOUT_SECONDS = 1.0
CROSS_THREAD_TIMEOUT_SECONDS = 5.0
SOCKET_NAME = "docker.sock"
TARGET = "docker"


class FakeDockerAPI(AsyncServer):
    """The fake daemon's server. Its container methods may be called from any thread (they
    run on the server's loop and return once done); `start` and `stop` run on that loop."""

    def __init__(
        self, containers: Sequence[FakeContainer], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._daemon = Daemon(containers, clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._socket_dir: Path | None = None
        self._socket_path: str | None = None
        self._site: web.BaseSite | None = None
        self._faults = FaultBoard([TARGET])
        self._counter = RequestCounter()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, socket_path: str | None = None, *, tcp: bool = False) -> None:
        """Serve on `socket_path` (default: docker.sock in a new temporary folder), or on
        127.0.0.1 at an ephemeral port with `tcp`; returns once it accepts connections."""
        if self._runner is not None:
            raise RuntimeError("the fake Docker API is already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        behaviour = plain_behaviour(self._faults, self._counter)
        behaviour.stopping = self._stopping
        app = DockerRoutes(self._daemon, self._stopping).app(
            middlewares=[fault_middleware(TARGET, behaviour)]
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            handler_cancellation=True,  # a client leaving ends its event stream
        )
        await runner.setup()
        self._runner = runner
        try:
            self._base_url = await self._listen(runner, socket_path, tcp=tcp)
        except BaseException:
            await self.stop()
            raise

    async def _listen(self, runner: web.AppRunner, socket_path: str | None, *, tcp: bool) -> str:
        if tcp:
            self._site = web.TCPSite(runner, "127.0.0.1", 0)
            await self._site.start()
            host, port = runner.addresses[0][:2]
            return f"tcp://{host}:{port}"
        if socket_path is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="inferwatch-docker-"))
            socket_path = str(self._socket_dir / SOCKET_NAME)
        self._socket_path = socket_path
        self._site = web.UnixSite(runner, socket_path)
        await self._site.start()
        return f"unix://{socket_path}"

    async def stop(self) -> None:
        """End every stream (event streams see the end of their response) and stop serving."""
        if self._stopping is not None:
            self._stopping.set()
        self._daemon.hub.close_streams()
        runner, self._runner = self._runner, None
        self._site = None
        if runner is not None:
            await runner.cleanup()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        self._base_url = None
        self._loop = None

    @property
    def base_url(self) -> str:
        """What to put in `DOCKER_HOST` (or `DockerClient(base_url=...)`)."""
        if self._base_url is None:
            raise RuntimeError("the fake Docker API is not started")
        return self._base_url

    # -- what tests and the demo drive --------------------------------------------------------

    @staticmethod
    def container_id(name: str) -> str:
        """The 64-hex id the container named `name` has (stable across runs)."""
        return digest("container", name)

    def add_container(self, container: FakeContainer) -> None:
        """Create it now ("create" event) and start it unless `container.running` is False."""
        self._call(lambda: self._daemon.add(container))

    def start_container(self, name: str) -> None:
        """Start a stopped container ("start"); no-op when it runs."""
        self._call(lambda: self._daemon.start(name))

    def stop_container(self, name: str, *, exit_code: int = 0) -> None:
        """`docker stop`: "kill" (signal 15), "die" (`exit_code`), "stop"; no-op when stopped."""
        self._call(lambda: self._daemon.stop(name, exit_code))

    def restart_container(self, name: str, *, exit_code: int = 137) -> None:
        """A restart-policy restart: "die" (`exit_code`), then "start"; RestartCount + 1."""
        self._call(lambda: self._daemon.restart(name, exit_code))

    def remove_container(self, name: str) -> None:
        """`docker rm -f`: "kill" (signal 9) and "die" if it runs, then "destroy"."""
        self._call(lambda: self._daemon.remove(name))

    def append_log(self, name: str, line: str, stream: str = "stdout") -> None:
        """Log `line` now on "stdout" or "stderr"; several lines become several records."""
        self._call(lambda: self._daemon.append_log(name, line, stream))

    def set_fault(self, fault: Fault, *, delay: float = DEFAULT_FAULT_DELAY) -> None:
        """Misbehave from the next request on (call from any thread but the server's).

        REFUSE is dockerd gone: the socket stops listening, open connections drop and the
        socket file is removed (a TCP listener refuses); any other fault listens again."""
        if fault is Fault.UNAUTHORIZED:
            raise ValueError("UNAUTHORIZED does not apply to the Docker Engine API")
        self._faults.set(TARGET, FaultState(fault, delay))
        loop = self._loop
        if loop is None:
            return
        change = self._go_away() if fault is Fault.REFUSE else self._come_back()
        asyncio.run_coroutine_threadsafe(change, loop).result(CROSS_THREAD_TIMEOUT_SECONDS)

    async def _go_away(self) -> None:
        site, self._site = self._site, None
        if site is None or self._runner is None:
            return
        await site.stop()
        server = self._runner.server
        for connection in server.connections if server is not None else []:
            connection.force_close()
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket_path)  # noqa: PTH108 (a local unlink; no thread needed)

    async def _come_back(self) -> None:
        if self._site is not None or self._runner is None or self._socket_path is None:
            return  # listening (a TCP fake does not come back on its old port)
        self._site = web.UnixSite(self._runner, self._socket_path)
        await self._site.start()

    def request_count(self, path: str) -> int:
        return self._counter.get(TARGET, path)

    def close_event_streams(self) -> None:
        """End every open `/events` stream but keep serving (clients must reconnect)."""
        self._call(self._daemon.hub.close_streams)

    def _call(self, action: Callable[[], T]) -> T:
        """Run `action` on the server's loop (now if already there, or if not started)."""
        loop = self._loop
        if loop is None or _running_loop() is loop:
            return action()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(action())
            except BaseException as error:  # handed to the calling thread
                done.set_exception(error)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=CROSS_THREAD_TIMEOUT_SECONDS)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class FakeDockerAPIThread(BackgroundServer[FakeDockerAPI]):
    """Runs a `FakeDockerAPI` on its own event loop in a daemon thread (the demo, sync tests)."""

    def __init__(
        self,
        containers: Sequence[FakeContainer],
        *,
        clock: Callable[[], float] = time.time,
        tcp: bool = False,
    ) -> None:
        super().__init__(
            FakeDockerAPI(containers, clock=clock),
            "inferwatch-fake-docker",
            lambda api: api.start(tcp=tcp),
        )


VLLM_IMAGE_ENV = (
    "PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin"
    ":/usr/bin:/sbin:/bin",
    "NVIDIA_VISIBLE_DEVICES=all",  # CUDA images set it: the GPUs are in DeviceRequests
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    "CUDA_VERSION=12.8.1",
    "VLLM_USAGE_SOURCE=production-docker-image",
)
COMPOSE_PROJECT = "inferwatch"
COMPOSE_NETWORK = f"{COMPOSE_PROJECT}_default"
LITELLM_IMAGE = "ghcr.io/berriai/litellm:main-v1.108.7"
PROMETHEUS_IMAGE = "prom/prometheus:v2.55.1"
GIB = 1024**3


def _compose_labels(service: str, **extra: str) -> MappingProxyType[str, str]:
    return MappingProxyType(
        {
            "com.docker.compose.project": COMPOSE_PROJECT,
            "com.docker.compose.service": service,
            "com.docker.compose.container-number": "1",
            **extra,
        }
    )


def _vllm_container(
    url: str, spec: VLLMInstanceSpec, name: str, gpus: tuple[str, ...]
) -> FakeContainer:
    port = re.search(r":(\d+)(?:/|$)", url)
    command = ["vllm", "serve", spec.model, "--port", port.group(1) if port else "8000"]
    command += ["--max-model-len", str(spec.max_model_len)]
    if spec.engines > 1:
        command += ["--data-parallel-size", str(spec.engines)]
    return FakeContainer(
        name=name,
        image=f"vllm/vllm-openai:v{spec.version}",
        labels=_compose_labels(name, **{"inferwatch.url": url}),
        gpus=gpus,
        env=(*VLLM_IMAGE_ENV, "HF_HOME=/root/.cache/huggingface"),
        command=tuple(command),
    )


def demo_containers(
    vllm_urls: Sequence[str], specs: Sequence[VLLMInstanceSpec] = ()
) -> list[FakeContainer]:
    """One `vllm/vllm-openai:v<version>` container per vLLM URL (labelled `inferwatch.url`,
    one GPU per engine: ("0",), ("1", "2"), ...), then LiteLLM and Prometheus. `specs` are the
    simulated servers' specs, in URL order (missing ones: the default spec)."""
    containers = []
    next_gpu = 0
    for index, url in enumerate(vllm_urls):
        spec = specs[index] if index < len(specs) else VLLMInstanceSpec()
        gpus = tuple(str(gpu) for gpu in range(next_gpu, next_gpu + spec.engines))
        next_gpu += spec.engines
        containers.append(_vllm_container(url, spec, f"vllm-{index}", gpus))
    containers.append(
        FakeContainer(
            name="litellm",
            image=LITELLM_IMAGE,
            labels=_compose_labels("litellm"),
            env=("STORE_MODEL_IN_DB=True",),
            network_mode=COMPOSE_NETWORK,
            memory_limit_bytes=4 * GIB,
        )
    )
    containers.append(
        FakeContainer(
            name="prometheus",
            image=PROMETHEUS_IMAGE,
            labels=_compose_labels("prometheus"),
            network_mode=COMPOSE_NETWORK,
        )
    )
    return containers
