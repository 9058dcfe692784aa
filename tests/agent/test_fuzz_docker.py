"""The Docker Engine API readers, cgroup files and image references under arbitrary input.

The helpers in agent/sources/containers.py read the daemon's JSON (inspect, stats), log lines
and timestamps: whatever they get, they return (a field of an unexpected type counts as absent)
and never raise. Image references that Docker accepts split back into what built them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from agent.sources import containers as c
from agent.sources.cgroup import container_id_in_cgroup

KEYS = (
    "HostConfig",
    "DeviceRequests",
    "Driver",
    "Count",
    "DeviceIDs",
    "Capabilities",
    "Runtime",
    "Config",
    "Env",
    "NetworkMode",
    "NetworkSettings",
    "Ports",
    "8000/tcp",
    "HostPort",
    "HostIp",
    "Entrypoint",
    "Cmd",
    "cpu_stats",
    "cpu_usage",
    "total_usage",
    "system_cpu_usage",
    "online_cpus",
    "percpu_usage",
    "memory_stats",
    "usage",
    "limit",
    "stats",
    "inactive_file",
    "total_inactive_file",
    "networks",
    "eth0",
    "rx_bytes",
    "tx_bytes",
)
STRINGS = st.sampled_from(
    [
        "",
        "nvidia",
        "cdi",
        "gpu",
        "host",
        "none",
        "all",
        "0",
        "0,1",
        "nvidia.com/gpu=all",
        "GPU-0a1b",
        "NVIDIA_VISIBLE_DEVICES=0,1",
        "--port",
        "--port=9000",
        "--port=²",
        "9000",
        "vllm serve m --port 8001",
        "sh -c 'unbalanced",
        "::1",
        "0.0.0.0",
        "8000",
        "99999",
    ]
) | st.text(max_size=10)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 0, 1, 2**63, 10**400])
    | st.floats(allow_nan=True, allow_infinity=True)
    | STRINGS
)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
INSPECT = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)
LABELS = st.dictionaries(
    st.sampled_from(["inferwatch.gpus", "inferwatch.url", "other"]),
    STRINGS | st.sampled_from(["http://vllm:8000/v1", "http://u:p@h:abc", "ftp://x"]),
    max_size=3,
)


@given(INSPECT, LABELS)
@example({"HostConfig": {"DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": 5}]}}, {})
@example({"HostConfig": {"Runtime": "nvidia"}, "Config": ["Env"]}, {})
def test_gpus_of_any_inspect(inspect: dict[str, Any], labels: dict[str, str]) -> None:
    gpus, warning = c.gpus_of(inspect, labels)
    assert isinstance(gpus, str) and (warning is None or isinstance(warning, str))


@given(st.text(max_size=12), INSPECT, LABELS)
@example("vllm", {"Config": {"Cmd": ["sh -c 'unbalanced"]}}, {})
@example("vllm", {"Config": {"Cmd": ["--port", "²"]}}, {})
@example("vllm", {"Config": {"Entrypoint": "vllm serve", "Cmd": ["--port", "9000"]}}, {})
@example(
    "vllm",
    {"NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "::1", "HostPort": "8001"}]}}},
    {},
)
@example("vllm", {}, {"inferwatch.url": "user:secret:p@vllm:8000"})
def test_vllm_url_of_any_inspect(
    name: str, inspect: dict[str, Any], labels: dict[str, str]
) -> None:
    url, warning = c.vllm_url(name, inspect, labels)
    assert url is None or url.startswith(("http://", "https://"))
    assert warning is None or ":p@" not in warning  # an ignored label's credentials stay out
    if url is not None and "inferwatch.url" not in labels and name.isalnum() and name.isascii():
        httpx.URL(url)  # built by the agent from the inspect: always a valid URL


@given(st.one_of(INSPECT, st.fixed_dictionaries({"cpu_stats": INSPECT, "memory_stats": INSPECT})))
@example(
    {"cpu_stats": {"cpu_usage": {"total_usage": 1}, "system_cpu_usage": 2, "online_cpus": "x"}}
)
@example({"memory_stats": {"usage": 10**400, "limit": 10**400, "stats": []}})
@example({"networks": {"eth0": {"rx_bytes": "12", "tx_bytes": 10**400}}})
def test_stats_readers_of_any_stats(stats: dict[str, Any]) -> None:
    sample = c.cpu_sample(stats)
    if sample is not None:
        assert sample.online_cpus >= 1 and sample.system_total > 0
        ratio = c.cpu_ratio(sample, sample)
        assert ratio is None or math.isfinite(ratio)
    used, limit = c.memory_used(stats)
    for value in (used, limit):
        assert value is None or (math.isfinite(value) and value >= 0)
    network = c.network_bytes(stats)
    assert network is None or all(math.isfinite(v) and v >= 0 for v in network)


@given(st.text(max_size=40) | st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,12})?Z?"))
def test_parse_timestamp_of_any_text(stamp: str) -> None:
    parsed = c.parse_timestamp_ns(stamp)
    assert parsed is None or isinstance(parsed, int)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 999_999_999),
)
def test_parse_timestamp_of_docker_timestamps(moment: datetime, nanos: int) -> None:
    whole = moment.replace(microsecond=0)
    stamp = whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}".rstrip("0").rstrip(".") + "Z"
    assert c.parse_timestamp_ns(stamp) == int(whole.timestamp()) * 1_000_000_000 + nanos


@given(
    st.lists(
        st.sampled_from(
            [
                "EngineCore",
                "Engine core ",
                "died",
                " encountered",
                "CUDA out of memory",
                "Traceback (most recent call last)",
                "x",
                " ",
                "\t",
            ]
        ),
        max_size=40,
    ).map("".join)
    | st.text(max_size=200)
)
def test_log_event_kinds_of_any_line(line: str) -> None:
    kinds = c.log_event_kinds(line)
    assert set(kinds) <= {kind for kind, _ in c.LOG_EVENT_KINDS}


def test_log_event_kinds_cannot_backtrack_over_a_whole_line() -> None:
    """A container log is text users can steer (vLLM can log prompts): a pattern with an
    unbounded repeat before more literal text ("EngineCore\\S* died", "core .*died") cost
    0.7 s of CPU on one 64 KiB line of "EngineCoreEngineCore...". Every repeat is bounded."""
    for _, pattern in c.LOG_EVENT_KINDS:
        assert re.search(r"(?<!\\)[*+]", pattern.pattern) is None, pattern.pattern
    hostile = ["EngineCore" * 6_500, "Engine core " * 5_400, "EngineCore_DP0" + "x" * 65_000]
    assert [c.log_event_kinds(line) for line in hostile] == [[], [], []]


@given(st.text(max_size=300) | st.lists(st.text(max_size=80), max_size=6).map("\n".join))
def test_container_id_in_any_cgroup_text(text: str) -> None:
    found = container_id_in_cgroup(text)
    assert found is None or (len(found) == 64 and all(ch in "0123456789abcdef" for ch in found))


HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(
    HEX64,
    st.sampled_from(
        [
            "12:memory:/docker/{id}",
            "0::/system.slice/docker-{id}.scope",
            "0::/kubepods/burstable/pod1/cri-containerd-{id}.scope",
            "0::/machine.slice/libpod-{id}.scope",
            "0::/kubepods.slice/crio-{id}.scope",
        ]
    ),
    st.lists(
        st.sampled_from(["1:name=systemd:/", "0::/user.slice", "2:cpu:/init.scope"]), max_size=3
    ),
)
def test_container_id_found_in_runtime_cgroup_lines(
    container_id: str, line: str, noise: list[str]
) -> None:
    text = "\n".join([*noise, line.format(id=container_id), *noise])
    assert container_id_in_cgroup(text) == container_id


@given(st.text(max_size=80))
def test_parse_image_reference_of_any_text(reference: str) -> None:
    image = c.parse_image_reference(reference)
    assert isinstance(image.repository, str) and isinstance(image.version, str)


COMPONENT = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+){0,2}", fullmatch=True)
REGISTRY = st.one_of(
    st.just(""),
    st.from_regex(r"[a-z0-9]+(?:\.[a-z0-9]+)+", fullmatch=True).map(lambda h: h + "/"),
    st.tuples(st.from_regex(r"[a-z0-9]+", fullmatch=True), st.integers(1, 65535)).map(
        lambda hp: f"{hp[0]}:{hp[1]}/"
    ),
)
TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", fullmatch=True)


@given(REGISTRY, st.lists(COMPONENT, min_size=1, max_size=3), st.none() | TAG, st.none() | HEX64)
def test_parse_image_reference_round_trips(
    registry: str, path: list[str], tag: str | None, digest: str | None
) -> None:
    repository = registry + "/".join(path)
    reference = repository + (f":{tag}" if tag else "") + (f"@sha256:{digest}" if digest else "")
    image = c.parse_image_reference(reference)
    assert image.repository == repository
    assert image.tag == (tag or ("" if digest else "latest"))
    assert image.digest == (f"sha256:{digest}" if digest else "")
