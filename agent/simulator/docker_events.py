"""Container events as `GET /events` streams them, and the hub that fans them out.

Each open stream has a queue; publishing puts the event on every queue, closing puts `None`
(the end of the stream). The hub keeps recent events for `since` replays, as dockerd does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any

from agent.simulator.docker_state import ContainerState, label_matches
from agent.simulator.docker_wire import NANOS, BadParameter

Event = dict[str, Any]
HISTORY = 1024  # dockerd keeps this many events for `since`
EVENT_FILTERS = frozenset({"type", "event", "container", "image", "label", "scope"})


def container_event(
    state: ContainerState, action: str, time_ns: int, extra: Mapping[str, str] | None = None
) -> Event:
    """An event about `state`; its labels, image and name are the actor's attributes."""
    attributes = {**state.spec.labels, "image": state.spec.image, "name": state.name}
    attributes.update(extra or {})
    return {
        "status": action,
        "id": state.id,
        "from": state.spec.image,
        "Type": "container",
        "Action": action,
        "Actor": {"ID": state.id, "Attributes": dict(sorted(attributes.items()))},
        "scope": "local",
        "time": time_ns // NANOS,
        "timeNano": time_ns,
    }


def check_event_filters(filters: Mapping[str, list[str]]) -> None:
    for key in filters:
        if key not in EVENT_FILTERS:
            raise BadParameter(f"invalid filter '{key}'")


def event_matches(event: Event, filters: Mapping[str, list[str]]) -> bool:
    return all(_matches(event, key, values) for key, values in filters.items())


def _matches(event: Event, key: str, values: list[str]) -> bool:
    attributes: dict[str, str] = event["Actor"]["Attributes"]
    if key == "type":
        return event["Type"] in values
    if key == "event":
        return event["Action"] in values
    if key == "container":
        return any(event["id"].startswith(value) or attributes["name"] == value for value in values)
    if key == "image":
        return event["from"] in values
    if key == "scope":
        return event["scope"] in values
    return all(label_matches(attributes, value) for value in values)


class EventHub:
    """Open event streams and the recent past. Used on the server's event loop only."""

    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._streams: set[asyncio.Queue[Event | None]] = set()

    def publish(self, event: Event) -> None:
        self._history.append(event)
        for queue in self._streams:
            queue.put_nowait(event)

    def subscribe(self, since_ns: int | None) -> tuple[list[Event], asyncio.Queue[Event | None]]:
        """A new stream's queue, and the kept events from `since` on when it is given."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._streams.add(queue)
        if since_ns is None:
            return [], queue
        return [event for event in self._history if event["timeNano"] >= since_ns], queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._streams.discard(queue)

    def close_streams(self) -> None:
        """End every open stream (they see the end of the response)."""
        for queue in self._streams:
            queue.put_nowait(None)
        self._streams.clear()

    @property
    def listeners(self) -> int:
        return len(self._streams)
