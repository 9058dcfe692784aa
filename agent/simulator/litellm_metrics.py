"""The `/metrics/` page of the simulated LiteLLM proxy (LiteLLM 1.108.7 families and labels).

Every request-level family carries LiteLLM's high-cardinality labels (key, user, team, user
agent, client address...) for several simulated clients; internal health checks appear under
`litellm-internal-health-check` as in the real proxy. Each model group's traffic follows the
workload of the vLLM server behind it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agent.simulator.interpreter import (
    interpreter_gauge,
    interpreter_terms,
    is_interpreter_family,
)
from agent.simulator.litellm_catalog import (
    API_KEYS,
    HEALTH_CHECK,
    Deployment,
    Stream,
)
from agent.simulator.plan import (
    CREATED_AFTER_START_SECONDS,
    ONE,
    GaugeSample,
    Labels,
    LinearSample,
    Plan,
    PlanPart,
    Terms,
    created_block,
)
from agent.simulator.template import CREATED_SUFFIX, TemplateFamily, load_families
from agent.simulator.textformat import family_header, format_value, label_block
from agent.simulator.workload import LogNormal, Progress, RegimeDistribution

TEMPLATE_FILES = ("litellm-1.108.7-metrics.txt", "litellm-1.108.7-unsampled-families.txt")

PROMPT_TOKENS_PER_REQUEST = 806.5
COMPLETION_TOKENS_PER_REQUEST = 265.9
HEALTH_PROMPT_TOKENS = 10.0
HEALTH_COMPLETION_TOKENS = 1.0
BACKGROUND_HEALTH_CHECK_SECONDS = 300.0
BUDGET_PERIOD_HOURS = 720.0
UNLIMITED = float(sys.maxsize)
PROVIDER_REQUESTS_PER_MINUTE = 10000.0
PROVIDER_TOKENS_PER_MINUTE = 10_000_000.0

QUEUE_TIME = RegimeDistribution(LogNormal(0.004, 0.5), LogNormal(0.02, 0.8))
OVERHEAD = RegimeDistribution(LogNormal(0.004, 0.4), LogNormal(0.009, 0.5))
HEALTH_CHECK_LATENCY = LogNormal(0.08, 0.4)


@dataclass(frozen=True)
class LiteLLMState:
    """What the gauges of one render read."""

    uptime: float
    progress: tuple[Progress, ...]
    unhealthy: frozenset[int]


@dataclass(frozen=True)
class _Source:
    """Traffic behind one sample: a deployment's clients (by share) or its health checks."""

    deployment: int
    share: float
    health: bool


@dataclass
class _Child:
    labels: Labels
    sources: list[_Source] = field(default_factory=list)


Variant = tuple[dict[str, str], float]
# Which sources a family counts, with extra labels and an amount per request (or check).
VariantRule = Callable[[Deployment, bool], list[Variant]]
HistogramRule = Callable[[Deployment, bool], RegimeDistribution | None]
_Part = PlanPart[LiteLLMState]
_Rendered = tuple[Labels, list[_Part]]
GaugeValue = Callable[
    [dict[str, str], list[_Source]], float | Terms | Callable[[LiteLLMState], float]
]
IN_FLIGHT_FAMILY = "litellm_in_flight_requests"


def calm_index(deployment: int) -> int:
    return 2 + 3 * deployment


def busy_index(deployment: int) -> int:
    return 3 + 3 * deployment


def health_index(deployment: int) -> int:
    return 4 + 3 * deployment


