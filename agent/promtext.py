"""Prometheus exposition text from upstreams: parse it, then reshape families before re-export."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from math import isnan

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent.upstream import Malformed

Labels = Mapping[str, str]

_SUMMABLE = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


def parse(text: str, where: str) -> list[Metric]:
    """Parse Prometheus text format; a syntax problem raises :class:`Malformed` naming ``where``."""
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise Malformed(f"{where}: malformed exposition text: {_shorten(str(exc))}") from None
    return [_normalise(family) for family in families]


def _shorten(message: str, limit: int = 160) -> str:
    message = message.replace("\n", "\\n")
    return message if len(message) <= limit else message[:limit] + "..."


def _normalise(family: Metric) -> Metric:
    """Drop upstream timestamps (our scrape time applies; a stale one would be rejected) and give
    counter samples their ``_total`` suffix so the family renders consistently."""
    samples = family.samples
    if any(s.timestamp is not None or s.exemplar is not None for s in samples):
        samples = [s._replace(timestamp=None, exemplar=None) for s in samples]
    if family.type == "counter":
        samples = [
            s._replace(name=s.name + "_total") if s.name == family.name else s for s in samples
        ]
    return family if samples is family.samples else _with_samples(family, samples)


def _with_samples(family: Metric, samples: Iterable[Sample], name: str | None = None) -> Metric:
    copy = Metric(name or family.name, family.documentation, family.type, family.unit)
    copy.samples = list(samples)
    return copy


def without_created(families: Iterable[Metric]) -> list[Metric]:
    """Drop ``_created`` samples and the separate ``*_created`` gauge families that text format
    emits beside counters and histograms: they double the series and no dashboard reads them."""
    families = list(families)
    bases = {family.name for family in families if family.type in _SUMMABLE}
    kept: list[Metric] = []
    for family in families:
        if family.name.endswith("_created") and family.name[: -len("_created")] in bases:
            continue
        if family.type in _SUMMABLE:
            created = family.name + "_created"
            family = _with_samples(family, (s for s in family.samples if s.name != created))
        kept.append(family)
    return kept


def keep_families(families: Iterable[Metric], predicate: Callable[[str], bool]) -> list[Metric]:
    return [family for family in families if predicate(family.name)]


def aggregate(
    families: Iterable[Metric],
    allowed_labels: frozenset[str],
    exclude: Callable[[Labels], bool] = lambda labels: False,
) -> list[Metric]:
    """Remove every label not in ``allowed_labels`` and sum the samples that then coincide.

    Counters, histograms and summaries' counts and sums stay correct when summed. A gauge that
    carried a removed label is a per-identity reading (a key's budget, a team's limit): summing it
    would invent a number, so such a family is left out. Samples for which ``exclude(labels)``
    holds are removed first (e.g. the proxy's own health-check traffic).
    """
    result: list[Metric] = []
    for family in families:
        samples = [s for s in family.samples if not exclude(s.labels)]
        if all(allowed_labels.issuperset(s.labels) for s in samples):
            result.append(_with_samples(family, samples))
            continue
        if family.type not in _SUMMABLE:
            continue
        summed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for s in samples:
            if "quantile" in s.labels and family.type == "summary":
                continue  # quantiles of different series cannot be added up
            kept = tuple(sorted((k, v) for k, v in s.labels.items() if k in allowed_labels))
            key = (s.name, kept)
            summed[key] = summed.get(key, 0.0) + (0.0 if isnan(s.value) else s.value)
        result.append(
            _with_samples(
                family,
                (Sample(name, dict(labels), value) for (name, labels), value in summed.items()),
            )
        )
    return result


def series_count(families: Iterable[Metric]) -> int:
    return sum(len(family.samples) for family in families)
