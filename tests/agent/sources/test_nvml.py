from __future__ import annotations

import asyncio
import importlib
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.exposition import FamiliesCollector, Fragment
from agent.simulator.fake_nvml import H100, FakeNVML, gpu_pci_bus_id, gpu_uuid
from agent.snapshot import Collection, SourceState
from agent.sources.nvml import NVMLSource, NVMLUnavailable
from agent.sources.nvml_binding import RealNVML
from agent.upstream import UpstreamError
from tests.promtool import needs_promtool, promtool_findings

pynvml: Any = importlib.import_module("pynvml")  # untyped: the real error classes, by name

Labels = dict[str, str]
Series = dict[str, list[tuple[Labels, float]]]

INTERVAL = 30.0
HOST = "gpu-host-1"
GIB = 1024**3
DCGM = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
)
CONTAINERS = {4100: "vllm-llama", 4101: "vllm-llama", 4102: "vllm-qwen", 4103: "vllm-qwen"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeNVML:
    return FakeNVML(clock=clock)


def make_source(
    fake: FakeNVML,
    clock: Clock,
    *,
    dialect: str = "dcgm",
    container_for_pid: Callable[[int], str | None] = CONTAINERS.get,
) -> NVMLSource:
    return NVMLSource(
        lambda: fake,
        interval_seconds=INTERVAL,
        dialect=dialect,
        hostname=HOST,
        container_for_pid=container_for_pid,
        clock=clock,
    )


@pytest.fixture
async def source(fake: FakeNVML, clock: Clock) -> AsyncIterator[NVMLSource]:
    source = make_source(fake, clock)
    yield source
    await source.aclose()


def render(collection: Collection, prefix: str = "") -> str:
    families = [f for f in collection.families if f.name.startswith(prefix)]
    return Fragment.render(FamiliesCollector(families)).text.decode()


def series(collection: Collection) -> Series:
    """The collection as Prometheus would read it from our exposition."""
    found: Series = {}
    for family in text_string_to_metric_families(render(collection)):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def by_gpu(samples: list[tuple[Labels, float]]) -> dict[str, float]:
    return {labels["gpu"]: value for labels, value in samples}


def dcgm_labels(index: int) -> Labels:
    return {
        "gpu": str(index),
        "UUID": gpu_uuid(index),
        "pci_bus_id": gpu_pci_bus_id(index),
        "device": f"nvidia{index}",
        "modelName": H100,
        "Hostname": HOST,
    }


async def test_dcgm_families_have_dcgm_names_units_types_and_labels(
    fake: FakeNVML, source: NVMLSource
) -> None:
    collection = await source.collect()
    assert collection.state is SourceState.UP
    assert collection.error is None
    types = {f.name: f.type for f in text_string_to_metric_families(render(collection))}
    # Gauges all, the energy counter included: dcgm-exporter's sample name has no `_total`.
    assert {types[name] for name in DCGM} == {"gauge"}
    found = series(collection)
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total" not in found
    assert [labels for labels, _ in found["DCGM_FI_DEV_GPU_UTIL"]] == [
        dcgm_labels(i) for i in range(4)
    ]
    handle = fake.handle_by_index(0)
    total, free, used = fake.memory_info(handle)
    gpu_util, memory_util = fake.utilization_rates(handle)
    expected = {
        "DCGM_FI_DEV_GPU_UTIL": gpu_util,
        "DCGM_FI_DEV_MEM_COPY_UTIL": memory_util,
        "DCGM_FI_DEV_FB_USED": used // 1024 // 1024,  # MiB
        "DCGM_FI_DEV_FB_FREE": free // 1024 // 1024,
        "DCGM_FI_DEV_GPU_TEMP": fake.temperature_v(handle),  # °C
        "DCGM_FI_DEV_POWER_USAGE": fake.power_usage(handle) / 1000,  # W from mW
        "DCGM_FI_DEV_POWER_MGMT_LIMIT": 700.0,
        "DCGM_FI_DEV_SM_CLOCK": fake.sm_clock(handle),  # MHz
        "DCGM_FI_DEV_MEM_CLOCK": 2619,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": fake.total_energy_consumption(handle),  # mJ
    }
    assert {name: by_gpu(found[name])["0"] for name in DCGM} == pytest.approx(expected)
    assert by_gpu(found["DCGM_FI_DEV_FB_USED"])["0"] == 72 * 1024 + 512
    assert used + free == total


async def test_readings_follow_the_clock(fake: FakeNVML, clock: Clock, source: NVMLSource) -> None:
    before = by_gpu(series(await source.collect())["DCGM_FI_DEV_GPU_UTIL"])
    clock.now += 60
    after = by_gpu(series(await source.collect())["DCGM_FI_DEV_GPU_UTIL"])
    assert before != after
    assert all(10 <= value <= 90 for value in [*before.values(), *after.values()])


async def test_an_unsupported_field_is_absent_not_zero(source: NVMLSource) -> None:
    # The fake's GPU 3 has no energy counter by default.
    collection = await source.collect()
    assert collection.state is SourceState.UP and collection.error is None
    energy = by_gpu(series(collection)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"])
    assert set(energy) == {"0", "1", "2"}
    assert all(value > 0 for value in energy.values())
    assert set(by_gpu(series(collection)["DCGM_FI_DEV_GPU_UTIL"])) == {"0", "1", "2", "3"}


async def test_a_field_without_permission_is_skipped_with_null_json(
    fake: FakeNVML, source: NVMLSource
) -> None:
    fake.fail(1, pynvml.NVMLError_NoPermission, "power_usage")
    collection = await source.collect()
    assert collection.state is SourceState.UP and collection.error is None
    assert set(by_gpu(series(collection)["DCGM_FI_DEV_POWER_USAGE"])) == {"0", "2", "3"}
    gpus = collection.data["gpus"]
    assert gpus[1]["power_watts"] is None
    assert gpus[1]["power_limit_watts"] == 700.0
    assert gpus[0]["power_watts"] > 0


async def test_another_field_error_is_skipped_and_reported(
    fake: FakeNVML, source: NVMLSource
) -> None:
    fake.fail(2, pynvml.NVMLError_Timeout, "sm_clock")
    collection = await source.collect()
    assert collection.state is SourceState.UP
    assert collection.error == "GPU 2 SM clock: Timeout"
    assert set(by_gpu(series(collection)["DCGM_FI_DEV_SM_CLOCK"])) == {"0", "1", "3"}


@pytest.mark.parametrize("error", [pynvml.NVMLError_GpuIsLost, pynvml.NVMLError_Unknown])
async def test_a_lost_gpu_is_dropped_while_the_others_report(
    fake: FakeNVML, source: NVMLSource, error: type[Exception]
) -> None:
    await source.collect()
    await source.collect()
    assert fake.calls["handle_by_index"] == 4  # handles are cached
    fake.fail(1, error)
    collection = await source.collect()
    assert collection.state is SourceState.UP
    assert collection.error is not None
    assert collection.error.startswith(f"GPU 1 ({gpu_uuid(1)}) left out: ")
    found = series(collection)
    for name in DCGM:
        assert "1" not in by_gpu(found[name]), name
    assert set(by_gpu(found["DCGM_FI_DEV_GPU_UTIL"])) == {"0", "2", "3"}
    assert set(by_gpu(found["inferwatch_gpu_info"])) == {"0", "2", "3"}
    assert found["inferwatch_gpus"] == [({}, 4.0)]
    assert [g["index"] for g in collection.data["gpus"]] == [0, 2, 3]

    still_lost = await source.collect()  # enumerated again: GPU 1 cannot be opened
    assert fake.calls["handle_by_index"] == 8
    assert still_lost.error is not None and still_lost.error.startswith("GPU 1 cannot be opened")
    assert set(by_gpu(series(still_lost)["DCGM_FI_DEV_GPU_UTIL"])) == {"0", "2", "3"}

    fake.heal(1)
    back = await source.collect()
    assert back.error is None
    assert set(by_gpu(series(back)["DCGM_FI_DEV_GPU_UTIL"])) == {"0", "1", "2", "3"}


async def test_every_gpu_lost_is_down(fake: FakeNVML, source: NVMLSource) -> None:
    for index in range(4):
        fake.fail(index, pynvml.NVMLError_GpuIsLost)
    collection = await source.collect()
    assert collection.state is SourceState.DOWN
    assert collection.error is not None and collection.error.count("GPU is lost") == 4
    found = series(collection)
    assert "DCGM_FI_DEV_GPU_UTIL" not in found
    assert found["inferwatch_gpus"] == [({}, 4.0)]


async def test_no_driver_is_unavailable_with_capped_exponential_backoff(
    fake: FakeNVML, clock: Clock, source: NVMLSource
) -> None:
    fake.init_error = pynvml.NVMLError_LibraryNotFound
    no_library = r"^no NVIDIA driver/library found: .*\(NVML: NVML Shared Library Not Found\)$"
    with pytest.raises(NVMLUnavailable, match=no_library):
        await source.collect()
    assert fake.calls["init"] == 1
    with pytest.raises(NVMLUnavailable):
        await source.collect()  # the first failures are retried at once: it may be transient
    assert fake.calls["init"] == 2
    attempts = []
    for _ in range(50):  # 25 minutes of polls
        clock.now += INTERVAL
        before = clock.now, fake.calls["init"]
        with pytest.raises(NVMLUnavailable):
            await source.collect()
        if fake.calls["init"] > before[1]:
            attempts.append(before[0])
    gaps = [b - a for a, b in zip([1000.0, *attempts], attempts, strict=False)]
    # Every poll while it may be transient, then interval x 2^k, capped at 300 s.
    assert gaps == [30, 30, 60, 120, 240, 300, 300, 300]
    with pytest.raises(NVMLUnavailable, match=r"next try in \d+ s"):
        await source.collect()  # between attempts: not tried, and the reason says when

    fake.init_error = None
    clock.now += 300
    collection = await source.collect()
    assert collection.state is SourceState.UP
    assert fake.initialised


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (pynvml.NVMLError_DriverNotLoaded, "the NVIDIA kernel driver is not loaded"),
        (pynvml.NVMLError_NoPermission, "no permission to use the NVIDIA devices"),
    ],
)
async def test_init_failures_say_what_is_wrong(
    fake: FakeNVML, source: NVMLSource, error: type[Exception], reason: str
) -> None:
    fake.init_error = error
    with pytest.raises(NVMLUnavailable) as raised:
        await source.collect()
    assert str(raised.value).startswith(reason)


