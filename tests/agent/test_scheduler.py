from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from agent.scheduler import AgentScheduler, Poller, dependency_layers
from agent.snapshot import Collection, Snapshot, SourceState
from agent.store import Store
from agent.upstream import Unreachable
from tests.fakes.sources import ScriptedSource


def _poller(store: Store, timeout: float = 1.0) -> Poller:
    return Poller(store, lambda source: timeout)


async def test_a_hanging_poll_is_cut_off_by_the_job_timeout() -> None:
    source = ScriptedSource("slow", hang=True)
    store = Store(["slow"])
    snapshot = await _poller(store, timeout=0.2).poll(source)
    assert snapshot.state is SourceState.DOWN
    assert snapshot.error == "poll exceeded its 0.2s timeout"
    assert 0.2 <= snapshot.duration_seconds < 1.0
    assert source.running == 0  # the collect coroutine was cancelled, not left behind


async def test_an_upstream_error_marks_the_source_down_with_its_message() -> None:
    def refuse(n: int) -> Collection:
        raise Unreachable("http://127.0.0.1:4000/health/liveliness: ConnectError")

    store = Store(["litellm"])
    snapshot = await _poller(store).poll(ScriptedSource("litellm", refuse))
    assert not snapshot.up
    assert snapshot.families == ()
    assert snapshot.error == "http://127.0.0.1:4000/health/liveliness: ConnectError"
    assert store.records()["litellm"].errors_total == 1


async def test_a_bug_in_a_source_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    def bug(n: int) -> Collection:
        raise KeyError("data")

    store = Store(["buggy"])
    snapshot = await _poller(store).poll(ScriptedSource("buggy", bug))
    assert snapshot.error == "internal error: KeyError: 'data'"
    assert "source buggy failed unexpectedly" in caplog.text


async def test_one_log_line_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    outcomes = iter([False, False, False, True, True, False])

    def flap(n: int) -> Collection:
        if not next(outcomes):
            raise Unreachable("refused")
        return Collection()

    source = ScriptedSource("flappy", flap)
    store = Store(["flappy"])
    caplog.set_level(logging.INFO, logger="agent.scheduler")
    for _ in range(6):
        await _poller(store).poll(source)
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.scheduler"]
    assert lines == [
        "source flappy is down: refused",
        "source flappy is up again",
        "source flappy is down: refused",
    ]


async def test_last_success_survives_later_failures() -> None:
    outcomes = iter([True, False])

    def once(n: int) -> Collection:
        if not next(outcomes):
            raise Unreachable("refused")
        return Collection()

    store = Store(["s"])
    source = ScriptedSource("s", once)
    first = await _poller(store).poll(source)
    await _poller(store).poll(source)
    record = store.records()["s"]
    assert record.last_success == pytest.approx(first.started_at + first.duration_seconds)
    assert (record.polls_total, record.errors_total) == (2, 1)


def test_dependency_layers_put_dependencies_first() -> None:
    sources = [
        ScriptedSource("huggingface", depends_on=("vllm", "litellm")),
        ScriptedSource("vllm", depends_on=("docker",)),
        ScriptedSource("litellm"),
        ScriptedSource("docker"),
    ]
    layers = [[s.name for s in layer] for layer in dependency_layers(sources)]
    assert layers == [["litellm", "docker"], ["vllm"], ["huggingface"]]


async def test_scheduler_polls_every_source_and_a_hung_one_blocks_nobody() -> None:
    fast = ScriptedSource("fast", interval_seconds=0.05)
    stuck = ScriptedSource("stuck", interval_seconds=0.05, hang=True)
    store = Store(["fast", "stuck"])
    scheduler = AgentScheduler([fast, stuck], _poller(store, timeout=0.3), jitter_seconds=0)
    loop = asyncio.get_running_loop()
    stuck_stored = asyncio.Event()

    def on_swap(name: str) -> None:
        if name == "stuck":
            loop.call_soon_threadsafe(stuck_stored.set)

    store.subscribe(on_swap)
    scheduler.start()
    try:
        async with asyncio.timeout(10):
            await fast.wait_for_polls(5)
            await stuck_stored.wait()
        next_runs = scheduler.next_runs()
        assert set(next_runs) == {"fast", "stuck"}
        assert all(isinstance(t, float) for t in next_runs.values())
    finally:
        await scheduler.shutdown()
    assert stuck.max_running == 1  # max_instances=1: a slow poll is never stacked
    assert store.records()["stuck"].latest.error == "poll exceeded its 0.3s timeout"  # type: ignore[union-attr]


async def test_run_soon_polls_before_the_next_tick() -> None:
    source = ScriptedSource("vllm", interval_seconds=3600)
    store = Store(["vllm"])
    scheduler = AgentScheduler([source], _poller(store), jitter_seconds=0)
    scheduler.start()
    try:
        async with asyncio.timeout(5):
            await source.wait_for_polls(1)
            scheduler.run_soon("vllm")
            await source.wait_for_polls(2)
    finally:
        await scheduler.shutdown()


async def test_a_dependents_first_poll_waits_for_its_dependencies_first_poll() -> None:
    order: list[str] = []

    def recording(name: str) -> Callable[[int], Collection]:
        def behaviour(n: int) -> Collection:
            order.append(name)
            return Collection()

        return behaviour

    slow_vllm = ScriptedSource("vllm", recording("vllm"), interval_seconds=3600)
    inventory = ScriptedSource(
        "inventory", recording("inventory"), interval_seconds=3600, depends_on=("vllm",)
    )
    store = Store(["vllm", "inventory"])
    release = asyncio.Event()
    vllm_started = asyncio.Event()
    original = slow_vllm.collect

    async def gated() -> Collection:
        vllm_started.set()
        await release.wait()  # vllm's first poll is still running when inventory's is due
        return await original()

    slow_vllm.collect = gated  # type: ignore[method-assign]
    scheduler = AgentScheduler([slow_vllm, inventory], _poller(store, 5.0), jitter_seconds=0)
    scheduler.start()
    try:
        async with asyncio.timeout(5):
            await vllm_started.wait()
        with pytest.raises(TimeoutError):  # inventory was due at once, yet does not poll
            await asyncio.wait_for(inventory.polled.wait(), 0.3)
        release.set()
        async with asyncio.timeout(5):
            await inventory.wait_for_polls(1)
    finally:
        await scheduler.shutdown()
    assert order == ["vllm", "inventory"]


def test_ready_only_after_the_listeners_rendered_the_last_first_poll() -> None:
    store = Store(["a"])
    seen_ready: list[bool] = []
    store.subscribe(lambda name: seen_ready.append(store.ready))
    store.put(Snapshot.failed("a", "down", 0.0, 0.0))
    assert seen_ready == [False]  # the exposition renders before /readyz says ready
    assert store.ready
