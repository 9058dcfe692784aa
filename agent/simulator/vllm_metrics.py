"""The `/metrics` page of one simulated vLLM server.

Families, HELP texts, label sets and buckets come from the vLLM 0.33.0 exposition in `data/`;
versions before 0.33 drop the families their release did not define (per the name lists in
`data/`), and versions before 0.11 use the old generation of names
(`gpu_cache_usage_perc`, `gpu_prefix_cache_*`, `time_per_output_token_seconds`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from agent.simulator.config import VLLMInstanceSpec, parse_version
from agent.simulator.interpreter import (
    interpreter_gauge,
    interpreter_terms,
    is_interpreter_family,
)
from agent.simulator.plan import (
    CREATED_AFTER_START_SECONDS,
    GaugeSample,
    Labels,
    LinearSample,
    Plan,
    PlanPart,
    Terms,
    created_block,
)
from agent.simulator.template import (
    CREATED_SUFFIX,
    TemplateChild,
    TemplateFamily,
    TemplateSample,
    load_families,
    read_data_file,
)
from agent.simulator.textformat import family_header, format_value, label_block
from agent.simulator.workload import LogNormal, Progress, RegimeDistribution, Workload

TEMPLATE_FILE = "vllm-0.33.0-metrics.txt"
EXTRA_FAMILIES_FILE = "vllm-extra-families.txt"
# Names each release defines (the oldest list also stands for older releases).
NAME_LISTS = (
    ((0, 11, 0), "vllm-names-0.11.0.txt"),
    ((0, 12, 0), "vllm-names-0.12.0.txt"),
    ((0, 15, 0), "vllm-names-0.15.0.txt"),
    ((0, 33, 0), "vllm-names-0.33.0.txt"),
)

# Renamed in 0.11: the new name -> the name vLLM used before.
OLD_NAME_OF = {
    "vllm:kv_cache_usage_perc": "vllm:gpu_cache_usage_perc",
    "vllm:prefix_cache_queries": "vllm:gpu_prefix_cache_queries",
    "vllm:prefix_cache_hits": "vllm:gpu_prefix_cache_hits",
    "vllm:inter_token_latency_seconds": "vllm:time_per_output_token_seconds",
}
HIDDEN_SINCE_0_11 = frozenset(OLD_NAME_OF.values()) - {"vllm:time_per_output_token_seconds"}
LORA_FAMILY = "vllm:lora_requests_info"
CACHE_CONFIG_FAMILY = "vllm:cache_config_info"

# A value appended to model and LoRA names when the label hazard is on.
LABEL_HAZARD = ' we"ird\\mo\ndel'

# Indexes of the workload totals, after the plan's own (uptime, one).
CALM, BUSY = 2, 3

# Latency histograms whose shape follows the load; the rest scale the template's shape.
LATENCY = {
    "vllm:time_to_first_token_seconds": RegimeDistribution(
        LogNormal(0.05, 0.45), LogNormal(0.18, 0.6)
    ),
    "vllm:inter_token_latency_seconds": RegimeDistribution(
        LogNormal(0.022, 0.25), LogNormal(0.035, 0.35)
    ),
    "vllm:request_time_per_output_token_seconds": RegimeDistribution(
        LogNormal(0.024, 0.2), LogNormal(0.038, 0.3)
    ),
    "vllm:e2e_request_latency_seconds": RegimeDistribution(
        LogNormal(5.0, 0.7), LogNormal(8.5, 0.75)
    ),
    "vllm:request_queue_time_seconds": RegimeDistribution(
        LogNormal(0.01, 0.8), LogNormal(0.6, 1.0)
    ),
    "vllm:request_inference_time_seconds": RegimeDistribution(
        LogNormal(4.9, 0.7), LogNormal(8.0, 0.75)
    ),
    "vllm:request_prefill_time_seconds": RegimeDistribution(
        LogNormal(0.04, 0.5), LogNormal(0.15, 0.6)
    ),
    "vllm:request_decode_time_seconds": RegimeDistribution(
        LogNormal(4.8, 0.7), LogNormal(7.8, 0.75)
    ),
}
UNSCALED_LATENCY = {"vllm:request_queue_time_seconds"}
KV_CACHE_USAGE_AT_PEAK = 0.9


@dataclass(frozen=True)
class VLLMState:
    """What the gauges of one render read."""

    progress: Progress
    wall_time: float


GaugeRule = Callable[[VLLMState], float]


@dataclass(frozen=True)
class _Child:
    """A template child placed on one engine of this server."""

    labels: Labels
    template: TemplateChild
    share: float


class VLLMMetrics:
    """Renders the exposition of one vLLM server for a workload time."""

    def __init__(
        self,
        spec: VLLMInstanceSpec,
        workload: Workload,
        *,
        engine_shares: tuple[float, ...],
        latency_factor: float,
        process_start: float,
    ) -> None:
        self.spec = spec
        self.workload = workload
        self._engine_shares = engine_shares
        self._latency = {
            name: model if name in UNSCALED_LATENCY else model.scaled(latency_factor)
            for name, model in LATENCY.items()
        }
        self._process_start = process_start
        self._plans: dict[bool, Plan[VLLMState]] = {}

    def latency(self, family_name: str) -> RegimeDistribution:
        """The distribution behind one of the `LATENCY` histograms of this server."""
        return self._latency[family_name]

    def render(self, workload_time: float, wall_time: float, *, hazard: bool = False) -> str:
        progress = self.workload.at(workload_time)
        totals = (workload_time, 1.0, progress.calm_requests, progress.busy_requests)
        return self._plan(hazard).render(totals, VLLMState(progress, wall_time))

    def _plan(self, hazard: bool) -> Plan[VLLMState]:
        if hazard not in self._plans:
            self._plans[hazard] = self._build_plan(hazard)
        return self._plans[hazard]

    def _build_plan(self, hazard: bool) -> Plan[VLLMState]:
        parts: list[PlanPart[VLLMState]] = []
        created = self._process_start + CREATED_AFTER_START_SECONDS
        for family, rule_name in self._families():
            children = list(self._place(family, hazard))
            parts.append(family_header(family.exposed_name, family.kind, family.help))
            for child in children:
                parts.extend(self._sample_parts(family, rule_name, child))
            if family.has_created and self._single_api_server:
                label_sets = [child.labels for child in children]
                name = family.name + CREATED_SUFFIX
                parts.append(created_block(name, family.help, label_sets, created))
                created += len(children) * 1e-4
        return Plan(tuple(parts))

    @property
    def _single_api_server(self) -> bool:
        return self.spec.api_server_count <= 1

    def _families(self) -> Iterator[tuple[TemplateFamily, str]]:
        """(family as exposed, name of the family whose rules it follows), in template order."""
        extras = load_families(EXTRA_FAMILIES_FILE)
        for family in load_families(TEMPLATE_FILE).values():
            if is_interpreter_family(family.name) and not self._single_api_server:
                continue
            if family.name == CACHE_CONFIG_FAMILY and self.spec.lora_adapters:
                yield extras[LORA_FAMILY], LORA_FAMILY
            old_name = OLD_NAME_OF.get(family.name)
            if old_name is not None and family_exists(old_name, self.spec.version):
                yield family.renamed(old_name, extras[old_name].help), family.name
            if family_exists(family.name, self.spec.version):
                yield family, family.name

    def _place(self, family: TemplateFamily, hazard: bool) -> Iterator[_Child]:
        if family.name == LORA_FAMILY:
            yield _Child(self._lora_labels(hazard), family.children[0], 1.0)
            return
        model_name = self.spec.model + LABEL_HAZARD if hazard else self.spec.model
        for child in family.children:
            labels = dict(child.labels)
            if "model_name" in labels:
                labels["model_name"] = model_name
            if "engine" not in labels:
                yield _Child(tuple(labels.items()), child, 1.0)
                continue
            for engine, share in enumerate(self._engine_shares):
                labels["engine"] = str(engine)
                yield _Child(tuple(labels.items()), child, share)

    def _lora_labels(self, hazard: bool) -> Labels:
        adapters = [name + LABEL_HAZARD if hazard else name for name in self.spec.lora_adapters]
        return (
            ("max_lora", str(len(adapters))),
            ("running_lora_adapters", ",".join(adapters)),
            ("waiting_lora_adapters", ""),
        )

    def _sample_parts(
        self, family: TemplateFamily, rule_name: str, child: _Child
    ) -> Iterator[PlanPart[VLLMState]]:
        gauge = self._gauge_rule(rule_name, child)
        for sample in child.template.samples:
            labels = child.labels + ((("le", sample.le),) if sample.le is not None else ())
            prefix = f"{family.name}{sample.suffix}{label_block(labels)} "
            if family.kind != "gauge":
                terms, whole = self._linear_terms(rule_name, sample, child.share)
                yield LinearSample(prefix, terms, whole)
            elif gauge is not None:
                yield GaugeSample(prefix, gauge)
            else:
                value = interpreter_gauge(rule_name, sample.value, self._process_start)
                yield f"{prefix}{format_value(value)}\n"

    def _linear_terms(
        self, rule_name: str, sample: TemplateSample, share: float
    ) -> tuple[Terms, bool]:
        """How a cumulative sample grows: (terms over the totals, whether it is a count).

        Latency histograms follow the load; other counters scale the template's values by
        the requests served."""
        latency = self._latency.get(rule_name)
        if latency is not None:
            observations = share * per_request(rule_name)
            return _latency_terms(latency, sample.suffix, sample.le, observations)
        if is_interpreter_family(rule_name):
            return interpreter_terms(sample.value)
        coefficient = share * sample.value / template_requests()
        return ((CALM, coefficient), (BUSY, coefficient)), sample.value.is_integer()

    def _gauge_rule(self, rule_name: str, child: _Child) -> GaugeRule | None:
        share = child.share
        e2e = self._latency["vllm:e2e_request_latency_seconds"]
        queue = self._latency["vllm:request_queue_time_seconds"]

        def running(state: VLLMState) -> float:
            return round(share * state.progress.rate * e2e.mean_now(state.progress.busy_share))

        def waiting(state: VLLMState) -> float:
            return round(share * state.progress.rate * queue.mean_now(state.progress.busy_share))

        def kv_cache_usage(state: VLLMState) -> float:
            in_flight = state.progress.rate * e2e.mean_now(state.progress.busy_share)
            at_peak = state.progress.peak_rate * e2e.busy.mean
            return round(min(0.99, KV_CACHE_USAGE_AT_PEAK * in_flight / at_peak), 4)

        rules: dict[str, GaugeRule] = {
            "vllm:num_requests_running": running,
            "vllm:num_requests_waiting": waiting,
            "vllm:kv_cache_usage_perc": kv_cache_usage,
            LORA_FAMILY: lambda state: state.wall_time,
        }
        if rule_name == "vllm:num_requests_waiting_by_reason":
            return waiting if child.template.label("reason") == "capacity" else None
        return rules.get(rule_name)


def _latency_terms(
    model: RegimeDistribution, suffix: str, le: str | None, observations: float
) -> tuple[Terms, bool]:
    if suffix == "_sum":
        return (
            (CALM, observations * model.calm.mean),
            (BUSY, observations * model.busy.mean),
        ), False
    bound = math.inf if le is None else float(le)
    calm = observations * model.calm.cdf(bound)
    busy = observations * model.busy.cdf(bound)
    return ((CALM, calm), (BUSY, busy)), True


@cache
def template_requests() -> float:
    """Requests the template's engine 0 had served: the unit its counters are scaled by."""
    success = load_families(TEMPLATE_FILE)["vllm:request_success"]
    return sum(sample.value for child in success.children for sample in child.samples)


@cache
def per_request(family_name: str) -> float:
    """Observations per request of a histogram in the template (tokens for inter-token ones)."""
    family = load_families(TEMPLATE_FILE)[family_name]
    counts = [s.value for s in family.children[0].samples if s.suffix == "_count"]
    return counts[0] / template_requests()


@cache
def _names(file_name: str) -> frozenset[str]:
    return frozenset(re.findall(r'name="([^"]+)"', read_data_file(file_name)))


def family_exists(name: str, version: str) -> bool:
    """Whether a vLLM server of `version` exposes the family `name` by default."""
    if not name.startswith("vllm:"):
        return True
    release = parse_version(version)
    if release < (0, 11, 0) and name in OLD_NAME_OF:
        return False
    if release >= (0, 11, 0) and name in HIDDEN_SINCE_0_11:
        return False
    listed = _names(NAME_LISTS[0][1])
    for since, file_name in NAME_LISTS:
        if release >= since:
            listed = _names(file_name)
    if name in listed:
        return True
    # Unknown to every list (e.g. info gauges): always there; known elsewhere: not in this one.
    known = set(_names(NAME_LISTS[-1][1])) | set(OLD_NAME_OF.values())
    return name not in known