async def test_a_driver_change_under_the_agent_reinitialises(
    fake: FakeNVML, clock: Clock, source: NVMLSource
) -> None:
    await source.collect()
    fake.fail(0, pynvml.NVMLError_LibRmVersionMismatch, "utilization_rates")
    with pytest.raises(NVMLUnavailable, match="differ in version"):
        await source.collect()
    assert not fake.initialised and fake.calls["shutdown"] == 1
    fake.heal(0)
    clock.now += 2 * INTERVAL
    assert (await source.collect()).state is SourceState.UP
    assert fake.calls["init"] == 2
    assert fake.calls["handle_by_index"] == 8  # enumerated again


async def test_dialect_off_keeps_only_inferwatch_families(fake: FakeNVML, clock: Clock) -> None:
    source = make_source(fake, clock, dialect="off")
    collection = await source.collect()
    await source.aclose()
    found = series(collection)
    assert not [name for name in found if name.startswith("DCGM_")]
    assert set(found) == {
        "inferwatch_gpus",
        "inferwatch_gpu_info",
        "inferwatch_gpu_process_memory_bytes",
        "inferwatch_container_gpu_memory_bytes",
    }


async def test_processes_are_mapped_to_containers_and_summed(
    fake: FakeNVML, source: NVMLSource
) -> None:
    fake.processes = [
        (0, 4100, 30 * GIB),
        (0, 4100, 2 * GIB),  # a second context of the same process: one series
        (1, 4101, 20 * GIB),
        (2, 4102, 10 * GIB),
        (2, 999, 1 * GIB),  # outside any container
        (3, 4103, None),  # NVML cannot tell (e.g. no permission to see it)
    ]
    collection = await source.collect()
    found = series(collection)
    processes = {
        (labels["gpu"], labels["pid"]): (labels["container"], labels["UUID"], value)
        for labels, value in found["inferwatch_gpu_process_memory_bytes"]
    }
    assert processes == {
        ("0", "4100"): ("vllm-llama", gpu_uuid(0), 32 * GIB),
        ("1", "4101"): ("vllm-llama", gpu_uuid(1), 20 * GIB),
        ("2", "4102"): ("vllm-qwen", gpu_uuid(2), 10 * GIB),
        ("2", "999"): ("", gpu_uuid(2), 1 * GIB),
    }
    containers = {
        labels["container"]: value
        for labels, value in found["inferwatch_container_gpu_memory_bytes"]
    }
    assert containers == {"vllm-llama": 52 * GIB, "vllm-qwen": 10 * GIB}
    assert collection.data["gpus"][3]["processes"] == [
        {"pid": 4103, "container": "vllm-qwen", "used_memory_bytes": None}
    ]


