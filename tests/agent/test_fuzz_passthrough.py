"""The pass-through parsers (agent/passthrough.py) under generated and arbitrary pages.

- ``scan`` of any text yields families or raises Malformed, nothing else;
- whatever ``relabel_page`` accepts, even from arbitrary text, re-parses (prometheus_client's
  text and OpenMetrics parsers, and Go's parser through ``promtool``): one bad upstream line
  must never break the scrape of the whole agent;
- on valid pages written by prometheus_client (label values with quotes, backslashes,
  newlines, unicode) ``relabel_page`` keeps every sample and adds the label, ``aggregate_page``
  keeps only the allowed labels and the sums, ``merge`` keeps one family per name.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

from agent.passthrough import (
    PageMemo,
    RawFamily,
    aggregate_page,
    escape,
    merge,
    relabel_page,
    scan,
)
from agent.upstream import Malformed
from tests.promtool import PROMTOOL, promtool_findings

SLOW_FUZZ = settings(max_examples=40)  # one promtool process per example
INSTANCE = ("vllm_instance", 'host:8000/a"b\\c\nd')
LABEL_VALUES = st.text(max_size=12) | st.sampled_from(['"', "\\", "\n", '\\"', "é", "\\n", ""])
KINDS = ("gauge", "counter", "histogram", "summary", "untyped")


@dataclass(frozen=True)
class FamilySpec:
    kind: str
    name: str
    labels: tuple[str, ...]
    series: tuple[tuple[tuple[str, ...], float], ...]


@st.composite
def families(
    draw: st.DrawFn, prefix: str, label_names: Sequence[str], max_families: int = 4
) -> list[FamilySpec]:
    specs = []
    for index in range(draw(st.integers(1, max_families))):
        kind = draw(st.sampled_from(KINDS))
        labels = tuple(draw(st.lists(st.sampled_from(label_names), max_size=3, unique=True)))
        if kind in ("histogram", "summary"):  # observation counts are whole numbers
            value = st.integers(0, 10**6).map(float)
        elif kind == "counter":
            value = st.floats(0, 1e6)
        else:
            value = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e6, 1e6)
        label_sets = draw(
            st.lists(
                st.tuples(*[LABEL_VALUES for _ in labels]), min_size=1, max_size=3, unique=True
            )
        )
        series = tuple((values, draw(value)) for values in label_sets)
        specs.append(FamilySpec(kind, f"{prefix}f{index}_{kind}", labels, series))
    return specs


def build(spec: FamilySpec) -> Metric:
    help_text = 'help with "quotes", \\ and\nnewline'
    labels = list(spec.labels)
    if spec.kind == "histogram":
        histogram = HistogramMetricFamily(spec.name, help_text, labels=labels)
        for values, value in spec.series:
            buckets = [("0.5", value // 2), ("+Inf", value)]
            histogram.add_metric(list(values), buckets, sum_value=value * 1.5)
        return histogram
    if spec.kind == "summary":
        summary = SummaryMetricFamily(spec.name, help_text, labels=labels)
        for values, value in spec.series:
            summary.add_metric(list(values), count_value=int(value), sum_value=value * 2)
        return summary
    family: GaugeMetricFamily | CounterMetricFamily | UnknownMetricFamily
    if spec.kind == "gauge":
        family = GaugeMetricFamily(spec.name, help_text, labels=labels)
    elif spec.kind == "counter":
        family = CounterMetricFamily(spec.name, help_text, labels=labels)
    else:
        family = UnknownMetricFamily(spec.name, help_text, labels=labels)
    for values, value in spec.series:
        family.add_metric(list(values), value)
    return family


class _Families:
    def __init__(self, items: Iterable[Metric]) -> None:
        self._items = list(items)

    def collect(self) -> Iterable[Metric]:
        return self._items


def exposition(specs: Sequence[FamilySpec]) -> str:
    registry = CollectorRegistry()
    registry.register(_Families(build(spec) for spec in specs))
    return generate_latest(registry).decode()


def samples(text: str) -> list[Sample]:
    """Every sample as prometheus_client's text parser reads it, `_created` ones aside."""
    return [s for f in parse_text(text) for s in f.samples if not s.name.endswith("_created")]


def key(sample: Sample, drop: str = "") -> tuple[str, tuple[tuple[str, str], ...], str]:
    labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != drop))
    value = "nan" if math.isnan(sample.value) else repr(sample.value)
    return sample.name, labels, value


def as_text(raw: Iterable[RawFamily]) -> str:
    return "".join(f.text() for f in raw)


