"""What every benchmark needs: processes on loopback ports, timing, and a results table."""

from __future__ import annotations

import gc
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from agent.memory import collect_garbage_less_often

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(count: int) -> int:
    """A base port P such that P..P+count-1 are free right now, taken below the ephemeral range:
    inside it, every client connection's TIME_WAIT blocks its port and long blocks are rare."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = random.randrange(10000, ephemeral - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                # As the simulator binds: a port held only by TIME_WAIT connections is free.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no block of {count} free ports found")


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s")


@contextmanager
def process(
    args: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        list(args),
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


@contextmanager
def simulator(
    vllm: int, latency: float, log: Path | None = None
) -> Iterator[tuple[str, list[str]]]:
    """The simulated stack in its own process: (litellm_url, vllm_urls)."""
    base = free_port_block(vllm + 1)
    args = [
        sys.executable,
        "-m",
        "agent.simulator",
        "--vllm",
        str(vllm),
        "--latency",
        str(latency),
        "--port-base",
        str(base),
    ]
    with process(args, log=log):
        litellm = f"http://127.0.0.1:{base}"
        urls = [f"http://127.0.0.1:{base + i}" for i in range(1, vllm + 1)]
        wait_for(litellm + "/health/liveliness")
        wait_for(urls[-1] + "/health")
        yield litellm, urls


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    durations = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value

    def mib(name: str) -> float:
        return float(fields[name].split()[0]) / 1024

    return mib("VmRSS"), mib("VmHWM")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used (its threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def sample_count(page: bytes) -> int:
    """Samples in an uncompressed text exposition page."""
    return sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))


def wait_for_sources(agent_url: str, sources: Sequence[str], timeout: float = 60.0) -> bytes:
    """The agent's /metrics page once it carries a successful poll of every one of ``sources``.
    (/readyz can answer a moment before the page is rendered.)"""
    markers = [f'inferwatch_source_up{{source="{name}"}} 1.0'.encode() for name in sources]
    deadline = time.monotonic() + timeout
    while True:
        page = httpx.get(agent_url + "/metrics", timeout=timeout).content
        if all(marker in page for marker in markers):
            return page
        if time.monotonic() > deadline:
            raise TimeoutError(f"{agent_url} has no successful poll of all of {list(sources)}")
        time.sleep(0.2)


@contextmanager
def agent_collector_settings() -> Iterator[None]:
    """The garbage collector as ``inferwatch-agent`` sets it at start, for a benchmark that runs
    the agent's code in its own process; restored after."""
    before = gc.get_threshold()
    collect_garbage_less_often()
    try:
        yield
    finally:
        gc.set_threshold(*before)