async def test_the_default_container_lookup_reads_cgroups_without_docker(
    fake: FakeNVML, clock: Clock
) -> None:
    fake.processes = [(0, 2**22 + 1, GIB)]  # above Linux's pid_max: no such process
    source = NVMLSource(lambda: fake, interval_seconds=INTERVAL, clock=clock)
    found = series(await source.collect())
    await source.aclose()
    assert [labels["container"] for labels, _ in found["inferwatch_gpu_process_memory_bytes"]] == [
        ""
    ]
    assert "inferwatch_container_gpu_memory_bytes" not in found
    assert {labels["Hostname"] for labels, _ in found["DCGM_FI_DEV_GPU_UTIL"]} == {
        socket.gethostname()
    }


async def test_temperature_falls_back_to_the_legacy_call(
    fake: FakeNVML, source: NVMLSource
) -> None:
    for index in range(4):
        fake.fail(index, pynvml.NVMLError_FunctionNotFound, "temperature_v")
    await source.collect()
    collection = await source.collect()
    temperatures = by_gpu(series(collection)["DCGM_FI_DEV_GPU_TEMP"])
    assert set(temperatures) == {"0", "1", "2", "3"}
    assert temperatures["0"] == fake.temperature(fake.handle_by_index(0))
    assert fake.calls["temperature_v"] == 1  # the driver lacks it: asked once
    assert collection.data["gpus"][0]["temperature_celsius"] == temperatures["0"]