def as_openmetrics(raw: Iterable[RawFamily]) -> str:
    return "".join(f.openmetrics() for f in raw) + "# EOF\n"


def assert_prometheus_reads(raw: Sequence[RawFamily], openmetrics: bool = True) -> None:
    """What the agent would serve from ``raw`` parses, in Python and in Go."""
    text = as_text(raw)
    list(parse_text(text))
    if openmetrics:
        list(parse_om(as_openmetrics(raw)))  # type: ignore[no-untyped-call]
    if PROMTOOL is not None and raw:
        findings = promtool_findings(text)
        assert "error" not in findings, findings


# -- scan and relabel_page on arbitrary text -----------------------------------------------------

TOKENS = st.sampled_from(
    [
        "vllm:x",
        "vllm:y_total",
        "vllm:h_bucket",
        "vllm:h_count",
        "_created",
        "x",
        "{",
        "}",
        ",",
        '="',
        '"',
        "a",
        "le",
        "=",
        " ",
        "\t",
        "1",
        "-2",
        "1e400",
        "1e-400",
        "+nan",
        "NaN",
        "-Inf",
        "+Inf",
        "inf",
        "Infinity",
        "0x1p3",
        "1_0",
        "١",
        ".5",
        "5.",
        "1E5",
        "#",
        " HELP ",
        " TYPE ",
        "counter",
        "gauge",
        "histogram",
        "summary",
        "untyped",
        "unknown",
        "\\",
        "\\n",
        '\\"',
        "é",
        "\n",
        "vllm_instance",
        "1700000000000",
    ]
)
SOUP = st.lists(TOKENS, max_size=40).map("".join) | st.text(max_size=80)
NAMES = st.sampled_from(
    ["vllm:x", "vllm:y_total", "vllm:h_bucket", "vllm:h_count", "vllm:x_created"]
)
LABEL_TEXTS = st.sampled_from(
    [
        "",
        "{}",
        '{a="1"}',
        '{a="1",}',
        '{le="0.5"}',
        '{a="\\"",b="\\\\"}',
        '{my_vllm_instance="i"}',
        '{a="\\n",b="é"}',
        '{a="\r\u2028"}',
    ]
)
BAD_LABEL_TEXTS = st.sampled_from(['{a="1",a="2"}', '{a="x",vllm_instance="i"}'])
VALUES = st.sampled_from(
    [
        "1",
        "-1.5",
        "1e-400",
        "NaN",
        "nan",
        "+Inf",
        "-inf",
        "infinity",
        "+Infinity",
        ".5",
        "5.",
        "1E5",
    ]
)
BAD_VALUES = st.sampled_from(["1e400", "-1e400", "+nan", "-nan", "0x10", "1_0"])


