"""The HTTP routes of the simulated LiteLLM 1.108.7 proxy (no database, master key only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent.simulator.config import Fault
from agent.simulator.faults import Behaviour, FaultBoard
from agent.simulator.http_common import (
    exposition_response,
    fault_middleware,
    internal_server_error,
    json_response,
)
from agent.simulator.litellm_catalog import (
    Deployment,
    Stream,
    health_endpoint,
    model_info_entry,
    models_list,
)
from agent.simulator.litellm_metrics import LiteLLMMetrics

LITELLM_VERSION = "1.108.7"
NO_DB = {
    "error": {
        "message": "No connected db.",
        "type": "no_db_connection",
        "param": None,
        "code": "400",
    }
}
METRICS_UNAUTHORIZED = (
    "Unauthorized access to metrics endpoint: No module named 'prisma' To allow unauthenticated "
    "access, set `litellm_settings.require_auth_for_metrics_endpoint: false` in your "
    "proxy_config.yaml."
)
READINESS_DETAILS = {
    "status": "healthy",
    "db": "Not connected",
    "cache": None,
    "litellm_version": LITELLM_VERSION,
    "success_callbacks": ["PrometheusLogger"],
    "use_aiohttp_transport": True,
    "log_level": "WARNING",
    "is_detailed_debug": False,
}


def health_error(fault: Fault, api_base: str) -> str:
    """The error LiteLLM reports for a deployment whose upstream misbehaves this way."""
    host = api_base.split("//", 1)[-1].split("/", 1)[0]
    if fault is Fault.REFUSE:
        address, _, port = host.rpartition(":")
        return (
            f"litellm.APIConnectionError: Hosted_vllmException - Cannot connect to host {host} "
            f"ssl:default [Connect call failed ('{address}', {port})]"
        )
    if fault in (Fault.HANG, Fault.SLOW):
        return "litellm.Timeout: Connection timed out after 60.0 seconds."
    if fault is Fault.ERROR_500:
        return "litellm.InternalServerError: Hosted_vllmException - Internal Server Error"
    return "litellm.APIError: Hosted_vllmException - Invalid response object from upstream"


class LiteLLMProxy:
    """State of the proxy: its deployments, the /health calls it answered, its metrics."""

    def __init__(
        self,
        deployments: list[Deployment],
        streams: list[Stream],
        *,
        master_key: str,
        faults: FaultBoard,
        workload_time: Callable[[], float],
        process_start: float,
    ) -> None:
        self.deployments = deployments
        self.master_key = master_key
        self._faults = faults
        self._workload_time = workload_time
        self._metrics = LiteLLMMetrics(deployments, streams, process_start=process_start)
        self._health_checks = [0] * len(deployments)
        self._model_info = {"data": [model_info_entry(d) for d in deployments]}

    def upstream_faults(self) -> dict[int, Fault]:
        """Deployments whose vLLM server has a fault, and which."""
        faulty: dict[int, Fault] = {}
        for index, deployment in enumerate(self.deployments):
            if deployment.vllm_index is not None:
                fault = self._faults.get(f"vllm:{deployment.vllm_index}").fault
                if fault is not Fault.NONE:
                    faulty[index] = fault
        return faulty

    def render_metrics(self) -> str:
        unhealthy = set(self.upstream_faults())
        return self._metrics.render(self._workload_time(), self._health_checks, unhealthy)

    def check_health(self, model: str | None) -> dict[str, Any]:
        """What `/health` answers; each healthy deployment checked counts one health check."""
        faulty = self.upstream_faults()
        healthy, unhealthy = [], []
        for index, deployment in enumerate(self.deployments):
            if model is not None and deployment.model_name != model:
                continue
            fault = faulty.get(index)
            if fault is None:
                self._health_checks[index] += 1
                healthy.append(health_endpoint(deployment, None))
            else:
                error = health_error(fault, deployment.api_base or "")
                unhealthy.append(health_endpoint(deployment, error))
        return {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
        }

    def backlog(self) -> dict[str, int]:
        state = self._metrics.state(self._workload_time(), set())
        return {
            "in_flight_requests": self._metrics.in_flight(state),
            "admitted_requests": 0,
            "queued_requests": 0,
            "rejected_requests": 0,
        }

    def app(self, *, target: str, behaviour: Behaviour) -> web.Application:
        routes = LiteLLMRoutes(self, target, behaviour)
        app = web.Application(middlewares=[fault_middleware(target, behaviour)])
        app.router.add_get("/health/liveliness", routes.alive)
        app.router.add_get("/health/liveness", routes.alive)
        app.router.add_get("/health/readiness", routes.readiness)
        app.router.add_get("/health/readiness/details", routes.readiness_details)
        app.router.add_get("/health", routes.health)
        app.router.add_get("/health/backlog", routes.backlog)
        app.router.add_get("/model/info", routes.model_info)
        app.router.add_get("/v1/model/info", routes.model_info)
        app.router.add_get("/models", routes.models)
        app.router.add_get("/v1/models", routes.models)
        app.router.add_get("/metrics", routes.metrics_redirect)
        app.router.add_get("/metrics/", routes.metrics)
        return app

    @property
    def model_info(self) -> dict[str, Any]:
        return self._model_info


class LiteLLMRoutes:
    """Request handlers; authentication as LiteLLM 1.108.7 does it without a database."""

    def __init__(self, proxy: LiteLLMProxy, target: str, behaviour: Behaviour) -> None:
        self._proxy = proxy
        self._target = target
        self._behaviour = behaviour

    def _key_state(self, request: web.Request) -> str:
        """Whether the request's Bearer key is "ok", "missing" or "wrong"."""
        header = request.headers.get("Authorization")
        if header is None:
            return "missing"
        if self._behaviour.faults.get(self._target).fault is Fault.UNAUTHORIZED:
            return "wrong"
        return "ok" if header.removeprefix("Bearer ").strip() == self._proxy.master_key else "wrong"

    def _authenticated(
        self, request: web.Request, respond: Callable[[], web.Response]
    ) -> web.Response:
        """`respond()`, or what LiteLLM answers a missing (plain 500) or wrong key (400)."""
        state = self._key_state(request)
        if state == "missing":
            return internal_server_error()
        if state == "wrong":
            return json_response(NO_DB, status=400)
        return respond()

    def _metrics_authenticated(
        self, request: web.Request, respond: Callable[[], web.Response]
    ) -> web.Response:
        if self._key_state(request) != "ok":
            return json_response(METRICS_UNAUTHORIZED, status=401)
        return respond()

    async def alive(self, request: web.Request) -> web.Response:
        return json_response("I'm alive!")

    async def readiness(self, request: web.Request) -> web.Response:
        return json_response({"status": "healthy", "db": "Not connected"})

    async def readiness_details(self, request: web.Request) -> web.Response:
        return self._authenticated(request, lambda: json_response(READINESS_DETAILS))

    async def health(self, request: web.Request) -> web.Response:
        model = request.query.get("model")
        return self._authenticated(request, lambda: json_response(self._proxy.check_health(model)))

    async def backlog(self, request: web.Request) -> web.Response:
        return self._authenticated(request, lambda: json_response(self._proxy.backlog()))

    async def model_info(self, request: web.Request) -> web.Response:
        return self._authenticated(request, lambda: json_response(self._proxy.model_info))

    async def models(self, request: web.Request) -> web.Response:
        deployments = self._proxy.deployments
        return self._authenticated(request, lambda: json_response(models_list(deployments)))

    async def metrics_redirect(self, request: web.Request) -> web.Response:
        location = f"{request.scheme}://{request.host}/metrics/"
        return self._metrics_authenticated(
            request, lambda: web.Response(status=307, headers={"location": location})
        )

    async def metrics(self, request: web.Request) -> web.Response:
        return self._metrics_authenticated(
            request, lambda: exposition_response(self._proxy.render_metrics())
        )
