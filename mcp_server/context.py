"""What the tools share for the life of the server process: settings and long-lived clients.

Other modules add their own long-lived objects with ``lazy`` (the Grafana browser, say):
created on first use, once per process however many calls race for it, closed at shutdown.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar, cast

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from mcp_server.agent_client import AgentClient, UpstreamError
from mcp_server.grafana.api import GrafanaAPI
from mcp_server.grafana.errors import GrafanaError
from mcp_server.prometheus import PrometheusClient, QueryRefused
from mcp_server.settings import Settings

log = logging.getLogger(__name__)


class Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=Closable)

CLOSE_TIMEOUT_SECONDS = 15.0


class ServerContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.agent = AgentClient(settings.upstream)
        self.prometheus = PrometheusClient(settings.upstream)
        self.grafana = GrafanaAPI(settings.grafana)
        # Closed at shutdown, last added first. The clients reopen on their next call.
        self.resources: list[Closable] = [self.agent, self.prometheus, self.grafana]
        self._lazy: dict[str, Closable] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._users = 0

    async def lazy(self, name: str, factory: Callable[[], C | Awaitable[C]]) -> C:
        """The one ``name`` object of this process, made by ``factory`` (sync or async) on first
        use and closed with the server. A factory that raises leaves nothing behind."""
        if name in self._lazy:
            return cast(C, self._lazy[name])
        lock = self._locks.setdefault(name, anyio.Lock())
        async with lock:
            if name not in self._lazy:
                made = factory()
                instance = await made if inspect.isawaitable(made) else made
                self._lazy[name] = instance
                self.resources.append(instance)
            return cast(C, self._lazy[name])

    def enter(self) -> None:
        """One more session uses the context (the stdio session, an in-process client...)."""
        self._users += 1

    async def leave(self) -> None:
        """A session ended; the last one out closes everything."""
        self._users -= 1
        if self._users <= 0:
            self._users = 0
            # Shielded: shutdown often arrives as a cancellation; bounded: a stuck close must
            # not keep the process alive.
            with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        """Close every resource, newest first; lazy objects are made afresh if used again."""
        lazies = set(map(id, self._lazy.values()))
        for resource in reversed(self.resources):
            try:
                await resource.aclose()
            except Exception:
                log.exception("closing %s failed", type(resource).__name__)
        self.resources = [r for r in self.resources if id(r) not in lazies]
        self._lazy.clear()
        self._locks.clear()


@contextmanager
def tool_errors() -> Iterator[None]:
    """Inside a tool: our errors (each says what to check or set) reach the client as
    ``ToolError``; anything else stays a crash, whose text the SDK hides."""
    try:
        yield
    except (UpstreamError, QueryRefused, GrafanaError) as exc:
        raise ToolError(str(exc)) from exc
