"""Container logs: what the json-file driver keeps, how `GET /containers/{id}/logs` selects and
frames it, and realistic vLLM (and other) log lines to fill it with.

vLLM writes its log records to stdout as `(APIServer pid=1) INFO 10-14 09:12:04 [file.py:123] msg`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.simulator.docker_wire import NANOS, frame, rfc3339_nano_fixed

API_SERVER = "APIServer pid=1"
ENGINE_CORE = "EngineCore_DP0 pid={pid}"
ENGINE_CORE_PID = 312
DEFAULT_VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass(frozen=True)
class LogLine:
    """One log record: dockerd splits output on newlines and stamps each line."""

    time_ns: int
    stream: str  # "stdout" or "stderr"
    text: str


class LogBook:
    """A container's log lines in time order; lines stamped in the future are not out yet."""

    def __init__(self) -> None:
        self._lines: list[LogLine] = []

    def add(self, time_ns: int, stream: str, text: str) -> None:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        for line in text.splitlines() or [""]:
            # After lines of the same instant: a block keeps its order.
            bisect.insort(self._lines, LogLine(time_ns, stream, line), key=_time_of)

    def extend(self, lines: Iterable[LogLine]) -> None:
        for line in lines:
            self.add(line.time_ns, line.stream, line.text)

    def select(
        self,
        *,
        now_ns: int,
        streams: frozenset[str],
        since_ns: int = 0,
        until_ns: int = 0,
        tail: int | None = None,
    ) -> list[LogLine]:
        """What dockerd returns: of the last `tail` lines of the file (both streams count),
        those from `since` on (inclusive: dockerd skips only lines *before* it) up to `until`,
        of the requested streams."""
        out = [line for line in self._lines if line.time_ns <= now_ns]
        if tail is not None:
            out = out[-tail:] if tail > 0 else []
        until_ns = until_ns or now_ns
        return [
            line for line in out if since_ns <= line.time_ns <= until_ns and line.stream in streams
        ]


def _time_of(line: LogLine) -> int:
    return line.time_ns


def multiplexed(lines: Sequence[LogLine], *, timestamps: bool) -> bytes:
    """The body of a non-TTY container's logs: one frame per line."""
    chunks = []
    for line in lines:
        stamp = f"{rfc3339_nano_fixed(line.time_ns)} " if timestamps else ""
        chunks.append(frame(line.stream, f"{stamp}{line.text}\n".encode()))
    return b"".join(chunks)


# -- vLLM ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VLLMLaunch:
    """What a vLLM container's startup log mentions."""

    model: str = DEFAULT_VLLM_MODEL
    version: str = "0.11.0"
    port: int = 8000
    tensor_parallel_size: int = 1
    max_model_len: int = 8192


def vllm_record(process: str, level: str, when: float, where: str, message: str) -> str:
    """One vLLM log record as its formatter writes it."""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%m-%d %H:%M:%S")
    return f"({process}) {level} {stamp} [{where}] {message}"


def _startup_script(launch: VLLMLaunch) -> list[tuple[float, str, str, str]]:
    """(seconds after start, process, source location, message) of a healthy startup."""
    engine = ENGINE_CORE.format(pid=ENGINE_CORE_PID)
    tp = launch.tensor_parallel_size
    return [
        (1.2, API_SERVER, "api_server.py:1839", f"vLLM API server version {launch.version}"),
        (
            1.3,
            API_SERVER,
            "utils.py:233",
            f"non-default args: {{'model': '{launch.model}', 'port': {launch.port}, "
            f"'max_model_len': {launch.max_model_len}, 'tensor_parallel_size': {tp}}}",
        ),
        (6.8, API_SERVER, "model.py:1510", f"Using max model len {launch.max_model_len}"),
        (9.1, engine, "core.py:77", f"Initializing a V1 LLM engine (v{launch.version})"),
        (
            11.4,
            engine,
            "gpu_model_runner.py:2602",
            f"Starting to load model {launch.model}...",
        ),
        (12.0, engine, "cuda.py:366", "Using Flash Attention backend on V1 engine."),
        (17.5, engine, "default_loader.py:267", "Loading weights took 4.87 seconds"),
        (18.1, engine, "gpu_model_runner.py:2653", "Model loading took 14.9889 GiB"),
        (29.6, engine, "monitor.py:34", "torch.compile takes 9.71 s in total"),
        (31.2, engine, "gpu_worker.py:298", "Available KV cache memory: 53.45 GiB"),
        (31.3, engine, "kv_cache_utils.py:1087", "GPU KV cache size: 437,840 tokens"),
        (
            37.9,
            engine,
            "core.py:210",
            "init engine (profile, create kv cache, warmup model) took 26.49 seconds",
        ),
        (38.6, API_SERVER, "api_server.py:1634", "Supported_tasks: ['generate']"),
        (
            38.7,
            API_SERVER,
            "api_server.py:1912",
            f"Starting vLLM API server 0 on http://0.0.0.0:{launch.port}",
        ),
    ]


