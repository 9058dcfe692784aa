"""A simulated server on its own event loop in a daemon thread, for the demo and sync tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class AsyncServer:
    """``async with`` for a simulated server: ``start()`` on entry, ``stop()`` on exit."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


S = TypeVar("S", bound=Stoppable)
T = TypeVar("T")


class BackgroundServer(Generic[S]):
    """Starts ``server`` with ``start()`` on a fresh loop in a thread; ``stop()`` stops it."""

    def __init__(self, server: S, name: str, start: Callable[[S], Awaitable[None]]) -> None:
        self._server = server
        self._name = name
        self._start = start
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()

    def start(self, timeout: float = 10.0) -> S:
        """Start serving; returns once it listens, raises what made it fail."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._started.result(timeout=timeout)
        return self._server

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self._start(self._server)
        except BaseException as error:
            self._started.set_exception(error)
            return
        self._started.set_result(None)
        try:
            await self._stop_requested.wait()
        finally:
            await self._server.stop()

    def call(self, action: Callable[[S], T], timeout: float = 10.0) -> T:
        """Run ``action(server)`` on the server's loop (from another thread) and return its
        result: what a server says must happen on its loop (a fault's REFUSE) can be driven."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self._name} is not started")
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(action(self._server))
            except BaseException as error:  # handed to the calling thread
                done.set_exception(error)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop_requested, thread = self._loop, self._stop_requested, self._thread
        if thread is None or loop is None or stop_requested is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop_requested.set)
        thread.join(timeout)

    def __enter__(self) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
