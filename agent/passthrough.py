"""Upstream exposition text, checked line by line and passed through without building objects.

A large host's vLLM pages are tens of thousands of samples per poll that the agent only relabels,
and a busy LiteLLM proxy's page is megabytes that the agent only sums over users. Parsing them into
prometheus_client objects and rendering them again cost several times the CPU and memory of
scanning each line once. Every line is validated strictly, so a malformed upstream page is rejected
whole (naming the line) and can never corrupt our exposition.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from agent.upstream import Malformed

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_VALUE_CHARS = r'[^"\\\n]*(?:\\[\\"n][^"\\\n]*)*'  # unrolled: no per-character alternation
_LABEL = rf'[a-zA-Z_][a-zA-Z0-9_]*="{_VALUE_CHARS}"'
_SAMPLE = re.compile(
    rf"({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?,?\}})?[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?[ \t]*"
)
_LABEL_PAIR = re.compile(rf'([a-zA-Z_][a-zA-Z0-9_]*)="({_VALUE_CHARS})"')
_LABEL_NAME = re.compile(rf'([a-zA-Z_][a-zA-Z0-9_]*)="{_VALUE_CHARS}"')
# What Python reads as infinite but Go (Prometheus) reads as a number out of range: "1e999".
_INFINITY_WORDS = frozenset({"inf", "infinity"})
_HELP_ESCAPE = re.compile(r"\\(.|$)", re.DOTALL)
_HELP_OR_TYPE = re.compile(rf"#[ \t]+(HELP|TYPE)[ \t]+({_NAME})(?:[ \t](.*))?")
_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped", "unknown"})
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}
_SUMMABLE = frozenset(_SUFFIXES)
_OM_TYPE = {"untyped": "unknown"}

Labels = Mapping[str, str]


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
class ScannedFamily:
    """A family read from a page: samples as (name, label text or "", value text)."""

    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[tuple[str, str, str]] = field(default_factory=list)
    # Per sample, its line's index in the page, or -1 where the line is not "<key> <value>"
    # exactly (a timestamp or whitespace after the value, or a tab before it).
    positions: list[int] = field(default_factory=list)
    # Sample name as written -> as exported (an old client's counter gains "_total").
    owns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owns = {self.name: self.name}

    def set_type(self, kind: str) -> None:
        self.type = kind
        if kind == "counter":
            base = self.name.removesuffix("_total")
            # Older clients write "# TYPE x counter" over "x_total" samples: one canonical name,
            # so instances on different versions merge into one family.
            self.name = base + "_total"
            self.owns = {base: self.name, self.name: self.name}
        else:
            self.owns = {
                self.name + suffix: self.name + suffix for suffix in ("", *_SUFFIXES.get(kind, ()))
            }

    def named(self, name: str) -> bool:
        return name in (self.name, self.name.removesuffix("_total"))


def scan(text: str, where: str) -> Iterator[ScannedFamily]:
    """Validate a text-format page and yield its families, one at a time. ``_created`` samples and
    families and sample timestamps are dropped; a bad line raises :class:`Malformed` naming it."""
    # Only "\n" ends a line: a label value may hold "\r", "\x85" or "\u2028" unescaped.
    return _scan(text.split("\n"), where)


def _scan(lines: list[str], where: str) -> Iterator[ScannedFamily]:
    created: set[str] = set()  # "<base>_created" of every counter, histogram and summary
    current = ScannedFamily("")
    for number, line in enumerate(lines, 1):
        if not line or line.isspace():
            continue
        if line[0] == "#":
            meta = _HELP_OR_TYPE.fullmatch(line)
            if meta is None:
                continue  # a plain comment
            kind, name, rest = meta.groups("")
            if not current.named(name):
                if current.samples and current.name not in created:
                    yield current
                current = ScannedFamily(name)
            if kind == "HELP":
                current.help = _help_text(rest) if "\\" in rest else rest
                continue
            rest = rest.strip()
            if rest not in _TYPES:
                raise Malformed(f"{where}:{number}: unknown metric type {rest!r}")
            current.set_type(rest)
            if rest in _SUMMABLE:
                created.add(
                    (name.removesuffix("_total") if rest == "counter" else name) + "_created"
                )
            continue
        match = _SAMPLE.fullmatch(line)
        if match is None:
            raise Malformed(f"{where}:{number}: not a valid sample line: {line[:120]!r}")
        name, labels, value = match.groups("")
        try:
            parsed = float(value)
        except ValueError:
            raise Malformed(f"{where}:{number}: {value[:40]!r} is not a number") from None
        if "_" in value or value[-1] in "yY" or not value.isascii():  # Python reads "1_0", "١"
            raise Malformed(f"{where}:{number}: {value[:40]!r} is not a Prometheus number")
        if not math.isfinite(parsed) and not _go_reads_as_special(value):
            # Prometheus fails the whole scrape on one "+nan" or "1e999": never pass one on.
            raise Malformed(f"{where}:{number}: {value[:40]!r} is not a Prometheus number")
        if labels and _has_duplicate_label(labels):
            # Prometheus fails the whole scrape on a repeated label name.
            raise Malformed(f"{where}:{number}: a label name repeats: {line[:120]!r}")
        if name in created:
            continue  # a counter's or histogram's creation time: no dashboard reads it
        owned = current.owns.get(name)
        if owned is None:
            if current.samples and current.name not in created:
                yield current
            current = ScannedFamily(name)
            owned = name
        current.samples.append((owned, labels, value))
        current.positions.append(
            number - 1 if match.end(3) == len(line) and line[match.start(3) - 1] == " " else -1
        )
    if current.samples and current.name not in created:
        yield current


def _help_text(text: str) -> str:
    """HELP text with every backslash that starts no escape escaped itself: Go's parser
    (promtool, client_golang) refuses a page with any escape but \\\\ and \\n in HELP."""
    return _HELP_ESCAPE.sub(
        lambda m: m.group(0) if m.group(1) in ("\\", "n") else "\\\\" + m.group(1), text
    )


def _go_reads_as_special(value: str) -> bool:
    """Whether Go's ParseFloat reads this non-finite value: a signed or unsigned "Inf" or
    "Infinity", or an unsigned "NaN" (any case)."""
    word = value.lower()
    return word.lstrip("+-") in _INFINITY_WORDS or word == "nan"


def _has_duplicate_label(labels: str) -> bool:
    # Without a backslash no value holds a quote: every other piece between quotes is ',name='
    # (twice as fast as the regex); with one, tokenize properly.
    names = _LABEL_NAME.findall(labels) if "\\" in labels else ("," + labels).split('"')[0:-1:2]
    return len(set(names)) != len(names)


def _merged_type(first: str, again: ScannedFamily, where: str) -> str:
    """The type of a family a page writes in two places (interleaved with another): merged
    into one, so our exposition never repeats a family (OpenMetrics forbids it). A part
    without a TYPE line takes the other's type; two declared types cannot merge."""
    if again.type in (first, "untyped"):
        return first
    if first == "untyped":
        return again.type
    raise Malformed(f"{where}: {again.name} is both a {first} and a {again.type}")