async def test_gpu_json_for_the_api(fake: FakeNVML, source: NVMLSource) -> None:
    collection = await source.collect()
    assert collection.data["driver_version"] == "570.172.08"
    assert collection.data["cuda_driver_version"] == "12.8"
    gpu = collection.data["gpus"][0]
    handle = fake.handle_by_index(0)
    assert gpu == {
        "index": 0,
        "uuid": gpu_uuid(0),
        "name": H100,
        "pci_bus_id": "00000000:18:00.0",
        "utilization_percent": fake.utilization_rates(handle)[0],
        "memory_used_bytes": fake.memory_info(handle)[2],
        "memory_total_bytes": 81559 * 1024 * 1024,
        "temperature_celsius": fake.temperature_v(handle),
        "power_watts": fake.power_usage(handle) / 1000,
        "power_limit_watts": 700.0,
        "processes": [{"pid": 4100, "container": "vllm-llama", "used_memory_bytes": 72 * GIB}],
    }


async def test_info_and_count(source: NVMLSource) -> None:
    found = series(await source.collect())
    assert found["inferwatch_gpus"] == [({}, 4.0)]
    assert found["inferwatch_gpu_info"][0] == (
        {
            "gpu": "0",
            "UUID": gpu_uuid(0),
            "gpu_model": H100,
            "pci_bus_id": "00000000:18:00.0",
            "driver_version": "570.172.08",
        },
        1.0,
    )


async def test_no_gpus_is_up_and_empty(clock: Clock) -> None:
    source = make_source(FakeNVML(0, clock=clock), clock)
    collection = await source.collect()
    await source.aclose()
    assert collection.state is SourceState.UP and collection.error is None
    assert series(collection)["inferwatch_gpus"] == [({}, 0.0)]
    assert collection.data["gpus"] == []


async def test_a_bug_in_the_binding_is_not_disguised(fake: FakeNVML, source: NVMLSource) -> None:
    fake.fail(0, ZeroDivisionError, "memory_clock")
    with pytest.raises(ZeroDivisionError):
        await source.collect()


async def test_a_hung_poll_blocks_the_next_one_not_a_thread_pile(
    fake: FakeNVML, source: NVMLSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real_sm_clock = fake.sm_clock

    def hanging_sm_clock(handle: object) -> int:
        entered.set()
        release.wait(10)
        return real_sm_clock(handle)

    monkeypatch.setattr(fake, "sm_clock", hanging_sm_clock)
    first = asyncio.create_task(source.collect())
    try:
        assert await asyncio.to_thread(entered.wait, 10)
        with pytest.raises(UpstreamError, match="previous poll is still running"):
            await source.collect()
    finally:
        release.set()
    assert (await first).state is SourceState.UP


async def test_aclose_shuts_nvml_down_once(fake: FakeNVML, clock: Clock) -> None:
    source = make_source(fake, clock)
    await source.aclose()
    assert fake.calls["shutdown"] == 0
    await source.collect()
    await source.aclose()
    await source.aclose()
    assert fake.calls["shutdown"] == 1 and not fake.initialised


@needs_promtool
async def test_promtool_accepts_the_inferwatch_families(source: NVMLSource) -> None:
    text = render(await source.collect(), prefix="inferwatch_")
    assert "inferwatch_gpu_process_memory_bytes" in text
    assert await asyncio.to_thread(promtool_findings, text) == ""


def _real_nvml_works() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


async def test_the_real_binding_reports_what_this_machine_has() -> None:
    source = NVMLSource(RealNVML, interval_seconds=INTERVAL)
    try:
        if not _real_nvml_works():
            with pytest.raises(NVMLUnavailable) as raised:
                await source.collect()
            message = str(raised.value)
            assert "driver/library" in message or "driver is not loaded" in message
            assert "(NVML: " in message
            return
        collection = await source.collect()  # a machine with a GPU and its driver
        assert collection.state is SourceState.UP
        assert series(collection)["inferwatch_gpus"][0][1] >= 1
        assert "DCGM_FI_DEV_GPU_UTIL" in series(collection)
    finally:
        await source.aclose()
