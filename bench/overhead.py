"""The agent's overhead at steady state (LiteLLM, 16 vLLM instances, 8 fake GPUs, polled and
scraped every 30 s) beside a plain prometheus_client exporter serving the same samples from
static data: the floor.

Time is compressed tenfold: both are scraped every 3 s for 60 s while the agent polls every 3 s
(CPU per cycle), then left alone for 20 s (the idle cost: an agent that polled once), and
CPU per hour at 30 s = CPU per cycle x 120 + idle CPU per second x 3600.

The processes under test are ``python -m bench.overhead agent`` and
``python -m bench.overhead floor PAGE PORT``. Each role imports only what it runs, so neither
RSS carries the other's libraries or the benchmark's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import subprocess

    import httpx
    from prometheus_client.metrics_core import Metric

    from agent.sources.nvml_binding import NVMLBinding

INSTANCES, GPUS = 16, 8
REAL_INTERVAL, INTERVAL = 30.0, 3.0
BUSY_SECONDS, IDLE_SECONDS = 60.0, 20.0
CYCLES_PER_HOUR = 3600 / REAL_INTERVAL
FAKE_PID_BASE = 4100  # FakeNVML's default: one process per GPU, pid 4100 + index


def _fake_nvml(gpus: int) -> NVMLBinding:
    # FakeNVML's module alone: importing the simulator package would load its servers'
    # libraries (~12 MB) into the agent, which a real host, loading pynvml, does not carry.
    path = Path(__file__).resolve().parents[1] / "agent" / "simulator" / "fake_nvml.py"
    spec = importlib.util.spec_from_file_location("fake_nvml", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return cast("NVMLBinding", module.FakeNVML(gpus))


def serve_agent() -> None:
    """The agent with 8 fake GPUs; every other setting comes from the environment."""
    from agent.app import Agent
    from agent.settings import Settings

    nvml = _fake_nvml(GPUS)
    agent = Agent(
        Settings(),
        nvml_binding=lambda: nvml,
        container_for_pid=lambda pid: f"vllm-{pid - FAKE_PID_BASE}",
    )

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await agent.serve(stop)

    asyncio.run(serve())


def serve_floor(page: Path, port: int) -> None:
    """prometheus_client's own HTTP server and a collector yielding the families parsed once
    from a saved agent page: the least an exporter of these samples can cost."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import Collector

    families = list(text_string_to_metric_families(page.read_text()))

    class StaticCollector(Collector):
        def collect(self) -> Iterable[Metric]:
            return families

    registry = CollectorRegistry()
    registry.register(StaticCollector())
    start_http_server(port, addr="127.0.0.1", registry=registry)
    threading.Event().wait()  # until SIGTERM


@dataclass
class Figures:
    name: str
    samples: int
    idle_cpu: float  # CPU seconds over IDLE_SECONDS with no polls or scrapes
    busy_cpu: float  # CPU seconds over BUSY_SECONDS
    cycles: int  # polls (the floor: scrapes) in the busy window, one scrape each
    rss: tuple[float, float]  # (current, peak) MiB at the end
    scrapes: list[float]

    @property
    def idle_per_second(self) -> float:
        return self.idle_cpu / IDLE_SECONDS

    @property
    def per_cycle(self) -> float:
        return (self.busy_cpu - self.idle_per_second * BUSY_SECONDS) / self.cycles

    @property
    def per_hour(self) -> float:
        return self.per_cycle * CYCLES_PER_HOUR + self.idle_per_second * 3600


def _agent_env(litellm: str, vllm_urls: list[str], port: int, interval: float) -> dict[str, str]:
    from agent.simulator.config import SimulatorConfig

    compression = REAL_INTERVAL / INTERVAL
    return {
        "INFERWATCH_LISTEN": f"127.0.0.1:{port}",
        "INFERWATCH_SOURCES": "litellm,vllm,nvml",
        "LITELLM_URL": litellm,
        "LITELLM_API_KEY": SimulatorConfig().litellm_master_key,
        "VLLM_URLS": ",".join(vllm_urls),
        "INFERWATCH_POLL_INTERVAL_SECONDS": str(interval),
        "INFERWATCH_JITTER_SECONDS": "0",
        # Model lists are re-read every 10th cycle at 30 s: keep that share when compressed.
        "INFERWATCH_MODEL_LIST_TTL_SECONDS": str(300 / compression),
    }


@contextmanager
def _agent(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    from bench.common import process, wait_for, wait_for_sources

    url = "http://127.0.0.1:" + env["INFERWATCH_LISTEN"].rpartition(":")[2]
    with process([sys.executable, "-m", "bench.overhead", "agent"], env, log=log) as agent:
        wait_for(url + "/readyz")
        wait_for_sources(url, env["INFERWATCH_SOURCES"].split(","))
        yield agent, url


def _cpu_over(pids: dict[str, int], seconds: float) -> dict[str, float]:
    from bench.common import cpu_seconds

    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}


def _scraped(
    client: httpx.Client, targets: dict[str, tuple[int, str]], seconds: float
) -> tuple[dict[str, float], dict[str, list[float]], int]:
    """(CPU seconds, scrape latencies, rounds): one scrape of each target every INTERVAL."""
    from bench.common import cpu_seconds
    from bench.scrape import PROMETHEUS_HEADERS

    before = {name: cpu_seconds(pid) for name, (pid, _) in targets.items()}
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    started, rounds = time.monotonic(), 0
    while (due := started + rounds * INTERVAL) < started + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        for name, (_, url) in targets.items():
            clock = time.perf_counter()
            response = client.get(url, headers=PROMETHEUS_HEADERS)
            latencies[name].append(time.perf_counter() - clock)
            response.raise_for_status()
        rounds += 1
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    cpu = {name: cpu_seconds(pid) - before[name] for name, (pid, _) in targets.items()}
    return cpu, latencies, rounds


