"""GPUs through NVML: per-GPU readings in the dcgm-exporter dialect, per-process GPU memory.

With ``INFERWATCH_GPU_METRICS=dcgm`` the families carry dcgm-exporter's names, units and labels,
so community dashboards work unchanged; with ``off`` a real dcgm-exporter is expected to export
those and only the ``inferwatch_gpu_*`` families remain.

A field a GPU cannot report (NotSupported, NoPermission) is left out, never reported as 0. A lost
GPU is left out of the poll while the others report; NVML that cannot be initialised makes the
source down and is tried again at the next polls, then with capped exponential backoff. NVML
calls block, so each poll runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from agent.snapshot import Collection, SourceState
from agent.sources.cgroup import container_id_for_pid
from agent.sources.nvml_binding import (
    ErrorKind,
    NVMLBinding,
    RealNVML,
    classify,
    is_function_not_found,
)
from agent.upstream import UpstreamError

T = TypeVar("T")

RETRIES_BEFORE_BACKOFF = 3
MAX_BACKOFF_SECONDS = 300.0
DIALECTS = ("dcgm", "off")
DCGM_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname")

_INIT_REASONS = {
    "NVMLError_LibraryNotFound": "no NVIDIA driver/library found: libnvidia-ml.so.1 cannot be "
    "loaded (in a container, run it with the NVIDIA container runtime)",
    "NVMLError_DriverNotLoaded": "the NVIDIA kernel driver is not loaded",
    "NVMLError_NoPermission": "no permission to use the NVIDIA devices",
    "NVMLError_LibRmVersionMismatch": "the NVML library and the loaded NVIDIA kernel driver "
    "differ in version (driver upgraded without a reboot?)",
    "NVMLError_Uninitialized": "NVML was shut down under the agent",
}


class NVMLUnavailable(UpstreamError):
    """NVML cannot be used on this host (no driver or library, no permission...)."""


def short_container_id(pid: int) -> str | None:
    """The default container lookup: the 12-character id ``docker ps`` shows, no Docker needed."""
    container_id = container_id_for_pid(pid)
    return container_id[:12] if container_id else None


@dataclass(frozen=True, slots=True)
class GPU:
    """One enumerated device; its identity does not change while NVML stays initialised."""

    index: int
    handle: object
    uuid: str
    name: str
    pci_bus_id: str


@dataclass(frozen=True, slots=True)
class GPUProcess:
    """A compute process on one GPU; ``container`` is None outside containers or unknown."""

    pid: int
    container: str | None
    used_memory_bytes: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GPUReading:
    """One poll of one GPU in NVML's units; None where the GPU could not report the field."""

    gpu: GPU
    utilization_percent: int | None
    memory_utilization_percent: int | None
    memory_total_bytes: int | None
    memory_free_bytes: int | None
    memory_used_bytes: int | None
    temperature_celsius: int | None
    power_milliwatts: int | None
    power_limit_milliwatts: int | None
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    energy_millijoules: int | None
    processes: tuple[GPUProcess, ...]


