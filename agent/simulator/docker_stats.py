"""`GET /containers/{id}/stats` as dockerd 20.10 writes it on a cgroup v2 host.

Counters are integrals of smooth, per-container loads over the time the container has been
running, so they only grow while it runs (and start again from zero when it restarts, as a new
cgroup does). vLLM containers are the busy ones: an engine core busy-polling one CPU, model
weights in the page cache.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from agent.simulator.docker_state import ContainerState, FakeContainer
from agent.simulator.docker_wire import NANOS, ZERO_TIME, rfc3339_nano

GIB = 1024**3
MIB = 1024**2
JIFFY_NS = 10_000_000  # system_cpu_usage comes from /proc/stat, in USER_HZ ticks
KERNEL_SHARE = 0.12
PACKET_BYTES = 900
BLOCK_DEVICE = {"major": 259, "minor": 0}
BLKIO_FIELDS = (
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)
ZERO_THROTTLING = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}


@dataclass(frozen=True)
class HostSpec:
    """The machine the fake daemon runs on, as `/info` and the stats report it."""

    ncpu: int
    mem_total: int
    boot_ns: int
    name: str


@dataclass(frozen=True)
class LoadProfile:
    """A container's resource use: CPU as a mean and a swing of busy cores, memory in bytes."""

    cores: float
    swing: float  # at most `cores`, so CPU time never runs backwards
    period: float
    phase: float
    anon_bytes: int
    file_bytes: int
    pids: int
    rx_bytes_per_second: float
    read_bytes: int


def load_profile(spec: FakeContainer) -> LoadProfile:
    rng = random.Random(f"load:{spec.name}")
    period = rng.uniform(300.0, 900.0)
    phase = rng.uniform(0.0, period)
    if spec.is_vllm:
        cores = rng.uniform(1.1, 1.6)
        weights = int(rng.uniform(14.5, 16.5) * GIB)
        return LoadProfile(
            cores, 0.5, period, phase, int(rng.uniform(7, 10) * GIB), weights, 180, 6e4, weights
        )
    if "prometheus" in spec.repository:
        return LoadProfile(0.05, 0.03, period, phase, 350 * MIB, int(1.2 * GIB), 18, 2e4, 600 * MIB)
    return LoadProfile(0.15, 0.1, period, phase, 700 * MIB, 80 * MIB, 40, 1e5, 250 * MIB)


def cpu_seconds(profile: LoadProfile, uptime: float) -> float:
    """∫ busy cores dt over the first `uptime` seconds of the container's run."""
    angle = 2 * math.pi / profile.period
    wave = math.cos(angle * profile.phase) - math.cos(angle * (uptime + profile.phase))
    return profile.cores * uptime + profile.swing / angle * wave


@dataclass(frozen=True)
class Sample:
    """One reading of a container's cgroup, like dockerd takes each second."""

    read_ns: int
    total_ns: int
    system_ns: int


def take_sample(state: ContainerState, host: HostSpec, now_ns: int) -> Sample:
    uptime = max(0.0, (now_ns - state.started_ns) / NANOS)
    total = round(cpu_seconds(load_profile(state.spec), uptime) * NANOS)
    system = (now_ns - host.boot_ns) * host.ncpu // JIFFY_NS * JIFFY_NS
    return Sample(now_ns, total, system)


def _cpu_json(sample: Sample | None, ncpu: int) -> dict[str, Any]:
    if sample is None:  # one-shot, or the first sample: Go's zero values, omitempty dropped
        usage = {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}
        return {"cpu_usage": usage, "throttling_data": dict(ZERO_THROTTLING)}
    kernel = round(sample.total_ns * KERNEL_SHARE)
    return {
        "cpu_usage": {
            "total_usage": sample.total_ns,
            "usage_in_kernelmode": kernel,
            "usage_in_usermode": sample.total_ns - kernel,
        },
        "system_cpu_usage": sample.system_ns,
        "online_cpus": ncpu,
        "throttling_data": dict(ZERO_THROTTLING),
    }


