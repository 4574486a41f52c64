"""Wake-ups for waits blocked in this process: one event per room, replaced on each change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

EVERY_ROOM = "*"
"""What listeners hear when any room may have changed unseen (a shared store came back)."""


class RoomSignals:
    """`watch(room)` before reading the store, then `wait(...)` on what it returned: a change
    that lands between the read and the wait still wakes the waiter."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, int] = {}
        self._listeners: list[Callable[[str], None]] = []

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Also tell `listener` of every change (it must not block or raise)."""
        self._listeners.append(listener)

    def watch(self, room_id: str) -> asyncio.Event:
        event = self._events.get(room_id)
        if event is None:
            event = self._events[room_id] = asyncio.Event()
        return event

    def notify(self, room_id: str) -> None:
        event = self._events.pop(room_id, None)
        if event is not None:
            event.set()
        for listener in self._listeners:
            listener(room_id)

    def notify_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    def notify_everywhere(self) -> None:
        """Changes may have been missed (a lost connection to a shared store): every wait
        re-reads, and listeners hear `EVERY_ROOM`."""
        self.notify_all()
        for listener in self._listeners:
            listener(EVERY_ROOM)

    async def wait(self, room_id: str, event: asyncio.Event, timeout: float) -> bool:
        """True if the room changed within `timeout` seconds."""
        self._watchers[room_id] = self._watchers.get(room_id, 0) + 1
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            left = self._watchers[room_id] - 1
            if left:
                self._watchers[room_id] = left
            else:
                del self._watchers[room_id]
                # Nobody waits on this room any more: drop its event so idle rooms cost nothing.
                if self._events.get(room_id) is event:
                    del self._events[room_id]

    @property
    def waiting(self) -> int:
        """How many waits are blocked right now."""
        return sum(self._watchers.values())