class NVMLSource:
    """Every GPU NVML sees on this host, one poll at a time in a worker thread."""

    name = "nvml"
    depends_on: tuple[str, ...] = ("docker",)

    def __init__(
        self,
        binding_factory: Callable[[], NVMLBinding] = RealNVML,
        *,
        interval_seconds: float,
        dialect: str = "dcgm",
        hostname: str | None = None,
        container_for_pid: Callable[[int], str | None] = short_container_id,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``container_for_pid`` maps a host pid to a container label (None: not in one); it is
        called from the poll's worker thread. ``hostname`` defaults to this machine's."""
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
        self.interval_seconds = interval_seconds
        self._factory = binding_factory
        self._dialect = dialect
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._container_for_pid = container_for_pid
        self._clock = clock
        # A poll cancelled by the job timeout leaves its thread running: the lock keeps the next
        # poll from racing it (and from piling up threads behind a hung GPU call).
        self._lock = threading.Lock()
        self._binding: NVMLBinding | None = None
        self._initialised = False
        self._gpus: list[GPU] = []
        self._count = 0
        self._unreadable: list[str] = []  # GPUs enumeration could not open, as problems
        self._stale = True  # enumerate before the next read
        self._legacy_temperature = False
        self._driver_version = ""
        self._cuda_version = ""
        self._failures = 0
        self._retry_at = float("-inf")
        self._reason = ""

    async def collect(self) -> Collection:
        return await asyncio.to_thread(self._poll)

    async def aclose(self) -> None:
        if self._initialised:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        if self._lock.acquire(timeout=5.0):  # else a call hangs: the process exit cleans up
            try:
                self._end_session()
            finally:
                self._lock.release()

    def _poll(self) -> Collection:
        if not self._lock.acquire(blocking=False):
            raise UpstreamError("NVML: the previous poll is still running (a GPU call hangs)")
        try:
            binding = self._session()
            try:
                return self._read_all(binding)
            except Exception as exc:
                if classify(exc) is not ErrorKind.DRIVER:
                    raise
                self._end_session()
                raise self._unavailable(exc, self._clock()) from None
        finally:
            self._lock.release()

    # --- session: init, enumeration, backoff -----------------------------------------------

    def _session(self) -> NVMLBinding:
        """The initialised binding with fresh handles, or NVMLUnavailable."""
        if self._binding is None or not self._initialised:
            return self._start()
        if self._stale:
            try:
                self._enumerate(self._binding)
            except Exception as exc:
                self._end_session()
                raise self._unavailable(exc, self._clock()) from None
        return self._binding

    def _start(self) -> NVMLBinding:
        now = self._clock()
        # Polls arrive with jitter: one landing just short of the retry time may try.
        if now + 0.1 * self.interval_seconds < self._retry_at:
            raise NVMLUnavailable(f"{self._reason}; next try in {self._retry_at - now:.0f} s")
        try:
            binding = self._binding = self._binding or self._factory()
            binding.init()
            self._initialised = True
            self._driver_version = _optional(binding.driver_version) or ""
            cuda = _optional(binding.cuda_driver_version)
            self._cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else ""
            self._legacy_temperature = False
            self._enumerate(binding)
        except Exception as exc:
            self._end_session()
            raise self._unavailable(exc, now) from None
        self._failures, self._retry_at = 0, float("-inf")
        return binding

    def _unavailable(self, exc: Exception, now: float) -> Exception:
        """Record a failed session and back off; returns what the poll raises."""
        if not isinstance(exc, ImportError) and classify(exc) is ErrorKind.NOT_NVML:
            return exc  # a bug, not an unusable NVML: let the scheduler log it with its trace
        self._failures += 1
        # A driver that comes back (a reload, a transient error) is used at the next poll; only
        # one that keeps failing is tried less often, up to MAX_BACKOFF_SECONDS apart.
        backoff = self._failures - RETRIES_BEFORE_BACKOFF
        delay = (
            0.0
            if backoff <= 0
            else min(self.interval_seconds * 2 ** min(backoff, 16), MAX_BACKOFF_SECONDS)
        )
        self._retry_at = now + delay
        self._reason = _describe_init_failure(exc)
        return NVMLUnavailable(self._reason)

    def _enumerate(self, binding: NVMLBinding) -> None:
        count = binding.device_count()
        gpus: list[GPU] = []
        unreadable: list[str] = []
        for index in range(count):
            try:
                handle = binding.handle_by_index(index)
                gpus.append(
                    GPU(
                        index,
                        handle,
                        binding.uuid(handle),
                        _optional(functools.partial(binding.name, handle)) or "",
                        _optional(functools.partial(binding.pci_bus_id, handle)) or "",
                    )
                )
            except Exception as exc:
                if classify(exc) in (ErrorKind.DRIVER, ErrorKind.NOT_NVML):
                    raise
                unreadable.append(f"GPU {index} cannot be opened: {exc}")
        self._count, self._gpus, self._unreadable = count, gpus, unreadable
        self._stale = bool(unreadable)  # look again next poll: it may come back

    def _end_session(self) -> None:
        if self._initialised and self._binding is not None:
            with contextlib.suppress(Exception):
                self._binding.shutdown()
        self._initialised, self._gpus, self._stale = False, [], True

    # --- one poll ---------------------------------------------------------------------------

    def _read_all(self, binding: NVMLBinding) -> Collection:
        problems = list(self._unreadable)
        containers: dict[int, str | None] = {}
        readings: list[GPUReading] = []
        for gpu in self._gpus:
            try:
                readings.append(self._read(binding, gpu, problems, containers))
            except Exception as exc:
                if classify(exc) is not ErrorKind.GPU_LOST:
                    raise
                problems.append(f"GPU {gpu.index} ({gpu.uuid}) left out: {exc}")
                self._stale = True
        everything_lost = self._count > 0 and not readings
        return Collection(
            families=tuple(self._families(readings)),
            data={
                "driver_version": self._driver_version or None,
                "cuda_driver_version": self._cuda_version or None,
                "gpus": [_gpu_json(r) for r in readings],
            },
            state=SourceState.DOWN if everything_lost else SourceState.UP,
            error="; ".join(problems) or None,
        )

    def _read(
        self,
        binding: NVMLBinding,
        gpu: GPU,
        problems: list[str],
        containers: dict[int, str | None],
    ) -> GPUReading:
        def field(what: str, read: Callable[[object], T]) -> T | None:
            return _field(gpu, what, read, problems)

        gpu_util, memory_util = field("utilization", binding.utilization_rates) or (None, None)
        total, free, used = field("memory", binding.memory_info) or (None, None, None)
        processes = field("processes", binding.compute_running_processes) or ()
        temperature = functools.partial(self._temperature, binding)
        return GPUReading(
            gpu=gpu,
            utilization_percent=gpu_util,
            memory_utilization_percent=memory_util,
            memory_total_bytes=total,
            memory_free_bytes=free,
            memory_used_bytes=used,
            temperature_celsius=field("temperature", temperature),
            power_milliwatts=field("power usage", binding.power_usage),
            power_limit_milliwatts=field("power limit", binding.enforced_power_limit),
            sm_clock_mhz=field("SM clock", binding.sm_clock),
            memory_clock_mhz=field("memory clock", binding.memory_clock),
            energy_millijoules=field("energy", binding.total_energy_consumption),
            processes=self._processes(processes, containers),
        )

    def _temperature(self, binding: NVMLBinding, handle: object) -> int:
        if not self._legacy_temperature:
            try:
                return binding.temperature_v(handle)
            except Exception as exc:
                if not is_function_not_found(exc):
                    raise
                self._legacy_temperature = True  # the driver predates it: don't ask again
        return binding.temperature(handle)

    def _processes(
        self, listed: Sequence[tuple[int, int | None]], containers: dict[int, str | None]
    ) -> tuple[GPUProcess, ...]:
        # NVML may list a pid once per context; one series per pid and GPU.
        by_pid: dict[int, list[int]] = {}
        for pid, used in listed:
            known = by_pid.setdefault(pid, [])
            if used is not None:
                known.append(used)
        result = []
        for pid, used_list in by_pid.items():
            if pid not in containers:
                containers[pid] = self._container_for_pid(pid)
            used_bytes = sum(used_list) if used_list else None
            result.append(GPUProcess(pid, containers[pid], used_bytes))
        return tuple(result)

    def _families(self, readings: Sequence[GPUReading]) -> list[Metric]:
        families = _dcgm_families(readings, self._hostname) if self._dialect == "dcgm" else []
        return [*families, *_inferwatch_families(readings, self._count, self._driver_version)]


def _field(gpu: GPU, what: str, read: Callable[[object], T], problems: list[str]) -> T | None:
    """One NVML read; None when this GPU cannot report it. A lost GPU or driver propagates."""
    try:
        return read(gpu.handle)
    except Exception as exc:
        kind = classify(exc)
        if kind is ErrorKind.OTHER:
            problems.append(f"GPU {gpu.index} {what}: {exc}")
        elif kind is not ErrorKind.UNSUPPORTED:
            raise
        return None


def _optional(read: Callable[[], T]) -> T | None:
    """A read that may fail without consequence (versions, names)."""
    try:
        return read()
    except Exception as exc:
        if classify(exc) in (ErrorKind.UNSUPPORTED, ErrorKind.OTHER):
            return None
        raise


def _describe_init_failure(exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return f"nvidia-ml-py (module pynvml) is not installed ({exc})"
    reason = _INIT_REASONS.get(type(exc).__name__, "NVML could not be initialised")
    return f"{reason} (NVML: {exc})"


# --- exposition ------------------------------------------------------------------------------


def _mib(value: int | None) -> int | None:
    return None if value is None else value // (1024 * 1024)  # dcgm-exporter: whole MiB


def _watts(milliwatts: int | None) -> float | None:
    return None if milliwatts is None else milliwatts / 1000


# dcgm-exporter's default counters (name, help), in its order. It declares
# TOTAL_ENERGY_CONSUMPTION a counter but names the sample without `_total`; prometheus_client's
# CounterMetricFamily would append `_total` and break community dashboards, so every family here
# is a gauge and the names are exact.
_DCGM_FIELDS: tuple[tuple[str, str, Callable[[GPUReading], float | None]], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", lambda r: r.sm_clock_mhz),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", lambda r: r.memory_clock_mhz),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", lambda r: r.temperature_celsius),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", lambda r: _watts(r.power_milliwatts)),
    (
        "DCGM_FI_DEV_POWER_MGMT_LIMIT",
        "Power management limit (in W).",
        lambda r: _watts(r.power_limit_milliwatts),
    ),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "Total energy consumption since boot (in mJ).",
        lambda r: r.energy_millijoules,
    ),
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", lambda r: r.utilization_percent),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "Memory utilization (in %).",
        lambda r: r.memory_utilization_percent,
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "Frame buffer memory free (in MB).",
        lambda r: _mib(r.memory_free_bytes),
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        "Frame buffer memory used (in MB).",
        lambda r: _mib(r.memory_used_bytes),
    ),
)


def _dcgm_families(readings: Sequence[GPUReading], hostname: str) -> list[Metric]:
    families: list[Metric] = []
    for name, help_text, value_of in _DCGM_FIELDS:
        family = GaugeMetricFamily(name, help_text, labels=DCGM_LABELS)
        for r in readings:
            value = value_of(r)
            if value is not None:
                g = r.gpu
                labels = [str(g.index), g.uuid, g.pci_bus_id, f"nvidia{g.index}", g.name, hostname]
                family.add_metric(labels, value)
        families.append(family)
    return families


def _inferwatch_families(
    readings: Sequence[GPUReading], count: int, driver_version: str
) -> list[Metric]:
    # Not `inferwatch_gpu_count`: promtool reserves `_count` for histograms and summaries.
    gpu_count = GaugeMetricFamily(
        "inferwatch_gpus", "GPUs NVML enumerates on this host (reporting or not)."
    )
    gpu_count.add_metric([], count)
    info = GaugeMetricFamily(
        "inferwatch_gpu_info",
        "A GPU that reported in the last poll; value is always 1.",
        # `gpu_model`, not dcgm's camelCase `modelName` (promtool wants snake_case) nor
        # `model_name` (the LLM's name on the vLLM and LiteLLM info metrics it may be joined with).
        labels=["gpu", "UUID", "gpu_model", "pci_bus_id", "driver_version"],
    )
    process_memory = GaugeMetricFamily(
        "inferwatch_gpu_process_memory_bytes",
        "GPU memory used by a compute process (container empty when unknown).",
        labels=["gpu", "UUID", "pid", "container"],
    )
    for r in readings:
        g = r.gpu
        info.add_metric([str(g.index), g.uuid, g.name, g.pci_bus_id, driver_version], 1.0)
        for p in r.processes:
            if p.used_memory_bytes is not None:
                labels = [str(g.index), g.uuid, str(p.pid), p.container or ""]
                process_memory.add_metric(labels, p.used_memory_bytes)
    container_memory = GaugeMetricFamily(
        "inferwatch_container_gpu_memory_bytes",
        "GPU memory used by a container's compute processes, summed over GPUs.",
        labels=["container"],
    )
    for container, used in sorted(_memory_by_container(readings).items()):
        container_memory.add_metric([container], used)
    return [gpu_count, info, process_memory, container_memory]


def _memory_by_container(readings: Iterable[GPUReading]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for r in readings:
        for p in r.processes:
            if p.container and p.used_memory_bytes is not None:
                totals[p.container] = totals.get(p.container, 0) + p.used_memory_bytes
    return totals


def _gpu_json(r: GPUReading) -> dict[str, Any]:
    g = r.gpu
    return {
        "index": g.index,
        "uuid": g.uuid,
        "name": g.name,
        "pci_bus_id": g.pci_bus_id,
        "utilization_percent": r.utilization_percent,
        "memory_used_bytes": r.memory_used_bytes,
        "memory_total_bytes": r.memory_total_bytes,
        "temperature_celsius": r.temperature_celsius,
        "power_watts": _watts(r.power_milliwatts),
        "power_limit_watts": _watts(r.power_limit_milliwatts),
        "processes": [
            {"pid": p.pid, "container": p.container, "used_memory_bytes": p.used_memory_bytes}
            for p in r.processes
        ],
    }