def relabel_page(
    text: str,
    where: str,
    *,
    label: tuple[str, str],
    keep: Callable[[str], bool],
    memo: PageMemo | None = None,
) -> list[RawFamily]:
    """The families ``keep`` accepts, with ``label`` added to every sample.

    With a ``memo`` (one per endpoint, always called with the same ``keep``), a page that differs
    from the last one only in its sample values skips the line-by-line validation: its values are
    checked as numbers and put into the lines made last time."""
    if memo is None:
        return _relabel(text.split("\n"), where, label, keep)[0]
    lines = text.split("\n")
    keys, values = _split_values(lines)
    # Kept as a digest: the page's text without values would be one more copy of it per endpoint.
    skeleton = hashlib.blake2b("\n".join(keys).encode(), digest_size=16).digest()
    template = memo.template
    if template is not None and template.fits(skeleton, label, values):
        return template.fill(values)
    families, kept = _relabel(lines, where, label, keep)
    memo.template = _Template.build(skeleton, label, len(values), lines, families, kept)
    return families


def _relabel(
    lines: list[str], where: str, label: tuple[str, str], keep: Callable[[str], bool]
) -> tuple[list[RawFamily], list[int]]:
    """The families, and the line index of each of their samples in order (-1: a line the memo
    cannot fill, see ``ScannedFamily.positions``)."""
    label_name, label_value = label
    injected = f'{label_name}="{escape(label_value)}"'
    marker = f'{label_name}="'
    # name -> type, help, lines, the line index of each
    families: dict[str, tuple[str, str, list[str], list[int]]] = {}
    for family in _scan(lines, where):
        if not keep(family.name):
            continue
        out = []
        for name, labels, value in family.samples:
            # The substring test is cheap; the names decide (a "my_vllm_instance" is fine).
            if marker in labels and label_name in _LABEL_NAME.findall(labels):
                raise Malformed(f"{where}: {family.name} already has a {label_name} label")
            out.append(
                f"{name}{{{injected},{labels}}} {value}"
                if labels
                else f"{name}{{{injected}}} {value}"
            )
        first = families.get(family.name)
        if first is None:
            families[family.name] = (family.type, family.help, out, family.positions)
        else:
            first[2].extend(out)
            first[3].extend(family.positions)
            kind = _merged_type(first[0], family, where)
            families[family.name] = (kind, first[1] or family.help, first[2], first[3])
    raw = [
        RawFamily(name, kind, help_text, tuple(out))
        for name, (kind, help_text, out, _) in families.items()
    ]
    return raw, [i for _, _, _, positions in families.values() for i in positions]


