"""The simulated stack: vLLM servers and a LiteLLM proxy in front of them, on loopback.

All servers share one event loop; `SimulatorThread` runs that loop in a daemon thread for
synchronous callers (the agent's `--demo`, sync tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
from collections.abc import Callable

from aiohttp import web

from agent.simulator.background import AsyncServer, BackgroundServer
from agent.simulator.config import DEFAULT_CONFIG, Fault, SimulatorConfig, VLLMInstanceSpec
from agent.simulator.faults import Behaviour, FaultBoard, FaultState, RequestCounter
from agent.simulator.http_common import Listener, open_listener
from agent.simulator.litellm_catalog import (
    LatencyProfile,
    build_streams,
    openai_deployment,
    vllm_deployment,
)
from agent.simulator.litellm_server import LiteLLMProxy
from agent.simulator.vllm_metrics import VLLMMetrics
from agent.simulator.vllm_server import vllm_app
from agent.simulator.workload import Workload

LITELLM = "litellm"
# The simulated servers have been up this long (in workload seconds) when the simulator starts.
WARMUP_SECONDS = 3600.0
CROSS_THREAD_TIMEOUT_SECONDS = 5.0


def vllm_target(index: int) -> str:
    return f"vllm:{index}"


class Simulator(AsyncServer):
    """A running simulated serving stack; see `agent.simulator` for the endpoints."""

    def __init__(
        self, config: SimulatorConfig = DEFAULT_CONFIG, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self._clock = clock
        self._started_at = clock()
        self._time_lock = threading.Lock()
        self._last_workload_time = WARMUP_SECONDS
        self._rng = random.Random(config.seed)
        self._vllm = [self._make_vllm(spec) for spec in config.vllm]
        targets = ([LITELLM] if config.litellm else []) + [
            vllm_target(i) for i in range(len(config.vllm))
        ]
        self._faults = FaultBoard(targets)
        self._counter = RequestCounter()
        self._hazard = False
        self._listeners: dict[str, Listener] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._behaviour: Behaviour | None = None

    def _make_vllm(self, spec: VLLMInstanceSpec) -> VLLMMetrics:
        weights = [self._rng.uniform(0.85, 1.15) for _ in range(spec.engines)]
        return VLLMMetrics(
            spec,
            Workload.sinusoidal(self._rng.uniform(1.5, 6.0), self._rng),
            engine_shares=tuple(w / sum(weights) for w in weights),
            latency_factor=self._rng.uniform(0.8, 1.3),
            process_start=self._started_at - WARMUP_SECONDS - self._rng.uniform(0, 120),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every server; returns once all of them accept connections."""
        if self._behaviour is not None:
            raise RuntimeError("the simulator is already started")
        self._loop = asyncio.get_running_loop()
        self._behaviour = Behaviour(
            faults=self._faults,
            counter=self._counter,
            latency_seconds=self.config.latency_seconds,
            failure_rate=self.config.failure_rate,
            rng=random.Random(self.config.seed),
            stopping=asyncio.Event(),
        )
        try:
            await self._start_servers(self._behaviour)
        except BaseException:
            await self.stop()
            raise

    async def _start_servers(self, behaviour: Behaviour) -> None:
        for index, metrics in enumerate(self._vllm):
            app = vllm_app(
                metrics.spec,
                target=vllm_target(index),
                behaviour=behaviour,
                render_metrics=self._metrics_renderer(metrics),
                created=int(self._started_at),
            )
            await self._listen(vllm_target(index), app, self._port(1 + index))
        if self.config.litellm:
            proxy = self._litellm_proxy()
            app = proxy.app(target=LITELLM, behaviour=behaviour)
            await self._listen(LITELLM, app, self._port(0))
        for target, listener in self._listeners.items():
            await listener.wait_serving()
            if self._faults.get(target).fault is Fault.REFUSE:
                listener.refuse()

    def _port(self, offset: int) -> int:
        return 0 if self.config.port_base is None else self.config.port_base + offset

    async def _listen(self, target: str, app: web.Application, port: int) -> None:
        self._listeners[target] = await open_listener(app, self.config.host, port)

    def _metrics_renderer(self, metrics: VLLMMetrics) -> Callable[[], str]:
        def render() -> str:
            return metrics.render(self._workload_time(), self._clock(), hazard=self._hazard)

        return render

    def _litellm_proxy(self) -> LiteLLMProxy:
        deployments = [
            vllm_deployment(
                metrics.spec.model,
                f"{self._listeners[vllm_target(index)].url}/v1",
                metrics.spec.max_model_len,
                metrics.workload,
                LatencyProfile(
                    metrics.latency("vllm:time_to_first_token_seconds"),
                    metrics.latency("vllm:e2e_request_latency_seconds"),
                    metrics.latency("vllm:request_time_per_output_token_seconds"),
                ),
                index,
            )
            for index, metrics in enumerate(self._vllm)
        ]
        deployments.append(openai_deployment(self._rng))
        return LiteLLMProxy(
            deployments,
            build_streams(deployments, self._rng),
            master_key=self.config.litellm_master_key,
            faults=self._faults,
            workload_time=self._workload_time,
            process_start=self._started_at - WARMUP_SECONDS,
        )

    async def stop(self) -> None:
        """Stop every server; hanging and endless responses end at once."""
        if self._behaviour is not None:
            self._behaviour.stopping.set()
        listeners, self._listeners = list(self._listeners.values()), {}
        await asyncio.gather(*(listener.close() for listener in listeners))
        self._behaviour = None
        self._loop = None

    # -- what callers see ------------------------------------------------------------------

    @property
    def litellm_url(self) -> str:
        return self._listener(LITELLM).url

    @property
    def litellm_master_key(self) -> str:
        return self.config.litellm_master_key

    @property
    def vllm_urls(self) -> list[str]:
        return [self._listener(vllm_target(i)).url for i in range(len(self._vllm))]

    def _listener(self, target: str) -> Listener:
        listener = self._listeners.get(target)
        if listener is None:
            raise RuntimeError(f"{target} is not running (not configured, or not started)")
        return listener

    def set_fault(self, target: str, fault: Fault, *, delay: float = 10.0) -> None:
        """Make "litellm", "vllm:<index>" or every vLLM server ("vllm:*") misbehave.

        Callable from any thread; REFUSE and its end take effect before this returns."""
        targets = self._targets(target)
        if fault is Fault.UNAUTHORIZED and targets != [LITELLM]:
            raise ValueError("UNAUTHORIZED only applies to litellm")
        for name in targets:
            self._faults.set(name, FaultState(fault, delay))
        self._on_loop(lambda: self._apply_listening(targets))

    def _targets(self, target: str) -> list[str]:
        if target == "vllm:*":
            return [vllm_target(i) for i in range(len(self._vllm))]
        if target not in self._faults.targets:
            raise ValueError(f"unknown target {target!r}; known: {self._faults.targets}")
        return [target]

    def _apply_listening(self, targets: list[str]) -> None:
        for target in targets:
            listener = self._listeners.get(target)
            if listener is None:
                continue
            if self._faults.get(target).fault is Fault.REFUSE:
                listener.refuse()
            else:
                listener.open()

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run `action` on the simulator's loop (now if already there) and wait for it."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                action()
            except BaseException as error:  # handed to the calling thread
                done.set_exception(error)
            else:
                done.set_result(None)

        loop.call_soon_threadsafe(run)
        done.result(timeout=CROSS_THREAD_TIMEOUT_SECONDS)

    def set_label_hazard(self, enabled: bool) -> None:
        """Give vLLM model and LoRA label values a quote, a backslash and a newline."""
        self._hazard = enabled

    def request_count(self, target: str, path: str) -> int:
        return self._counter.get(target, path)

    def _workload_time(self) -> float:
        """Seconds of simulated uptime; never goes back, even if the clock does."""
        elapsed = (self._clock() - self._started_at) * self.config.time_scale
        with self._time_lock:
            self._last_workload_time = max(self._last_workload_time, WARMUP_SECONDS + elapsed)
            return self._last_workload_time


class SimulatorThread(BackgroundServer[Simulator]):
    """Runs a `Simulator` on its own event loop in a daemon thread."""

    def __init__(
        self, config: SimulatorConfig = DEFAULT_CONFIG, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(Simulator(config, clock=clock), "inferwatch-simulator", Simulator.start)