class LiteLLMMetrics:
    """Renders the proxy's exposition for a workload time."""

    def __init__(
        self, deployments: list[Deployment], streams: list[Stream], *, process_start: float
    ) -> None:
        self.deployments = deployments
        self._streams = streams
        self._process_start = process_start
        self._plan = self._build_plan()

    def render(self, workload_time: float, health_checks: list[int], unhealthy: set[int]) -> str:
        """The page at `workload_time`, counting the `/health` calls answered per deployment."""
        state = self.state(workload_time, unhealthy)
        totals = [workload_time, 1.0]
        for progress, checks in zip(state.progress, health_checks, strict=True):
            background = math.floor(workload_time / BACKGROUND_HEALTH_CHECK_SECONDS)
            totals += [progress.calm_requests, progress.busy_requests, background + checks]
        return self._plan.render(totals, state)

    def state(self, workload_time: float, unhealthy: set[int]) -> LiteLLMState:
        progress = tuple(d.workload.at(workload_time) for d in self.deployments)
        return LiteLLMState(workload_time, progress, frozenset(unhealthy))

    def in_flight(self, state: LiteLLMState) -> int:
        """Requests the proxy is serving now (Little's law), plus the one asking."""
        busy = sum(
            p.rate * d.latency.request.mean_now(p.busy_share)
            for d, p in zip(self.deployments, state.progress, strict=True)
        )
        return 1 + round(busy)

    def _build_plan(self) -> Plan[LiteLLMState]:
        parts: list[PlanPart[LiteLLMState]] = []
        created = self._process_start + CREATED_AFTER_START_SECONDS
        for family in load_families(*TEMPLATE_FILES).values():
            children = self._children(family)
            parts.append(family_header(family.exposed_name, family.kind, family.help))
            for _, samples in children:
                parts.extend(samples)
            label_sets = [labels for labels, _ in children]
            if family.has_created and label_sets:
                name = family.name + CREATED_SUFFIX
                parts.append(created_block(name, family.help, label_sets, created))
                created += len(label_sets) * 1e-4
        return Plan(tuple(parts))

    def _children(self, family: TemplateFamily) -> list[_Rendered]:
        if is_interpreter_family(family.name) or not family.label_names:
            return [(c.labels, self._static_parts(family, c.labels)) for c in family.children]
        if family.name in COUNTERS:
            return self._counter_children(family, COUNTERS[family.name])
        if family.name in HISTOGRAMS:
            return self._histogram_children(family, HISTOGRAMS[family.name])
        if family.name in GAUGES:
            return self._gauge_children(family, *GAUGES[family.name])
        return []

    def _static_parts(self, family: TemplateFamily, labels: Labels) -> list[_Part]:
        """A family without labels (or an interpreter one) as in the template, aging with uptime."""
        parts: list[_Part] = []
        child = next(c for c in family.children if c.labels == labels)
        for sample in child.samples:
            prefix = f"{family.name}{sample.suffix}{label_block(labels)} "
            if family.kind == "counter":
                parts.append(LinearSample(prefix, *interpreter_terms(sample.value)))
            elif family.name == IN_FLIGHT_FAMILY:
                parts.append(GaugeSample(prefix, lambda state: float(self.in_flight(state))))
            else:
                value = interpreter_gauge(family.name, sample.value, self._process_start)
                parts.append(f"{prefix}{format_value(value)}\n")
        return parts

    def _merged(self, family: TemplateFamily, variants: VariantRule) -> dict[Labels, _Child]:
        """Children by the labels the family keeps: e.g. without `user_agent`, the clients
        that differ only by it add up."""
        merged: dict[Labels, _Child] = {}
        for source, labels in self._sources():
            deployment = self.deployments[source.deployment]
            for extra, amount in variants(deployment, source.health):
                full = labels | extra
                selected = tuple((name, full[name]) for name in family.label_names)
                child = merged.setdefault(selected, _Child(selected))
                child.sources.append(
                    _Source(source.deployment, source.share * amount, source.health)
                )
        return merged

    def _sources(self) -> Iterator[tuple[_Source, dict[str, str]]]:
        for stream in self._streams:
            yield _Source(stream.index, stream.share, health=False), traffic_labels(stream)
        for index, deployment in enumerate(self.deployments):
            yield _Source(index, 1.0, health=True), health_labels(deployment)

    def _counter_children(self, family: TemplateFamily, variants: VariantRule) -> list[_Rendered]:
        whole = family.name not in FRACTIONAL_COUNTERS
        children: list[_Rendered] = []
        for labels, child in self._merged(family, variants).items():
            prefix = f"{family.exposed_name}{label_block(labels)} "
            terms = _counted(child.sources, lambda source, regime: 1.0)
            children.append((labels, [LinearSample(prefix, terms, whole)]))
        return children

    def _histogram_children(self, family: TemplateFamily, rule: HistogramRule) -> list[_Rendered]:
        def observed(deployment: Deployment, health: bool) -> list[Variant]:
            if rule(deployment, health) is None:
                return []
            return [({}, 1.0 if health else 1.0 - deployment.failure_share)]

        children: list[_Rendered] = []
        for labels, child in self._merged(family, observed).items():
            parts: list[_Part] = []
            for bound in [*family.bucket_bounds, "count", "sum"]:

                def weight(source: _Source, regime: str, bound: str = bound) -> float:
                    model = rule(self.deployments[source.deployment], source.health)
                    assert model is not None
                    return _weight(model.busy if regime == "busy" else model.calm, bound)

                terms = _counted(child.sources, weight)
                if bound in ("count", "sum"):
                    prefix = f"{family.name}_{bound}{label_block(labels)} "
                else:
                    prefix = f"{family.name}_bucket{label_block((*labels, ('le', bound)))} "
                parts.append(LinearSample(prefix, terms, whole=bound != "sum"))
            children.append((labels, parts))
        return children

    def _gauge_children(
        self, family: TemplateFamily, variants: VariantRule, value: GaugeValue
    ) -> list[_Rendered]:
        children: list[_Rendered] = []
        for labels, child in self._merged(family, variants).items():
            prefix = f"{family.name}{label_block(labels)} "
            result = value(dict(labels), child.sources)
            part: _Part
            if isinstance(result, float):
                part = f"{prefix}{format_value(result)}\n"
            elif isinstance(result, tuple):
                part = LinearSample(prefix, result, whole=False)
            else:
                part = GaugeSample(prefix, result)
            children.append((labels, [part]))
        return children


