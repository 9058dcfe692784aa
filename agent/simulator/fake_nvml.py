"""A fake NVML: a few H100s whose readings drift smoothly with time, and injectable faults.

It has the methods the agent's NVML binding protocol names (matched by shape: the simulator never
imports the agent's sources), in NVML's units (bytes, mW, mJ, MHz, °C, %), and raises the real
``pynvml.NVMLError_*`` classes, so code under test sees what a real driver would raise. Like real
NVML it refuses every call but ``init`` until initialised, and counts calls for tests.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

H100 = "NVIDIA H100 80GB HBM3"
H100_MEMORY_BYTES = 81559 * 1024 * 1024  # what nvidia-smi shows as total on an H100 80GB HBM3
DRIVER_VERSION = "570.172.08"
CUDA_DRIVER_VERSION = 12080  # NVML's encoding of CUDA 12.8
# Bus numbers of the eight GPUs on an HGX H100 board.
_HGX_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
_PERIOD_SECONDS = 300.0
_OMEGA = 2 * math.pi / _PERIOD_SECONDS
_OVERHEAD_BYTES = 512 * 1024 * 1024  # CUDA context and driver reservations
_POWER_LIMIT_MW = 700_000
_IDLE_WATTS, _WATTS_PER_PERCENT = 70.0, 5.5
_BOOT_ENERGY_JOULES = 3.6e9  # about a month of uptime at 1.4 kW

DEFAULT_UNSUPPORTED: Mapping[int, Sequence[str]] = {3: ("total_energy_consumption",)}
# Per-GPU calls; a fault may target one of them (or, with no field, all of them).
FIELDS = frozenset(
    {
        "handle_by_index",
        "name",
        "uuid",
        "pci_bus_id",
        "utilization_rates",
        "memory_info",
        "temperature_v",
        "temperature",
        "power_usage",
        "enforced_power_limit",
        "sm_clock",
        "memory_clock",
        "total_energy_consumption",
        "compute_running_processes",
    }
)


def _pynvml() -> Any:
    return importlib.import_module("pynvml")  # no type hints; cached in sys.modules


@dataclass(frozen=True, slots=True)
class FakeHandle:
    index: int


def gpu_uuid(index: int) -> str:
    """A stable, realistic UUID per index: dashboards keep their series across demo restarts."""
    digest = hashlib.sha256(f"inferwatch-fake-gpu-{index}".encode()).digest()
    return f"GPU-{uuid.UUID(bytes=digest[:16])}"


def gpu_pci_bus_id(index: int) -> str:
    bus = _HGX_BUSES[index] if index < len(_HGX_BUSES) else 0xE0 + index
    return f"00000000:{bus:02X}:00.0"


class FakeNVML:
    """``gpus`` H100s. ``processes``: (gpu index, host pid, used bytes or None), settable
    (default: pid 4100 + i using 72 GiB on GPU i); ``unsupported``: fields each GPU cannot
    report (default: no energy counter on GPU 3)."""

    def __init__(
        self,
        gpus: int = 4,
        *,
        clock: Callable[[], float] = time.monotonic,
        model: str = H100,
        processes: Sequence[tuple[int, int, int | None]] | None = None,
        unsupported: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        self.count = gpus
        self.model = model
        self.clock = clock
        self.processes: list[tuple[int, int, int | None]] = (
            [(i, 4100 + i, 72 * 1024**3) for i in range(gpus)]  # one vLLM worker per GPU
            if processes is None
            else list(processes)
        )
        self.init_error: type[Exception] | None = None
        self.calls: Counter[str] = Counter()
        self.initialised = False
        self._start = clock()
        self._faults: dict[tuple[int, str | None], type[Exception]] = {}
        self._stall_seconds = 0.0
        self._unstalled = threading.Event()
        unsupported = DEFAULT_UNSUPPORTED if unsupported is None else unsupported
        for index, fields in unsupported.items():
            for name in fields:
                self.fail(index, _pynvml().NVMLError_NotSupported, name)

    # --- fault injection -----------------------------------------------------------------------

    def fail(self, index: int, error: type[Exception], field: str | None = None) -> None:
        """Make GPU ``index`` raise ``error`` (e.g. ``pynvml.NVMLError_GpuIsLost``) on ``field``,
        or on every per-GPU call when ``field`` is None. pynvml's error subclasses construct with
        their NVML code set, as ``pynvml.NVMLError(code)`` does."""
        if field is not None and field not in FIELDS:
            raise ValueError(f"unknown NVML field {field!r}; one of {sorted(FIELDS)}")
        self._faults[(index, field)] = error

    def heal(self, index: int) -> None:
        """Clear every fault of GPU ``index``, the default unsupported fields included."""
        for key in [k for k in self._faults if k[0] == index]:
            del self._faults[key]

    def stall(self, seconds: float) -> None:
        """Make every call but ``init`` block for ``seconds`` (a hung driver) until unstalled."""
        self._unstalled.clear()
        self._stall_seconds = seconds

    def unstall(self) -> None:
        """End the stall: blocked calls return at once."""
        self._stall_seconds = 0.0
        self._unstalled.set()

    def _enter(self, call: str) -> None:
        self.calls[call] += 1
        if self._stall_seconds:
            self._unstalled.wait(self._stall_seconds)
        if not self.initialised:
            raise _pynvml().NVMLError_Uninitialized()

    def _gpu(self, field: str, handle: object) -> int:
        self._enter(field)
        if not isinstance(handle, FakeHandle) or not 0 <= handle.index < self.count:
            raise _pynvml().NVMLError_InvalidArgument()
        return self._check(handle.index, field)

    def _check(self, index: int, field: str) -> int:
        error = self._faults.get((index, None)) or self._faults.get((index, field))
        if error is not None:
            raise error()
        return index

    # --- system --------------------------------------------------------------------------------

    def init(self) -> None:
        self.calls["init"] += 1
        if self.init_error is not None:
            raise self.init_error()
        self.initialised = True

    def shutdown(self) -> None:
        self._enter("shutdown")
        self.initialised = False

    def driver_version(self) -> str:
        self._enter("driver_version")
        return DRIVER_VERSION

    def cuda_driver_version(self) -> int:
        self._enter("cuda_driver_version")
        return CUDA_DRIVER_VERSION

    def device_count(self) -> int:
        self._enter("device_count")
        return self.count

    def handle_by_index(self, index: int) -> object:
        self._enter("handle_by_index")
        if not 0 <= index < self.count:
            raise _pynvml().NVMLError_InvalidArgument()
        return FakeHandle(self._check(index, "handle_by_index"))

    # --- per GPU -------------------------------------------------------------------------------

    def name(self, handle: object) -> str:
        self._gpu("name", handle)
        return self.model

    def uuid(self, handle: object) -> str:
        return gpu_uuid(self._gpu("uuid", handle))

    def pci_bus_id(self, handle: object) -> str:
        return gpu_pci_bus_id(self._gpu("pci_bus_id", handle))

    def utilization_rates(self, handle: object) -> tuple[int, int]:
        busy = self._busy(self._gpu("utilization_rates", handle))
        return round(busy), round(0.6 * busy)

    def memory_info(self, handle: object) -> tuple[int, int, int]:
        index = self._gpu("memory_info", handle)
        used = _OVERHEAD_BYTES + sum(b or 0 for gpu, _, b in self.processes if gpu == index)
        used = min(used, H100_MEMORY_BYTES)
        return H100_MEMORY_BYTES, H100_MEMORY_BYTES - used, used

    def temperature_v(self, handle: object) -> int:
        return round(32 + 0.45 * self._busy(self._gpu("temperature_v", handle)))

    def temperature(self, handle: object) -> int:
        return round(32 + 0.45 * self._busy(self._gpu("temperature", handle)))

    def power_usage(self, handle: object) -> int:
        busy = self._busy(self._gpu("power_usage", handle))
        return round(1000 * (_IDLE_WATTS + _WATTS_PER_PERCENT * busy))

    def enforced_power_limit(self, handle: object) -> int:
        self._gpu("enforced_power_limit", handle)
        return _POWER_LIMIT_MW

    def sm_clock(self, handle: object) -> int:
        return round(1410 + 5.7 * self._busy(self._gpu("sm_clock", handle)))

    def memory_clock(self, handle: object) -> int:
        self._gpu("memory_clock", handle)
        return 2619

    def total_energy_consumption(self, handle: object) -> int:
        """The integral of power_usage since boot: it only ever grows."""
        index = self._gpu("total_energy_consumption", handle)
        t, phase = self._elapsed(), self._phase(index)
        # busy(t) = 50 + 40 sin(ωt + φ); ∫ busy dt = 50 t - (40/ω) cos(ωt + φ) (+40/ω at t=0).
        busy_integral = 50 * t - 40 / _OMEGA * (math.cos(_OMEGA * t + phase) - math.cos(phase))
        joules = _BOOT_ENERGY_JOULES + _IDLE_WATTS * t + _WATTS_PER_PERCENT * busy_integral
        return round(1000 * joules)

    def compute_running_processes(self, handle: object) -> list[tuple[int, int | None]]:
        index = self._gpu("compute_running_processes", handle)
        return [(pid, used) for gpu, pid, used in self.processes if gpu == index]

    # --- readings ------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return max(0.0, self.clock() - self._start)

    @staticmethod
    def _phase(index: int) -> float:
        return 1.3 * index

    def _busy(self, index: int) -> float:
        """GPU utilization in percent, 10..90, one slow wave per GPU."""
        return 50 + 40 * math.sin(_OMEGA * self._elapsed() + self._phase(index))
