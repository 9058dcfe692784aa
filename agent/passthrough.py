"""Upstream families passed through as validated exposition lines, without building objects.

The vLLM pages of a large host are tens of thousands of samples per poll that the agent only
relabels. Parsing each into prometheus_client objects and rendering them again costs ~10x more CPU
and memory than checking each line once and inserting one label. Every line is validated
strictly, so a malformed upstream page is rejected whole and can never corrupt our exposition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.upstream import Malformed

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_VALUE_CHARS = r'(?:[^"\\\n]|\\[\\"n])*'
_LABEL = rf'[a-zA-Z_][a-zA-Z0-9_]*="{_VALUE_CHARS}"'
_SAMPLE = re.compile(
    rf"({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?,?\}})?[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?[ \t]*"
)
_HELP_OR_TYPE = re.compile(rf"#[ \t]+(HELP|TYPE)[ \t]+({_NAME})(?:[ \t](.*))?")
_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped", "unknown"})
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}
_OM_TYPE = {"untyped": "unknown"}


@dataclass(frozen=True, slots=True)
class RawFamily:
    """One family as text-format lines. ``name`` is the family's text-format name (a counter's
    ends in ``_total``, as prometheus_client writes it); ``samples`` are complete sample lines."""

    name: str
    type: str
    help: str
    samples: tuple[str, ...]

    def text(self) -> str:
        head = f"# HELP {self.name} {self.help}\n" if self.help else ""
        return f"{head}# TYPE {self.name} {self.type}\n" + "".join(s + "\n" for s in self.samples)

    def openmetrics(self) -> str:
        name = self.name.removesuffix("_total") if self.type == "counter" else self.name
        head = f"# HELP {name} {self.help}\n" if self.help else ""
        kind = _OM_TYPE.get(self.type, self.type)
        return f"{head}# TYPE {name} {kind}\n" + "".join(s + "\n" for s in self.samples)


@dataclass(slots=True)
class _Building:
    name: str
    type: str = "untyped"
    help: str = ""

    def set_type(self, kind: str) -> None:
        self.type = kind
        if kind == "counter" and not self.name.endswith("_total"):
            # Older clients write "# TYPE x counter" over "x_total" samples: one canonical name,
            # so instances on different versions merge into one family.
            self.name += "_total"

    def sample_name(self, name: str) -> str | None:
        """The name ``name`` takes inside this family, or None if it belongs to another."""
        if name == self.name:
            return name
        if self.type == "counter":
            return self.name if name == self.name.removesuffix("_total") else None
        if any(name == self.name + suffix for suffix in _SUFFIXES.get(self.type, ())):
            return name
        return None


def relabel_page(
    text: str,
    where: str,
    *,
    label: tuple[str, str],
    keep: Callable[[str], bool],
) -> list[RawFamily]:
    """Validate a text-format page and return the families ``keep`` accepts, with ``label`` added
    to every sample. ``_created`` samples and families, and sample timestamps, are dropped."""
    label_name, label_value = label
    injected = f'{label_name}="{_escape(label_value)}"'
    marker = f'{label_name}="'
    families: list[RawFamily] = []
    bases_with_created: set[str] = set()
    current: _Building | None = None
    lines: list[str] = []

    def finish() -> None:
        if current is not None and keep(current.name):
            families.append(RawFamily(current.name, current.type, current.help, tuple(lines)))

    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.isspace():
            continue
        if line[0] == "#":
            meta = _HELP_OR_TYPE.fullmatch(line)
            if meta is None:
                continue  # a plain comment
            kind, name, rest = meta.group(1), meta.group(2), meta.group(3) or ""
            if current is None or name not in (current.name, current.name.removesuffix("_total")):
                finish()
                current, lines = _Building(name), []
            if kind == "HELP":
                current.help = rest
            else:
                rest = rest.strip()
                if rest not in _TYPES:
                    raise Malformed(f"{where}:{number}: unknown metric type {rest!r}")
                current.set_type(rest)
                if rest in _SUFFIXES:
                    base = name.removesuffix("_total") if rest == "counter" else name
                    bases_with_created.add(base + "_created")
            continue
        match = _SAMPLE.fullmatch(line)
        if match is None:
            raise Malformed(f"{where}:{number}: not a valid sample line: {line[:120]!r}")
        name, labels, value = match.group(1), match.group(2), match.group(3)
        _check_value(value, where, number)
        if name in bases_with_created:
            continue  # a counter's or histogram's creation time: no dashboard reads it
        owned = current.sample_name(name) if current is not None else None
        if current is None or owned is None:
            finish()
            current, lines, owned = _Building(name), [], name
        name = owned
        if labels and marker in labels:
            raise Malformed(f"{where}:{number}: sample already has a {label_name} label")
        lines.append(
            f"{name}{{{injected},{labels}}} {value}" if labels else f"{name}{{{injected}}} {value}"
        )
    finish()
    return [f for f in families if f.samples and f.name not in bases_with_created]


def _check_value(value: str, where: str, number: int) -> None:
    try:
        float(value)
    except ValueError:
        raise Malformed(f"{where}:{number}: {value[:40]!r} is not a number") from None
    if value.lower() in ("infinity", "+infinity", "-infinity") or "_" in value:
        raise Malformed(f"{where}:{number}: {value[:40]!r} is not a Prometheus number")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def merge(
    pages: Iterable[Sequence[RawFamily]], on_conflict: Callable[[str, str, str], None]
) -> list[RawFamily]:
    """One family per name across pages; the first page's HELP and TYPE win. A page whose family
    has another type is left out for that family, and ``on_conflict(name, kept, other)`` is told."""
    merged: dict[str, tuple[str, str, list[str]]] = {}
    for page in pages:
        for family in page:
            entry = merged.get(family.name)
            if entry is None:
                merged[family.name] = (family.type, family.help, list(family.samples))
            elif entry[0] == family.type:
                entry[2].extend(family.samples)
            else:
                on_conflict(family.name, entry[0], family.type)
    return [
        RawFamily(name, kind, text, tuple(lines)) for name, (kind, text, lines) in merged.items()
    ]


def series_count(families: Iterable[RawFamily]) -> int:
    return sum(len(f.samples) for f in families)