def _weight(distribution: LogNormal, bound: str) -> float:
    """What one observation adds to a bucket ("+Inf", "0.5"...), to `_count` or to `_sum`."""
    if bound == "sum":
        return distribution.mean
    if bound == "count":
        return 1.0
    return distribution.cdf(float(bound))


def traffic_labels(stream: Stream) -> dict[str, str]:
    deployment, client = stream.deployment, stream.client
    return {
        "api_base": deployment.api_base or "",
        "api_key_alias": client.key.alias,
        "api_provider": deployment.provider,
        "client_ip": client.client_ip,
        "end_user": "None",
        "hashed_api_key": client.key.hashed,
        "litellm_model_name": deployment.litellm_model_name,
        "model": deployment.litellm_model_name,
        "model_group": deployment.model_name,
        "model_id": deployment.model_id,
        "org_alias": "None",
        "org_id": "None",
        "requested_model": deployment.model_name,
        "route": "/chat/completions",
        "service_tier": "None",
        "team": client.key.team,
        "team_alias": client.key.team_alias,
        "user": client.key.user,
        "user_agent": client.user_agent,
        "user_email": client.key.user_email,
    }


def health_labels(deployment: Deployment) -> dict[str, str]:
    """Labels of LiteLLM's own health-check calls, as the captured exposition shows them."""
    labels = dict.fromkeys(
        (
            "client_ip",
            "end_user",
            "org_alias",
            "org_id",
            "route",
            "service_tier",
            "user",
            "user_agent",
            "user_email",
        ),
        "None",
    )
    labels.update(dict.fromkeys(("api_base", "model_group", "model_id", "requested_model"), ""))
    labels.update(
        dict.fromkeys(("api_key_alias", "hashed_api_key", "team", "team_alias"), HEALTH_CHECK)
    )
    labels.update(
        api_provider=deployment.provider,
        litellm_model_name=deployment.litellm_model_name,
        model=deployment.litellm_model_name,
    )
    return labels


