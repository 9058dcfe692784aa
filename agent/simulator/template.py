"""Metric families read from captured expositions (`data/`): names, HELP, TYPE, labels, buckets.

The simulator renders its own values but copies everything else from these templates, so
its output has the shape of the real servers' output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from prometheus_client.parser import text_string_to_metric_families

CREATED_SUFFIX = "_created"


@dataclass(frozen=True)
class TemplateSample:
    """One sample line of a child: `suffix` is "", "_total", "_bucket", "_count" or "_sum"."""

    suffix: str
    le: str | None
    value: float


@dataclass(frozen=True)
class TemplateChild:
    """One label set of a family (without `le`) and its samples, in template order."""

    labels: tuple[tuple[str, str], ...]
    samples: tuple[TemplateSample, ...]

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.labels)


@dataclass(frozen=True)
class TemplateFamily:
    """A metric family; `name` is prometheus_client's family name (counters without `_total`)."""

    name: str
    kind: str
    help: str
    children: tuple[TemplateChild, ...]
    has_created: bool

    @property
    def exposed_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.children[0].label_names if self.children else ()

    @property
    def bucket_bounds(self) -> tuple[str, ...]:
        if not self.children:
            return ()
        return tuple(s.le for s in self.children[0].samples if s.le is not None)

    def renamed(self, name: str, help_text: str) -> TemplateFamily:
        return TemplateFamily(name, self.kind, help_text, self.children, self.has_created)


def read_data_file(file_name: str) -> str:
    return (resources.files("agent.simulator") / "data" / file_name).read_text(encoding="utf-8")


@cache
def load_families(*file_names: str) -> dict[str, TemplateFamily]:
    """Families of the files in order; a later file only adds families or fills empty ones."""
    families: dict[str, TemplateFamily] = {}
    for file_name in file_names:
        for family in _parse(read_data_file(file_name)):
            known = families.get(family.name)
            if known is None or (not known.children and family.children):
                families[family.name] = family
    return families


def _parse(text: str) -> list[TemplateFamily]:
    parsed = list(text_string_to_metric_families(text))
    names = {metric.name for metric in parsed}
    families = []
    for metric in parsed:
        if metric.name.endswith(CREATED_SUFFIX) and metric.name[: -len(CREATED_SUFFIX)] in names:
            continue
        children: dict[tuple[tuple[str, str], ...], list[TemplateSample]] = {}
        for sample in metric.samples:
            labels = tuple((k, v) for k, v in sample.labels.items() if k != "le")
            suffix = sample.name[len(metric.name) :]
            children.setdefault(labels, []).append(
                TemplateSample(suffix, sample.labels.get("le"), float(sample.value))
            )
        families.append(
            TemplateFamily(
                name=metric.name,
                kind=metric.type,
                help=metric.documentation,
                children=tuple(TemplateChild(k, tuple(v)) for k, v in children.items()),
                has_created=metric.name + CREATED_SUFFIX in names,
            )
        )
    return families
