from __future__ import annotations

from typing import Any

import pytest

from agent.sources import containers as c
from agent.sources.docker import describe_docker_error
from agent.upstream import ConfigError, Unreachable


@pytest.mark.parametrize(
    ("reference", "repository", "tag", "digest", "version"),
    [
        ("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai", "v0.11.0", "", "0.11.0"),
        ("vllm/vllm-openai", "vllm/vllm-openai", "latest", "", ""),
        (
            "registry.local:5000/mirror/vllm/vllm-openai",
            "registry.local:5000/mirror/vllm/vllm-openai",
            "latest",
            "",
            "",
        ),
        (
            "registry.local:5000/vllm/vllm-openai:v0.10.1",
            "registry.local:5000/vllm/vllm-openai",
            "v0.10.1",
            "",
            "0.10.1",
        ),
        (
            "vllm/vllm-openai@sha256:" + "a" * 64,
            "vllm/vllm-openai",
            "",
            "sha256:" + "a" * 64,
            "",
        ),
        ("vllm/vllm-openai:nightly-2026", "vllm/vllm-openai", "nightly-2026", "", ""),
        ("prom/prometheus:v2.55.1", "prom/prometheus", "v2.55.1", "", "2.55.1"),
    ],
)
def test_image_references(
    reference: str, repository: str, tag: str, digest: str, version: str
) -> None:
    parsed = c.parse_image_reference(reference)
    assert (parsed.repository, parsed.tag, parsed.digest, parsed.version) == (
        repository,
        tag,
        digest,
        version,
    )


def test_repository_patterns_match_any_registry_prefix() -> None:
    patterns = ["vllm/vllm-openai"]
    assert c.repository_matches("vllm/vllm-openai", patterns)
    assert c.repository_matches("docker.io/vllm/vllm-openai", patterns)
    assert c.repository_matches("registry:5000/mirror/vllm/vllm-openai", patterns)
    assert not c.repository_matches("acme/vllm-openai-proxy", patterns)
    assert not c.repository_matches("notvllm/vllm-openai", patterns)


def _inspect(**host: Any) -> dict[str, Any]:
    env = host.pop("env", [])
    return {"HostConfig": host, "Config": {"Env": env}}