def _counted(sources: list[_Source], weight: Callable[[_Source, str], float]) -> Terms:
    """Terms over the totals: each client's share of its deployment's calm and busy requests
    (or of its health checks), times what one of them adds."""
    terms: list[tuple[int, float]] = []
    for source in sources:
        if source.health:
            terms.append((health_index(source.deployment), source.share * weight(source, "calm")))
        else:
            terms.append((calm_index(source.deployment), source.share * weight(source, "calm")))
            terms.append((busy_index(source.deployment), source.share * weight(source, "busy")))
    return tuple(terms)


def _succeeded(deployment: Deployment, health: bool) -> float:
    return 1.0 if health else 1.0 - deployment.failure_share


def _cost_per_request(deployment: Deployment, health: bool) -> float:
    prompt, completion = _tokens_per_request(health)
    return prompt * deployment.input_cost_per_token + completion * deployment.output_cost_per_token


def _tokens_per_request(health: bool) -> tuple[float, float]:
    if health:
        return HEALTH_PROMPT_TOKENS, HEALTH_COMPLETION_TOKENS
    return PROMPT_TOKENS_PER_REQUEST, COMPLETION_TOKENS_PER_REQUEST


def proxy_requests(deployment: Deployment, health: bool) -> list[Variant]:
    succeeded: list[Variant] = [({"status_code": "200"}, _succeeded(deployment, health))]
    if health:
        return succeeded
    return [*succeeded, ({"status_code": deployment.failure_status}, deployment.failure_share)]


def failures(deployment: Deployment, health: bool) -> list[Variant]:
    if health:
        return []
    labels = {
        "exception_class": deployment.failure_class,
        "exception_status": deployment.failure_status,
    }
    return [(labels, deployment.failure_share)]


def successes(deployment: Deployment, health: bool) -> list[Variant]:
    return [({}, _succeeded(deployment, health))]


def attempts(deployment: Deployment, health: bool) -> list[Variant]:
    return [({}, 1.0)]


def prompt_tokens(deployment: Deployment, health: bool) -> list[Variant]:
    return [({}, _succeeded(deployment, health) * _tokens_per_request(health)[0])]


def completion_tokens(deployment: Deployment, health: bool) -> list[Variant]:
    return [({}, _succeeded(deployment, health) * _tokens_per_request(health)[1])]


def total_tokens(deployment: Deployment, health: bool) -> list[Variant]:
    return [({}, _succeeded(deployment, health) * sum(_tokens_per_request(health)))]


def spend(deployment: Deployment, health: bool) -> list[Variant]:
    return [({}, _succeeded(deployment, health) * _cost_per_request(deployment, health))]


def traffic_only(deployment: Deployment, health: bool) -> list[Variant]:
    return [] if health else [({}, 1.0)]


def openai_traffic(deployment: Deployment, health: bool) -> list[Variant]:
    """Only providers that send rate-limit headers (OpenAI here) feed the remaining_* gauges."""
    return [({}, 1.0)] if not health and deployment.provider == "openai" else []


COUNTERS: dict[str, VariantRule] = {
    "litellm_proxy_total_requests_metric": proxy_requests,
    "litellm_proxy_failed_requests_metric": failures,
    "litellm_llm_api_failed_requests_metric": failures,
    "litellm_requests_metric": successes,
    "litellm_deployment_success_responses": successes,
    "litellm_deployment_failure_responses": failures,
    "litellm_deployment_total_requests": attempts,
    "litellm_input_tokens_metric": prompt_tokens,
    "litellm_output_tokens_metric": completion_tokens,
    "litellm_total_tokens_metric": total_tokens,
    "litellm_spend_metric": spend,
}
FRACTIONAL_COUNTERS = {"litellm_spend_metric"}

HEALTH_CHECK_DISTRIBUTION = RegimeDistribution(HEALTH_CHECK_LATENCY, HEALTH_CHECK_LATENCY)

HISTOGRAMS: dict[str, HistogramRule] = {
    "litellm_request_total_latency_metric": lambda d, health: (
        HEALTH_CHECK_DISTRIBUTION if health else d.latency.request.scaled(1.01)
    ),
    "litellm_llm_api_latency_metric": lambda d, health: (
        HEALTH_CHECK_DISTRIBUTION if health else d.latency.request
    ),
    "litellm_llm_api_time_to_first_token_metric": lambda d, health: (
        None if health else d.latency.time_to_first_token
    ),
    "litellm_request_queue_time_seconds": lambda d, health: None if health else QUEUE_TIME,
    "litellm_deployment_latency_per_output_token": lambda d, health: (
        d.latency.time_per_output_token
    ),
    "litellm_overhead_latency_metric": lambda d, health: None if health else OVERHEAD,
}