def vllm_startup_log(launch: VLLMLaunch, started_ns: int) -> list[LogLine]:
    """A healthy vLLM startup, stamped from `started_ns` on (about 40 s)."""
    lines = []
    for offset, process, where, message in _startup_script(launch):
        at = started_ns + round(offset * NANOS)
        lines.append(
            LogLine(at, "stdout", vllm_record(process, "INFO", at / NANOS, where, message))
        )
    ready = started_ns + round(38.8 * NANOS)
    uvicorn = ["Started server process [1]", "Waiting for application startup."]
    uvicorn.append("Application startup complete.")
    lines += [LogLine(ready, "stdout", f"({API_SERVER}) INFO:     {text}") for text in uvicorn]
    return lines


def vllm_shutdown_log(stopped_ns: int) -> list[LogLine]:
    texts = ["Shutting down", "Waiting for application shutdown.", "Application shutdown complete."]
    texts.append("Finished server process [1]")
    return [LogLine(stopped_ns, "stdout", f"({API_SERVER}) INFO:     {text}") for text in texts]


def cuda_oom_message(
    *,
    tried_gib: float = 2.0,
    gpu: int = 0,
    total_gib: float = 79.19,
    free_gib: float = 1.17,
) -> str:
    """The message of `torch.OutOfMemoryError` (PyTorch 2.8), on one line."""
    in_use = total_gib - free_gib
    return (
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {tried_gib:.2f} GiB. "
        f"GPU {gpu} has a total capacity of {total_gib:.2f} GiB of which {free_gib:.2f} GiB "
        f"is free. Including non-PyTorch memory, this process has {in_use:.2f} GiB memory in "
        f"use. Of the allocated memory {in_use - 1.02:.2f} GiB is allocated by PyTorch, and "
        "1.02 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is "
        "large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
        "fragmentation.  See documentation for Memory Management  "
        "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
    )


def vllm_engine_core_failure(when: float, *, cause: str | None = None) -> str:
    """The block vLLM logs when its engine core dies (by default of a CUDA OOM), then the API
    server's `EngineDeadError`: several lines, to append with `FakeDockerAPI.append_log`."""
    engine = ENGINE_CORE.format(pid=ENGINE_CORE_PID)
    site = "/usr/local/lib/python3.12/dist-packages/vllm/v1"
    engine_lines = [
        "EngineCore encountered a fatal error.",
        "Traceback (most recent call last):",
        f'  File "{site}/engine/core.py", line 701, in run_engine_core',
        "    engine_core.run_busy_loop()",
        f'  File "{site}/engine/core.py", line 728, in run_busy_loop',
        "    self._process_engine_step()",
        f'  File "{site}/worker/gpu_model_runner.py", line 2301, in execute_model',
        "    hidden_states = self.model(",
        cause or cuda_oom_message(),
    ]
    server_lines = [
        "AsyncLLM output_handler failed.",
        "Traceback (most recent call last):",
        f'  File "{site}/engine/async_llm.py", line 439, in output_handler',
        "    outputs = await engine_core.get_output_async()",
        "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
        "See stack trace (above) for the root cause.",
    ]
    records = [vllm_record(engine, "ERROR", when, "core.py:710", text) for text in engine_lines]
    records += [
        vllm_record(API_SERVER, "ERROR", when, "async_llm.py:480", text) for text in server_lines
    ]
    return "\n".join(records)


# -- other images --------------------------------------------------------------------------


def generic_startup_log(repository: str, at: int) -> list[LogLine]:
    """A few plausible first lines (stamped `at`, in ns) of the non-vLLM images the demo runs."""
    if "litellm" in repository:
        texts = [
            "INFO:     Started server process [1]",
            "INFO:     Waiting for application startup.",
        ]
        texts += [
            "INFO:     Application startup complete.",
            "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)",
        ]
        return [LogLine(at + index, "stdout", text) for index, text in enumerate(texts)]
    if "prometheus" in repository:
        stamp = rfc3339_nano_fixed(at)[:23] + "Z"
        text = f'ts={stamp} caller=main.go:688 level=info msg="Starting Prometheus Server"'
        return [LogLine(at, "stderr", f"{text} mode=server")]
    return [LogLine(at, "stdout", f"{repository.rsplit('/', 1)[-1]} started")]