def measure() -> list[Figures]:
    import httpx

    from bench.common import free_port, process, rss_mib, sample_count, simulator, wait_for

    with (
        tempfile.TemporaryDirectory() as folder,
        ExitStack() as stack,
        httpx.Client(timeout=30) as client,
    ):
        work = Path(folder)
        litellm, vllm_urls = stack.enter_context(simulator(INSTANCES, 0.0))
        busy_env = _agent_env(litellm, vllm_urls, free_port(), INTERVAL)
        with _agent(busy_env, work / "agent.log") as (agent, agent_url):
            # Past the first cycle and its one-off work; the second fills the joined inventory.
            time.sleep(2 * INTERVAL)
            page = client.get(agent_url + "/metrics").content
            (work / "page.txt").write_bytes(page)
            floor_url = f"http://127.0.0.1:{free_port()}"
            floor_args = ["-m", "bench.overhead", "floor", str(work / "page.txt")]
            floor = stack.enter_context(
                process([sys.executable, *floor_args, floor_url.rpartition(":")[2]])
            )
            wait_for(floor_url + "/metrics")
            floor_samples = sample_count(client.get(floor_url + "/metrics").content)
            targets = {
                "agent": (agent.pid, agent_url + "/metrics"),
                "floor": (floor.pid, floor_url),
            }
            busy, latencies, rounds = _scraped(client, targets, BUSY_SECONDS)
            agent_samples = sample_count(client.get(agent_url + "/metrics").content)
            rss = {"agent": rss_mib(agent.pid), "floor": rss_mib(floor.pid)}
        idle_env = _agent_env(litellm, vllm_urls, free_port(), 3600)  # polls once, then rests
        with _agent(idle_env, work / "agent-idle.log") as (agent, _):
            time.sleep(2)  # let the first poll's rendering finish
            idle = _cpu_over({"agent": agent.pid, "floor": floor.pid}, IDLE_SECONDS)
    cycles = round(BUSY_SECONDS / INTERVAL)  # the agent polls on a fixed schedule, no jitter
    return [
        Figures(
            "agent",
            agent_samples,
            idle["agent"],
            busy["agent"],
            cycles,
            rss["agent"],
            latencies["agent"],
        ),
        Figures(
            "floor",
            floor_samples,
            idle["floor"],
            busy["floor"],
            rounds,
            rss["floor"],
            latencies["floor"],
        ),
    ]


def run() -> str:
    from bench.common import median_ms, table

    agent, floor = measure()
    rows: list[tuple[object, ...]] = [
        (
            f.name if f.name == "agent" else "prometheus_client floor",
            f.samples,
            f"{f.idle_cpu:.2f}",
            f"{f.busy_cpu:.2f}",
            f"{f.per_cycle * 1000:.0f}",
            f"{f.per_hour:.1f}",
            f"{f.rss[0]:.0f} ({f.rss[1]:.0f})",
            f"{median_ms(f.scrapes):.1f}",
        )
        for f in (agent, floor)
    ]
    rows.append(
        (
            "agent / floor",
            "",
            f"{agent.idle_cpu / floor.idle_cpu:.1f}x" if floor.idle_cpu else "n/a (floor 0)",
            f"{agent.busy_cpu / floor.busy_cpu:.1f}x",
            f"{agent.per_cycle / floor.per_cycle:.1f}x",
            f"{agent.per_hour / floor.per_hour:.1f}x",
            f"{agent.rss[0] / floor.rss[0]:.1f}x",
            f"{median_ms(agent.scrapes) / median_ms(floor.scrapes):.2f}x",
        )
    )
    headers = (
        "exporter",
        "samples",
        f"idle CPU s / {IDLE_SECONDS:.0f} s",
        f"CPU s / {BUSY_SECONDS:.0f} s busy",
        "CPU ms per cycle",
        f"CPU s per hour at {REAL_INTERVAL:.0f} s",
        "RSS MiB (peak)",
        "scrape median ms",
    )
    return "\n".join(
        [
            f"### Overhead at steady state: LiteLLM, {INSTANCES} vLLM instances, {GPUS} fake GPUs,"
            f" polled and scraped every {REAL_INTERVAL:.0f} s",
            "",
            table(headers, rows),
            "",
            f"Measured compressed: a {INTERVAL:g} s interval for {BUSY_SECONDS:.0f} s"
            f" ({agent.cycles} agent cycles, {floor.cycles} scrapes of each, OpenMetrics + gzip),"
            f" then {IDLE_SECONDS:.0f} s with no polls or scrapes. CPU per hour at"
            f" {REAL_INTERVAL:.0f} s = CPU per cycle x {CYCLES_PER_HOUR:.0f}"
            " + idle CPU per second x 3600. A cycle of the agent is a poll of every source, its"
            " rendering and one scrape; of the floor, one scrape rendered from static data.",
            f"Agent: {agent.per_hour:.1f} CPU s per hour ({agent.per_hour / 36:.3f}% of one core),"
            f" {agent.rss[0]:.0f} MiB RSS; {agent.per_hour / floor.per_hour:.1f}x the floor's"
            f" CPU and {agent.rss[0] / floor.rss[0]:.1f}x its RSS.",
        ]
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["agent"]:
        serve_agent()
    elif argv[:1] == ["floor"] and len(argv) == 3:
        serve_floor(Path(argv[1]), int(argv[2]))
    else:
        print(run())


if __name__ == "__main__":
    main(sys.argv[1:])