KEYS_BY_ALIAS = {key.alias: key for key in API_KEYS}
TEAM_BUDGETS = {key.team: key.team_max_budget for key in API_KEYS}


def remaining_key_budget(labels: dict[str, str], sources: list[_Source]) -> float | Terms:
    key = KEYS_BY_ALIAS.get(labels["api_key_alias"])
    if key is None:  # the health-check key has no budget
        return math.inf
    return ((ONE, key.max_budget), *_counted(sources, lambda source, regime: -1.0))


def remaining_team_budget(labels: dict[str, str], sources: list[_Source]) -> float | Terms:
    budget = TEAM_BUDGETS.get(labels["team"])
    if budget is None:
        return math.inf
    return ((ONE, budget), *_counted(sources, lambda source, regime: -1.0))


def key_max_budget(labels: dict[str, str], sources: list[_Source]) -> float:
    return KEYS_BY_ALIAS[labels["api_key_alias"]].max_budget


def team_max_budget(labels: dict[str, str], sources: list[_Source]) -> float:
    return TEAM_BUDGETS[labels["team"]]


def budget_hours_left(
    labels: dict[str, str], sources: list[_Source]
) -> Callable[[LiteLLMState], float]:
    return lambda state: round(BUDGET_PERIOD_HOURS - (state.uptime / 3600) % BUDGET_PERIOD_HOURS, 2)


def no_budget(labels: dict[str, str], sources: list[_Source]) -> float:
    return math.inf


def no_rate_limit(labels: dict[str, str], sources: list[_Source]) -> float:
    return UNLIMITED


def deployment_state(
    labels: dict[str, str], sources: list[_Source]
) -> Callable[[LiteLLMState], float]:
    """0 healthy, 2 complete outage (a faulty vLLM server behind the deployment)."""
    index = sources[0].deployment
    return lambda state: 2.0 if index in state.unhealthy else 0.0


def provider_remaining(per_minute: float, per_request: float) -> GaugeValue:
    def value(labels: dict[str, str], sources: list[_Source]) -> Callable[[LiteLLMState], float]:
        def remaining(state: LiteLLMState) -> float:
            rate = sum(state.progress[s.deployment].rate * s.share for s in sources)
            return float(max(0, round(per_minute - 60 * rate * per_request)))

        return remaining

    return value


GAUGES: dict[str, tuple[VariantRule, GaugeValue]] = {
    "litellm_deployment_state": (traffic_only, deployment_state),
    "litellm_remaining_requests_metric": (
        openai_traffic,
        provider_remaining(PROVIDER_REQUESTS_PER_MINUTE, 1.0),
    ),
    "litellm_remaining_tokens_metric": (
        openai_traffic,
        provider_remaining(
            PROVIDER_TOKENS_PER_MINUTE, PROMPT_TOKENS_PER_REQUEST + COMPLETION_TOKENS_PER_REQUEST
        ),
    ),
    "litellm_remaining_api_key_budget_metric": (spend, remaining_key_budget),
    "litellm_api_key_max_budget_metric": (traffic_only, key_max_budget),
    "litellm_api_key_budget_remaining_hours_metric": (traffic_only, budget_hours_left),
    "litellm_remaining_team_budget_metric": (spend, remaining_team_budget),
    "litellm_team_max_budget_metric": (traffic_only, team_max_budget),
    "litellm_team_budget_remaining_hours_metric": (traffic_only, budget_hours_left),
    "litellm_remaining_user_budget_metric": (traffic_only, no_budget),
    "litellm_remaining_api_key_requests_for_model": (traffic_only, no_rate_limit),
    "litellm_remaining_api_key_tokens_for_model": (traffic_only, no_rate_limit),
}