def sample_lines(
    labels: st.SearchStrategy[str], values: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    return st.builds(lambda name, label, value: f"{name}{label} {value}", NAMES, labels, values)


GOOD_LINES = sample_lines(LABEL_TEXTS, VALUES)
SAMPLE_LINES = GOOD_LINES | sample_lines(LABEL_TEXTS | BAD_LABEL_TEXTS, VALUES | BAD_VALUES)
HEADERS = st.sampled_from(
    [
        "# TYPE vllm:x gauge",
        "# TYPE vllm:y counter",
        "# TYPE vllm:h histogram",
        "# HELP vllm:x some help",
        "# HELP vllm:x a\\b \\n é",
        "# TYPE vllm:x bogus",
        "# a comment",
        "",
    ]
)
# Pages of plausible lines (most get through the scan) and pages with arbitrary ones mixed in.
LINES = st.lists(GOOD_LINES | HEADERS, max_size=8).map("\n".join)
PAGES = LINES | st.lists(SAMPLE_LINES | HEADERS | SOUP, max_size=8).map("\n".join)


def relabel(text: str) -> list[RawFamily]:
    return relabel_page(text, "fuzz", label=INSTANCE, keep=lambda name: name.startswith("vllm:"))


@given(PAGES)
def test_scan_yields_families_or_raises_malformed(text: str) -> None:
    try:
        for family in scan(text, "fuzz"):
            assert family.samples
    except Malformed:
        pass


@given(PAGES)
def test_whatever_relabel_accepts_parses_again(text: str) -> None:
    try:
        raw = relabel(text)
    except Malformed:
        return
    # Not the OpenMetrics parser: prometheus_client's is stricter than Prometheus about what an
    # odd page may hold (one series twice, which Prometheus drops and counts): promtool below.
    for sample in (s for f in parse_text(as_text(raw)) for s in f.samples):
        assert sample.labels[INSTANCE[0]] == INSTANCE[1]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
@SLOW_FUZZ
@given(LINES)
def test_whatever_relabel_accepts_prometheus_parses(text: str) -> None:
    try:
        raw = relabel(text)
    except Malformed:
        return
    assert_prometheus_reads(raw, openmetrics=False)


@pytest.mark.parametrize(
    "line",
    ["vllm:x +nan", "vllm:x -NaN", "vllm:x 1e400", "vllm:x -1e999", 'vllm:x{a="1",a="2"} 1'],
)
def test_values_and_labels_prometheus_would_refuse_are_malformed(line: str) -> None:
    """Each of these made the real Prometheus fail the whole scrape of the agent."""
    with pytest.raises(Malformed):
        relabel(line + "\n")


def test_a_label_merely_ending_in_the_added_name_is_kept() -> None:
    raw = relabel('vllm:x{my_vllm_instance="i"} 1\n')
    [sample] = samples(as_text(raw))
    assert sample.labels == {"my_vllm_instance": "i", INSTANCE[0]: INSTANCE[1]}


# -- relabel_page, aggregate_page and merge on valid pages ---------------------------------------


@given(families("vllm:", ["model_name", "engine", "finished_reason", "a_b"]))
def test_relabel_keeps_every_sample_and_adds_the_label(specs: list[FamilySpec]) -> None:
    text = exposition(specs)
    raw = relabel(text)
    assert_prometheus_reads_python(raw)
    before = Counter(key(s) for s in samples(text))
    after = samples(as_text(raw))
    assert all(s.labels[INSTANCE[0]] == INSTANCE[1] for s in after)
    assert Counter(key(s, drop=INSTANCE[0]) for s in after) == before


def assert_prometheus_reads_python(raw: Sequence[RawFamily]) -> None:
    list(parse_text(as_text(raw)))
    list(parse_om(as_openmetrics(raw)))  # type: ignore[no-untyped-call]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
@SLOW_FUZZ
@given(families("vllm:", ["model_name", "engine"]))
def test_relabel_of_valid_pages_passes_promtool(specs: list[FamilySpec]) -> None:
    assert_prometheus_reads(relabel(exposition(specs)))


ALLOWED = frozenset({"model", "model_group", "status_code", "le", "quantile"})
REMOVED = ("hashed_api_key", "user", "team")


@given(families("litellm_", ["model", "model_group", "status_code", *REMOVED]))
def test_aggregate_keeps_allowed_labels_and_sums(specs: list[FamilySpec]) -> None:
    text = exposition(specs)
    raw = aggregate_page(
        text, "fuzz", keep=lambda n: n.startswith("litellm_"), allowed_labels=ALLOWED
    )
    assert_prometheus_reads_python(raw)
    out = samples(as_text(raw))
    assert all(set(s.labels) <= ALLOWED for s in out)
    kinds = {spec.name: spec for spec in specs}
    for family in raw:
        spec = kinds[family.name.removesuffix("_total")]
        removed = any(label in REMOVED for label in spec.labels)
        assert not (removed and spec.kind in ("gauge", "untyped"))  # per-identity readings go
        totals_in: dict[str, float] = defaultdict(float)
        for s in samples(text):
            if s.name.startswith(spec.name) and not (removed and "quantile" in s.labels):
                totals_in[s.name + s.labels.get("le", "")] += s.value
        totals_out: dict[str, float] = defaultdict(float)
        for s in out:
            if s.name.startswith(spec.name):
                totals_out[s.name + s.labels.get("le", "")] += s.value
        assert totals_out.keys() == totals_in.keys()
        for name, total in totals_in.items():
            assert math.isclose(totals_out[name], total, rel_tol=1e-9, abs_tol=1e-6) or (
                math.isnan(total) and math.isnan(totals_out[name])
            )


@given(
    st.lists(families("vllm:", ["model_name"], max_families=3), min_size=1, max_size=3),
)
def test_merge_keeps_one_family_per_name(pages_specs: list[list[FamilySpec]]) -> None:
    pages = [
        relabel_page(
            exposition(specs),
            "fuzz",
            label=("vllm_instance", f"i{index}"),
            keep=lambda name: True,
        )
        for index, specs in enumerate(pages_specs)
    ]
    conflicts: list[tuple[str, str, str]] = []
    merged = merge(pages, lambda name, kept, other: conflicts.append((name, kept, other)))
    names = [f.name for f in merged]
    assert len(names) == len(set(names))
    first_type: dict[str, str] = {}
    expected: Counter[str] = Counter()
    for page in pages:
        for family in page:
            kind = first_type.setdefault(family.name, family.type)
            if kind == family.type:
                expected[family.name] += len(family.samples)
    assert {f.name: len(f.samples) for f in merged} == dict(expected)
    assert len(conflicts) == sum(1 for page in pages for f in page if first_type[f.name] != f.type)
    assert_prometheus_reads_python(merged)


def test_a_family_written_in_two_places_is_served_once() -> None:
    """OpenMetrics forbids a family twice in a page: an upstream that interleaves them (which
    prometheus_client never does, but hand-written exporters may) is merged, sums included."""
    page = (
        "# TYPE litellm_x counter\n"
        'litellm_x_total{model="a",user="u1"} 1\n'
        "litellm_y 2\n"
        'litellm_x_total{model="a",user="u2"} 3\n'
    )
    raw = aggregate_page(page, "fuzz", keep=lambda n: True, allowed_labels=frozenset({"model"}))
    assert [(f.name, f.samples) for f in raw] == [
        ("litellm_x_total", ('litellm_x_total{model="a"} 4.0',)),
        ("litellm_y", ("litellm_y 2.0",)),
    ]
    relabelled = relabel(page.replace("litellm_", "vllm:"))
    assert [f.name for f in relabelled] == ["vllm:x_total", "vllm:y"]
    assert_prometheus_reads(relabelled)
    with pytest.raises(Malformed, match="both a"):
        relabel("# TYPE vllm:x gauge\nvllm:x 1\nvllm:y 1\n# TYPE vllm:x summary\nvllm:x_sum 2\n")


# -- relabel_page with a memo: the same answer as without, whatever the next page is -------------

NEW_VALUES = VALUES | BAD_VALUES | st.sampled_from(["", "1 2", "1\t2", "9" * 400, "1e99", "x"])


@st.composite
def same_lines_new_values(draw: st.DrawFn, page: str) -> str:
    """The page with each sample line's last word replaced: what the next poll usually brings."""
    lines = []
    for line in page.split("\n"):
        if line and not line.startswith("#"):
            line = line.rpartition(" ")[0] + " " + draw(NEW_VALUES)
        lines.append(line)
    return "\n".join(lines)


def relabel_or_malformed(text: str, memo: PageMemo | None = None) -> list[RawFamily] | str:
    try:
        return relabel_page(
            text, "fuzz", label=INSTANCE, keep=lambda n: n.startswith("vllm:"), memo=memo
        )
    except Malformed as exc:
        return str(exc)


@given(st.data(), LINES | PAGES)
def test_a_memo_never_changes_the_answer(data: st.DataObject, first: str) -> None:
    memo = PageMemo()
    assert relabel_or_malformed(first, memo) == relabel_or_malformed(first)
    for _ in range(3):
        following = data.draw(same_lines_new_values(first) | PAGES)
        assert relabel_or_malformed(following, memo) == relabel_or_malformed(following)


@given(st.data(), families("vllm:", ["model_name", "engine", "le_x"]))
def test_a_memo_fills_new_values_into_a_real_page(
    data: st.DataObject, specs: list[FamilySpec]
) -> None:
    memo = PageMemo()
    first = exposition(specs)
    relabel_or_malformed(first, memo)
    following = data.draw(same_lines_new_values(first))
    assert relabel_or_malformed(following, memo) == relabel_or_malformed(following)


def test_a_page_with_only_new_values_takes_the_memo() -> None:
    memo = PageMemo()
    page = (
        '# TYPE vllm:x counter\nvllm:x_total{a="1"} 1\nvllm:x_total{a="2"} 2\nvllm:x_created 5 7\n'
    )
    relabel_page(page, "p", label=INSTANCE, keep=lambda n: True, memo=memo)
    assert memo.template is not None
    template = memo.template
    again = relabel_page(
        page.replace("} 1", "} 3"), "p", label=INSTANCE, keep=lambda n: True, memo=memo
    )
    assert memo.template is template  # filled in, not scanned again
    assert again == relabel_page(
        page.replace("} 1", "} 3"), "p", label=INSTANCE, keep=lambda n: True
    )


def test_a_timestamped_sample_is_never_filled_from_a_memo() -> None:
    """With a timestamp the last word is not the value: such a page is scanned every time."""
    memo = PageMemo()
    relabel_page("vllm:x 1 100\n", "p", label=INSTANCE, keep=lambda n: True, memo=memo)
    assert memo.template is None
    [family] = relabel_page("vllm:x 1 200\n", "p", label=INSTANCE, keep=lambda n: True, memo=memo)
    assert family.samples == (f'vllm:x{{vllm_instance="{escape(INSTANCE[1])}"}} 1',)