def _memory_json(state: ContainerState, host: HostSpec, now_ns: int) -> dict[str, Any]:
    profile = load_profile(state.spec)
    wobble = math.sin(2 * math.pi * (now_ns / NANOS + profile.phase) / profile.period)
    anon = int(profile.anon_bytes * (1 + 0.03 * wobble))
    file = profile.file_bytes
    limit = state.spec.memory_limit_bytes or host.mem_total
    scale = min(1.0, 0.85 * limit / (anon + file))
    anon, file = int(anon * scale), int(file * scale)
    inactive_file = int(file * 0.8)
    kernel_stack, slab, sock = 2 * MIB, 24 * MIB, 256 * 1024
    stats = {
        "active_anon": anon // 50,
        "active_file": file - inactive_file,
        "anon": anon,
        "anon_thp": 0,
        "file": file,
        "file_dirty": 0,
        "file_mapped": file // 40,
        "file_writeback": 0,
        "inactive_anon": anon - anon // 50,
        "inactive_file": inactive_file,
        "kernel_stack": kernel_stack,
        "pgfault": anon // 4096 * 3,
        "pgmajfault": 120,
        "shmem": 0,
        "slab": slab,
        "slab_reclaimable": slab * 3 // 4,
        "slab_unreclaimable": slab // 4,
        "sock": sock,
        "unevictable": 0,
        "workingset_refault": 0,
    }
    return {"usage": anon + file + kernel_stack + slab + sock, "stats": stats, "limit": limit}


def _networks_json(state: ContainerState, uptime: float) -> dict[str, Any]:
    rx = int(load_profile(state.spec).rx_bytes_per_second * uptime)
    tx = rx * 3 // 2
    return {
        "eth0": {
            "rx_bytes": rx,
            "rx_packets": rx // PACKET_BYTES,
            "rx_errors": 0,
            "rx_dropped": 0,
            "tx_bytes": tx,
            "tx_packets": tx // PACKET_BYTES,
            "tx_errors": 0,
            "tx_dropped": 0,
        }
    }


def _blkio_json(state: ContainerState | None) -> dict[str, Any]:
    blkio: dict[str, Any] = {"io_service_bytes_recursive": None}
    if state is not None:
        read = load_profile(state.spec).read_bytes
        blkio["io_service_bytes_recursive"] = [
            {**BLOCK_DEVICE, "op": "read", "value": read},
            {**BLOCK_DEVICE, "op": "write", "value": read // 200},
        ]
    return blkio | dict.fromkeys(BLKIO_FIELDS)


def stats_json(
    state: ContainerState, host: HostSpec, now_ns: int, previous: Sample | None
) -> dict[str, Any]:
    """The stats of a running container at `now_ns`; `previous` is None for one-shot."""
    sample = take_sample(state, host, now_ns)
    body: dict[str, Any] = {
        "read": rfc3339_nano(sample.read_ns),
        "preread": rfc3339_nano(previous.read_ns) if previous else ZERO_TIME,
        "pids_stats": {"current": load_profile(state.spec).pids},
        "blkio_stats": _blkio_json(state),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_json(sample, host.ncpu),
        "precpu_stats": _cpu_json(previous, host.ncpu),
        "memory_stats": _memory_json(state, host, now_ns),
        "name": f"/{state.name}",
        "id": state.id,
    }
    # A container on the host's (or no) network has no interfaces of its own to count.
    if state.spec.network_mode not in ("host", "none"):
        body["networks"] = _networks_json(state, (now_ns - state.started_ns) / NANOS)
    return body


def stopped_stats_json(state: ContainerState) -> dict[str, Any]:
    """What dockerd answers at once for a container that is not running: zero values."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": _blkio_json(None),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_json(None, 0),
        "precpu_stats": _cpu_json(None, 0),
        "memory_stats": {},
        "name": f"/{state.name}",
        "id": state.id,
    }