@pytest.mark.parametrize(
    ("inspect", "labels", "gpus"),
    [
        (
            _inspect(
                DeviceRequests=[{"Driver": "", "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}]
            ),
            {},
            "0,1",
        ),
        (
            _inspect(DeviceRequests=[{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]),
            {},
            "all",
        ),
        (
            _inspect(
                DeviceRequests=[
                    {"Driver": "nvidia", "DeviceIDs": ["GPU-4f2a-11"], "Capabilities": [["gpu"]]}
                ]
            ),
            {},
            "GPU-4f2a-11",
        ),
        (_inspect(DeviceRequests=[{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=2"]}]), {}, "2"),
        (
            _inspect(DeviceRequests=[{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=all"]}]),
            {},
            "all",
        ),
        (_inspect(Runtime="nvidia", env=["NVIDIA_VISIBLE_DEVICES=1,3"]), {}, "1,3"),
        (_inspect(Runtime="nvidia", env=["PATH=/bin"]), {}, "all"),
        (_inspect(Runtime="runc", env=["NVIDIA_VISIBLE_DEVICES=all"]), {}, ""),  # CUDA image ENV
        (
            _inspect(DeviceRequests=[{"Driver": "nvidia", "Count": -1}]),
            {"inferwatch.gpus": "5"},
            "5",
        ),
        (_inspect(), {}, ""),
    ],
)
def test_gpu_mapping(inspect: dict[str, Any], labels: dict[str, str], gpus: str) -> None:
    assert c.gpus_of(inspect, labels) == (gpus, None)


def test_a_malformed_gpu_label_is_ignored_with_a_warning() -> None:
    inspect = _inspect(
        DeviceRequests=[{"Driver": "", "DeviceIDs": ["0"], "Capabilities": [["gpu"]]}]
    )
    gpus, warning = c.gpus_of(inspect, {"inferwatch.gpus": "the big one"})
    assert gpus == "0"
    assert warning is not None and "ignored label inferwatch.gpus" in warning


@pytest.mark.parametrize(
    ("inspect", "labels", "url"),
    [
        ({}, {"inferwatch.url": "http://gpu-1:8001/v1/"}, "http://gpu-1:8001"),
        (
            {
                "HostConfig": {"NetworkMode": "host"},
                "Config": {"Cmd": ["--model", "m", "--port", "8012"]},
            },
            {},
            "http://127.0.0.1:8012",
        ),
        (
            {"HostConfig": {"NetworkMode": "host"}, "Config": {"Cmd": ["--port=9000"]}},
            {},
            "http://127.0.0.1:9000",
        ),
        (
            {
                "HostConfig": {"NetworkMode": "host"},
                "Config": {"Cmd": ["vllm serve m --port 8100"]},
            },
            {},
            "http://127.0.0.1:8100",
        ),
        (
            {
                "HostConfig": {"NetworkMode": "bridge"},
                "NetworkSettings": {
                    "Ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18000"}]}
                },
            },
            {},
            "http://127.0.0.1:18000",
        ),
        ({"HostConfig": {"NetworkMode": "stack_default"}}, {}, "http://llama:8000"),
        ({"HostConfig": {"NetworkMode": "none"}}, {}, None),
    ],
)
def test_vllm_url(inspect: dict[str, Any], labels: dict[str, str], url: str | None) -> None:
    assert c.vllm_url("llama", inspect, labels) == (url, None)


def test_a_label_that_is_no_url_is_ignored_without_echoing_secrets() -> None:
    url, warning = c.vllm_url(
        "llama", {"HostConfig": {"NetworkMode": "host"}}, {"inferwatch.url": "ftp://u:pw@x"}
    )
    assert url == "http://127.0.0.1:8000"
    assert warning is not None and "pw" not in warning


def test_cpu_ratio_uses_dockers_formula_over_the_previous_sample() -> None:
    def stats(container: int, system: int) -> dict[str, Any]:
        return {
            "cpu_stats": {
                "cpu_usage": {"total_usage": container},
                "system_cpu_usage": system,
                "online_cpus": 4,
            }
        }

    first, second = c.cpu_sample(stats(1_000, 100_000)), c.cpu_sample(stats(26_000, 200_000))
    assert c.cpu_ratio(None, first) is None
    assert c.cpu_ratio(first, second) == pytest.approx(25_000 / 100_000 * 4)
    assert c.cpu_ratio(second, first) is None  # counters went back: the container restarted
    assert c.cpu_sample({"cpu_stats": {}}) is None


@pytest.mark.parametrize(
    ("memory", "used"),
    [
        ({"usage": 1000, "limit": 4000, "stats": {"inactive_file": 300}}, 700.0),  # cgroup v2
        ({"usage": 1000, "limit": 4000, "stats": {"total_inactive_file": 200}}, 800.0),  # v1
        ({"usage": 1000, "limit": 4000, "stats": {"inactive_file": 5000}}, 1000.0),
        ({"usage": 1000, "limit": 4000}, 1000.0),
    ],
)
def test_memory_uses_dockers_formula(memory: dict[str, Any], used: float) -> None:
    assert c.memory_used({"memory_stats": memory}) == (used, 4000.0)


def test_memory_and_network_absent_when_docker_says_nothing() -> None:
    assert c.memory_used({"memory_stats": {}}) == (None, None)
    assert c.network_bytes({}) is None
    assert c.network_bytes(
        {
            "networks": {
                "eth0": {"rx_bytes": 5, "tx_bytes": 7},
                "eth1": {"rx_bytes": 1, "tx_bytes": 1},
            }
        }
    ) == (6.0, 8.0)


@pytest.mark.parametrize(
    ("line", "kinds"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", ["cuda_oom"]),
        ("RuntimeError: CUDA error: out of memory", ["cuda_oom"]),
        ("ERROR 11-29 [core.py:700] EngineCore encountered a fatal error.", ["engine_dead"]),
        (
            "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.",
            ["engine_dead"],
        ),
        ("Traceback (most recent call last):", ["traceback"]),
        ("INFO 11-29 Avg prompt throughput: 1200 tokens/s", []),
    ],
)
def test_failure_lines(line: str, kinds: list[str]) -> None:
    assert c.log_event_kinds(line) == kinds


def test_docker_timestamps() -> None:
    assert c.parse_timestamp_ns("2026-11-29T14:57:34.567117487Z") == 1795964254567117487
    assert c.parse_timestamp_ns("2026-11-29T14:57:34.5Z") == 1795964254500000000
    assert c.parse_timestamp_ns("2026-11-29T14:57:34Z") == 1795964254000000000
    assert c.parse_timestamp_ns("0001-01-01T00:00:00Z") is None
    assert c.parse_timestamp_ns("yesterday") is None


def test_docker_errors_say_what_to_do() -> None:
    denied = describe_docker_error(
        PermissionError(13, "Permission denied"), "unix:///var/run/docker.sock"
    )
    assert isinstance(denied, ConfigError) and "docker group" in str(denied)
    missing = describe_docker_error(
        FileNotFoundError(2, "No such file or directory"), "unix:///x.sock"
    )
    assert isinstance(missing, Unreachable) and "is dockerd running" in str(missing)