def _split_values(lines: list[str]) -> tuple[list[str], list[str]]:
    """Each line without its value (a sample line up to its last space; other lines whole), and
    the sample lines' values."""
    keys: list[str] = []
    values: list[str] = []
    for line in lines:
        if line and line[0] != "#":
            key, _, value = line.rpartition(" ")
            keys.append(key)
            values.append(value)
        else:
            keys.append(line)
    return keys, values


# Numbers that scan() accepts, in a form that cannot overflow to infinity (at most 200 integer
# digits, a two-digit exponent); any other value sends the page down the line-by-line path.
_FINITE = r"[+-]?(?:[0-9]{1,200}(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?"
_VALUES = re.compile(rf"(?:(?:{_FINITE}|[+-]?[iI][nN][fF]|[nN][aA][nN])\n)+")


class PageMemo:
    """What :func:`relabel_page` made of one endpoint's last page."""

    __slots__ = ("template",)

    def __init__(self) -> None:
        self.template: _Template | None = None


@dataclass(frozen=True, slots=True)
class _Template:
    """A validated page with its sample values taken out: the lines it made, each up to its value,
    and which of the page's values goes after each."""

    skeleton: bytes
    label: tuple[str, str]
    value_count: int
    families: tuple[tuple[str, str, str, int], ...]  # name, type, help, sample count
    prefixes: tuple[str, ...]
    pick: Callable[[Sequence[str]], tuple[str, ...]]

    def fits(self, skeleton: bytes, label: tuple[str, str], values: list[str]) -> bool:
        # A line at a blank line's place with no space in it would add a value: the count
        # catches it. The values pass as a whole through one regular expression.
        return (
            len(values) == self.value_count
            and label == self.label
            and skeleton == self.skeleton
            and _VALUES.fullmatch("\n".join(values) + "\n") is not None
        )

    def fill(self, values: Sequence[str]) -> list[RawFamily]:
        lines = tuple(map(operator.add, self.prefixes, self.pick(values)))
        families, start = [], 0
        for name, kind, help_text, count in self.families:
            families.append(RawFamily(name, kind, help_text, lines[start : start + count]))
            start += count
        return families

    @classmethod
    def build(
        cls,
        skeleton: bytes,
        label: tuple[str, str],
        value_count: int,
        lines: list[str],
        families: list[RawFamily],
        positions: list[int],
    ) -> _Template | None:
        """None where a kept sample's line is not "<key> <value>", the page has no values or a
        line of only whitespace."""
        if value_count == 0:
            return None
        value_index: dict[int, int] = {}
        for index, line in enumerate(lines):
            if line and line[0] != "#":
                if line.isspace():  # skipped by the scan: a sample line there would not be
                    return None
                value_index[index] = len(value_index)
        prefixes, picked = [], []
        samples = (sample for family in families for sample in family.samples)
        for position, sample in zip(positions, samples, strict=True):
            if position < 0:
                return None
            value = lines[position].rpartition(" ")[2]
            if not sample.endswith(" " + value):
                return None
            prefixes.append(sample[: len(sample) - len(value)])
            picked.append(value_index[position])
        return cls(
            skeleton,
            label,
            value_count,
            tuple((f.name, f.type, f.help, len(f.samples)) for f in families),
            tuple(prefixes),
            _picker(picked),
        )


