"""The narrow slice of NVML the GPU source uses, and its implementation over ``pynvml``.

:class:`NVMLBinding` returns plain Python values (tuples, ints, strings) so that a fake can
satisfy it structurally without importing this package. Units are NVML's own: bytes,
milliwatts, millijoules, MHz, °C, percent. Errors are the real ``pynvml.NVMLError_*`` classes;
:func:`classify` sorts them into what the source does about them.

``pynvml`` (package ``nvidia-ml-py``) is imported on first use, so importing this module works
on machines without it; it loads ``libnvidia-ml.so.1`` only in ``nvmlInit``.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Sequence
from typing import Any, Protocol


class NVMLBinding(Protocol):
    """What the source calls. ``handle`` is opaque: whatever ``handle_by_index`` returned."""

    def init(self) -> None: ...

    def shutdown(self) -> None: ...

    def driver_version(self) -> str:
        """Kernel driver version, e.g. ``570.172.08``."""
        ...

    def cuda_driver_version(self) -> int:
        """CUDA version the driver supports, as NVML encodes it: 12080 is 12.8."""
        ...

    def device_count(self) -> int: ...

    def handle_by_index(self, index: int) -> object: ...

    def name(self, handle: object) -> str: ...

    def uuid(self, handle: object) -> str:
        """``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``."""
        ...

    def pci_bus_id(self, handle: object) -> str:
        """``00000000:18:00.0`` (domain:bus:device.function)."""
        ...

    def utilization_rates(self, handle: object) -> tuple[int, int]:
        """(GPU busy %, memory controller busy %) over the last sample period."""
        ...

    def memory_info(self, handle: object) -> tuple[int, int, int]:
        """(total, free, used) framebuffer bytes."""
        ...

    def temperature_v(self, handle: object) -> int:
        """GPU core °C via ``nvmlDeviceGetTemperatureV``; FunctionNotFound on older drivers."""
        ...

    def temperature(self, handle: object) -> int:
        """GPU core °C via the deprecated ``nvmlDeviceGetTemperature``."""
        ...

    def power_usage(self, handle: object) -> int:
        """Milliwatts."""
        ...

    def enforced_power_limit(self, handle: object) -> int:
        """Milliwatts."""
        ...

    def sm_clock(self, handle: object) -> int:
        """MHz."""
        ...

    def memory_clock(self, handle: object) -> int:
        """MHz."""
        ...

    def total_energy_consumption(self, handle: object) -> int:
        """Millijoules since the driver was loaded."""
        ...

    def compute_running_processes(self, handle: object) -> Sequence[tuple[int, int | None]]:
        """(host pid, used GPU memory in bytes, or None where NVML cannot tell)."""
        ...


class ErrorKind(enum.Enum):
    """What an exception raised by a binding means for the source."""

    UNSUPPORTED = "unsupported"
    """This field cannot be read on this GPU (NotSupported, NoPermission, FunctionNotFound)."""
    GPU_LOST = "gpu_lost"
    """The GPU fell off the bus or is wedged (GpuIsLost, Unknown): drop it, keep the others."""
    DRIVER = "driver"
    """NVML as a whole is gone or changed under us: initialise again."""
    OTHER = "other"
    """Any other NVML error (Timeout, Memory...): this field failed this time."""
    NOT_NVML = "not_nvml"


_KIND_BY_ERROR = {
    "NotSupported": ErrorKind.UNSUPPORTED,
    "NoPermission": ErrorKind.UNSUPPORTED,
    "FunctionNotFound": ErrorKind.UNSUPPORTED,
    "GpuIsLost": ErrorKind.GPU_LOST,
    "Unknown": ErrorKind.GPU_LOST,
    "Uninitialized": ErrorKind.DRIVER,
    "DriverNotLoaded": ErrorKind.DRIVER,
    "LibraryNotFound": ErrorKind.DRIVER,
    "LibRmVersionMismatch": ErrorKind.DRIVER,
}


@functools.cache
def _pynvml() -> Any:
    # By name: on first use (see the module docstring), and pynvml ships no type hints.
    return importlib.import_module("pynvml")


@functools.cache
def _kinds() -> tuple[tuple[type[BaseException], ErrorKind], ...]:
    nv = _pynvml()
    return tuple((getattr(nv, f"NVMLError_{name}"), kind) for name, kind in _KIND_BY_ERROR.items())


def classify(exc: BaseException) -> ErrorKind:
    if not isinstance(exc, _pynvml().NVMLError):
        return ErrorKind.NOT_NVML
    return next((kind for cls, kind in _kinds() if isinstance(exc, cls)), ErrorKind.OTHER)


def is_function_not_found(exc: BaseException) -> bool:
    return isinstance(exc, _pynvml().NVMLError_FunctionNotFound)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RealNVML:
    """:class:`NVMLBinding` over ``pynvml``: one call each, values converted to plain types."""

    def init(self) -> None:
        _pynvml().nvmlInit()

    def shutdown(self) -> None:
        _pynvml().nvmlShutdown()

    def driver_version(self) -> str:
        return _text(_pynvml().nvmlSystemGetDriverVersion())

    def cuda_driver_version(self) -> int:
        return int(_pynvml().nvmlSystemGetCudaDriverVersion())

    def device_count(self) -> int:
        return int(_pynvml().nvmlDeviceGetCount())

    def handle_by_index(self, index: int) -> object:
        handle: object = _pynvml().nvmlDeviceGetHandleByIndex(index)
        return handle

    def name(self, handle: object) -> str:
        return _text(_pynvml().nvmlDeviceGetName(handle))

    def uuid(self, handle: object) -> str:
        return _text(_pynvml().nvmlDeviceGetUUID(handle))

    def pci_bus_id(self, handle: object) -> str:
        return _text(_pynvml().nvmlDeviceGetPciInfo(handle).busId)

    def utilization_rates(self, handle: object) -> tuple[int, int]:
        rates = _pynvml().nvmlDeviceGetUtilizationRates(handle)
        return int(rates.gpu), int(rates.memory)

    def memory_info(self, handle: object) -> tuple[int, int, int]:
        info = _pynvml().nvmlDeviceGetMemoryInfo(handle)
        return int(info.total), int(info.free), int(info.used)

    def temperature_v(self, handle: object) -> int:
        nv = _pynvml()
        read = getattr(nv, "nvmlDeviceGetTemperatureV", None)
        if read is None:  # nvidia-ml-py older than the driver call
            raise nv.NVMLError(nv.NVML_ERROR_FUNCTION_NOT_FOUND)
        return int(read(handle, nv.NVML_TEMPERATURE_GPU))

    def temperature(self, handle: object) -> int:
        nv = _pynvml()
        return int(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))

    def power_usage(self, handle: object) -> int:
        return int(_pynvml().nvmlDeviceGetPowerUsage(handle))

    def enforced_power_limit(self, handle: object) -> int:
        return int(_pynvml().nvmlDeviceGetEnforcedPowerLimit(handle))

    def sm_clock(self, handle: object) -> int:
        nv = _pynvml()
        return int(nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM))

    def memory_clock(self, handle: object) -> int:
        nv = _pynvml()
        return int(nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM))

    def total_energy_consumption(self, handle: object) -> int:
        return int(_pynvml().nvmlDeviceGetTotalEnergyConsumption(handle))

    def compute_running_processes(self, handle: object) -> list[tuple[int, int | None]]:
        return [
            (int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory))
            for p in _pynvml().nvmlDeviceGetComputeRunningProcesses(handle)
        ]
