"""What the Docker Engine API says about a container, read into what the agent needs.

Pure functions over the Engine API's JSON (no I/O): image references, the GPU mapping, the vLLM
endpoint URL, Docker's own CPU and memory formulas, and the failure lines worth counting in logs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.upstream import redact_url

GPUS_LABEL = "inferwatch.gpus"
URL_LABEL = "inferwatch.url"
VLLM_DEFAULT_PORT = 8000

_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
_GPU_ID = re.compile(r"^(?:\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+)$")
_MAX_COUNT = 2**63  # what the daemon's Go integers hold


# The Engine API's JSON is read defensively: a field of an unexpected type counts as absent.
def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def count(value: Any) -> int | None:
    """``value`` when it is a non-negative JSON integer (not a boolean), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT:
        return value
    return None


@dataclass(frozen=True, slots=True)
class ImageReference:
    """``[registry[:port]/]repository[:tag][@digest]``, split the way Docker reads it."""

    repository: str
    tag: str
    digest: str

    @property
    def version(self) -> str:
        """The tag as a version: ``v0.11.0`` -> ``0.11.0``; empty when the tag names no version."""
        if not self.tag or self.tag == "latest" or not self.tag.lstrip("v")[:1].isdigit():
            return ""
        return self.tag.removeprefix("v")


def parse_image_reference(reference: str) -> ImageReference:
    """Split an image reference; a colon in the registry part (a port) is not a tag."""
    digest = ""
    match = _DIGEST.search(reference)
    if match:
        digest = match.group(1)
        reference = reference[: match.start()]
    name, tag = reference, ""
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        name, tag = reference[:colon], reference[colon + 1 :]
    if not tag and not digest:
        tag = "latest"
    return ImageReference(name, tag, digest)


def repository_matches(repository: str, patterns: Sequence[str]) -> bool:
    """``vllm/vllm-openai`` matches ``vllm/vllm-openai``, ``docker.io/vllm/vllm-openai`` and
    ``registry:5000/mirror/vllm/vllm-openai``: the pattern must end the repository path."""
    for pattern in patterns:
        pattern = pattern.strip("/")
        if repository == pattern or repository.endswith("/" + pattern):
            return True
    return False


def gpus_of(inspect: Mapping[str, Any], labels: Mapping[str, str]) -> tuple[str, str | None]:
    """The GPUs a container was given, as the contract writes them (``0,1``, UUIDs, ``all`` or
    ``""``), and a warning when the ``inferwatch.gpus`` label had to be ignored.

    Order of authority: the label, then ``HostConfig.DeviceRequests`` (``--gpus``, compose
    reservations, CDI), then the legacy ``nvidia`` runtime with ``NVIDIA_VISIBLE_DEVICES``.
    """
    label = labels.get(GPUS_LABEL)
    warning = None
    if label is not None:
        parsed = _gpu_list(label)
        if parsed is not None:
            return parsed, None
        warning = f"ignored label {GPUS_LABEL}={label[:40]!r}: expected 'all' or GPU ids like 0,1"
    host = mapping(inspect.get("HostConfig"))
    ids: list[str] = []
    for request in _items(host.get("DeviceRequests")):
        if not isinstance(request, dict) or not _is_gpu_request(request):
            continue
        if request.get("Count") == -1:
            return "all", warning
        for device in _items(request.get("DeviceIDs")):
            device = str(device).removeprefix("nvidia.com/gpu=")
            if device == "all":
                return "all", warning
            ids.append(device)
    if ids:
        return ",".join(dict.fromkeys(ids)), warning
    if host.get("Runtime") == "nvidia":
        env = _env(inspect)
        return (_gpu_list(env.get("NVIDIA_VISIBLE_DEVICES", "all")) or ""), warning
    return "", warning


def _is_gpu_request(request: Mapping[str, Any]) -> bool:
    driver = request.get("Driver") or ""
    if driver == "cdi":
        return any(str(d).startswith("nvidia.com/gpu") for d in _items(request.get("DeviceIDs")))
    capabilities = _items(request.get("Capabilities"))
    return driver == "nvidia" or any("gpu" in _items(group) for group in capabilities)


def _gpu_list(value: str) -> str | None:
    value = value.strip()
    if value in ("none", "void", ""):
        return ""
    if value == "all":
        return "all"
    ids = [item.strip() for item in value.split(",")]
    if all(_GPU_ID.match(item) for item in ids):
        return ",".join(ids)
    return None