def _picker(indices: list[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    if len(indices) >= 2:
        return operator.itemgetter(*indices)
    if indices:
        only = indices[0]
        return lambda values: (values[only],)
    return lambda values: ()


@dataclass(slots=True)
class _Sums:
    """One family's sums so far (its samples are not kept: a page may be megabytes)."""

    name: str
    type: str
    help: str
    summed: dict[tuple[str, str], float] = field(default_factory=dict)
    dropped_any: bool = False


def aggregate_page(
    text: str,
    where: str,
    *,
    keep: Callable[[str], bool],
    allowed_labels: frozenset[str],
    exclude: Callable[[Labels], bool] = lambda labels: False,
) -> list[RawFamily]:
    """The families ``keep`` accepts, with every label outside ``allowed_labels`` removed and the
    samples that then coincide summed.

    Counters, histograms and summaries' counts and sums stay correct when summed. A gauge that
    carried a removed label is a per-identity reading (a key's budget, a team's limit): summing it
    would invent a number, so such a family is left out. Samples for which ``exclude(labels)``
    holds (label values as written, escaped) are removed first.
    """
    sums: dict[str, _Sums] = {}
    for family in scan(text, where):
        if not keep(family.name):
            continue
        into = sums.setdefault(family.name, _Sums(family.name, family.type, family.help))
        into.type = _merged_type(into.type, family, where)
        into.help = into.help or family.help
        for name, label_text, value in family.samples:
            pairs = _LABEL_PAIR.findall(label_text)
            if exclude(dict(pairs)):
                continue
            kept = [(k, v) for k, v in pairs if k in allowed_labels]
            removed = len(kept) != len(pairs)
            into.dropped_any = into.dropped_any or removed
            if removed and family.type == "summary" and any(k == "quantile" for k, _ in kept):
                continue  # quantiles of different series cannot be added up
            key = (name, ",".join(f'{k}="{v}"' for k, v in sorted(kept)))
            into.summed[key] = into.summed.get(key, 0.0) + float(value)
    families = []
    for into in sums.values():
        if into.dropped_any and into.type not in _SUMMABLE:
            continue
        lines = tuple(
            f"{name}{{{labels}}} {format_value(total)}"
            if labels
            else f"{name} {format_value(total)}"
            for (name, labels), total in into.summed.items()
        )
        if lines:
            families.append(RawFamily(into.name, into.type, into.help, lines))
    return families


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def escape(value: str) -> str:
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