def _env(inspect: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in _items(mapping(inspect.get("Config")).get("Env")):
        name, _, value = str(item).partition("=")
        env[name] = value
    return env


def vllm_url(
    name: str, inspect: Mapping[str, Any], labels: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """Where the agent reaches a vLLM container, and a warning for a label it ignored.

    ``inferwatch.url`` wins; then host networking (loopback, the ``--port`` argument); then a
    published port; otherwise the container name on a shared network.
    """
    warning = None
    label = labels.get(URL_LABEL)
    if label is not None:
        if re.match(r"^https?://[^/\s]+", label):
            return label.rstrip("/").removesuffix("/v1"), None
        warning = f"ignored label {URL_LABEL}={redact_url(label)[:60]!r}: not an http(s) URL"
    port = _vllm_port(inspect)
    host = mapping(inspect.get("HostConfig"))
    if host.get("NetworkMode") == "host":
        return f"http://127.0.0.1:{port}", warning
    if host.get("NetworkMode") == "none":
        return None, warning
    ports = _items(mapping(mapping(inspect.get("NetworkSettings")).get("Ports")).get(f"{port}/tcp"))
    for binding in ports:
        host_port = str(binding.get("HostPort") or "") if isinstance(binding, dict) else ""
        if _is_port(host_port):
            host_ip = str(binding.get("HostIp") or "0.0.0.0")
            address = "127.0.0.1" if host_ip in ("0.0.0.0", "::", "") else host_ip
            address = f"[{address}]" if ":" in address else address  # an IPv6 address
            return f"http://{address}:{host_port}", warning
    return f"http://{name}:{port}", warning


def _is_port(value: str) -> bool:
    return value.isascii() and value.isdigit() and 0 < int(value) < 65536


def _vllm_port(inspect: Mapping[str, Any]) -> int:
    config = mapping(inspect.get("Config"))
    args = [str(a) for a in _items(config.get("Entrypoint")) + _items(config.get("Cmd"))]
    if len(args) == 1:
        try:
            args = shlex.split(args[0])
        except ValueError:  # an unbalanced quote: the shell would refuse it too
            args = args[0].split()
    for index, arg in enumerate(args):
        value = None
        if arg == "--port" and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--port="):
            value = arg.partition("=")[2]
        if value is not None and _is_port(value):
            return int(value)
    return VLLM_DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class CPUSample:
    container_total: int
    system_total: int
    online_cpus: int


def cpu_sample(stats: Mapping[str, Any]) -> CPUSample | None:
    cpu = mapping(stats.get("cpu_stats"))
    usage = mapping(cpu.get("cpu_usage"))
    total = count(usage.get("total_usage"))
    system = count(cpu.get("system_cpu_usage"))
    if total is None or not system:
        return None
    online = count(cpu.get("online_cpus")) or len(_items(usage.get("percpu_usage")))
    return CPUSample(total, system, online or 1)


def cpu_ratio(previous: CPUSample | None, current: CPUSample | None) -> float | None:
    """Docker's CPU% / 100 (1.0 = one core busy) between two samples; None without a usable pair
    (a one-shot stats read has no previous sample of its own: the caller keeps the last one)."""
    if previous is None or current is None:
        return None
    container_delta = current.container_total - previous.container_total
    system_delta = current.system_total - previous.system_total
    if system_delta <= 0 or container_delta < 0:
        return None
    return container_delta / system_delta * current.online_cpus


def memory_used(stats: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(used, limit) bytes with Docker's formula: usage minus the inactive page cache."""
    memory = mapping(stats.get("memory_stats"))
    usage = count(memory.get("usage"))
    limit = count(memory.get("limit"))
    if usage is None:
        return None, None if limit is None else float(limit)
    details = mapping(memory.get("stats"))
    inactive = count(details.get("inactive_file", details.get("total_inactive_file")))
    used = usage - inactive if inactive is not None and inactive < usage else usage
    return float(used), None if limit is None else float(limit)


def network_bytes(stats: Mapping[str, Any]) -> tuple[float, float] | None:
    networks = stats.get("networks")
    if not isinstance(networks, dict) or not networks:
        return None
    interfaces = [n for n in networks.values() if isinstance(n, dict)]
    received = sum(count(n.get("rx_bytes")) or 0 for n in interfaces)
    sent = sum(count(n.get("tx_bytes")) or 0 for n in interfaces)
    return float(received), float(sent)


LOG_EVENT_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cuda_oom", re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")),
    (
        "engine_dead",
        # Bounded repeats: a 64 KiB line of "EngineCoreEngineCore..." must not cost seconds.
        re.compile(
            r"EngineDeadError|EngineCore\S{0,64} (?:encountered|failed|died)"
            r"|Engine core .{0,256}?died"
        ),
    ),
    ("traceback", re.compile(r"Traceback \(most recent call last\)")),
)


def log_event_kinds(line: str) -> list[str]:
    """The failure kinds a log line reports (a line may report several)."""
    return [kind for kind, pattern in LOG_EVENT_KINDS if pattern.search(line)]


def parse_timestamp_ns(stamp: str) -> int | None:
    """RFC 3339 with nanoseconds (Docker's timestamps) -> Unix nanoseconds."""
    if not stamp or stamp.startswith("0001-"):
        return None
    try:
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    except ValueError:
        return None
    digits = "".join(ch for ch in fraction if ch.isdigit())[:9].ljust(9, "0")
    return int(seconds) * 1_000_000_000 + int(digits)
