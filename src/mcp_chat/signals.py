"""Wake-ups for waits blocked in this process: one event per room, replaced on each change.

A change wakes the waits blocked on its room and hands the one who made it a *handoff* per
woken wait: a future that the wait resolves once its answer is written (or once it has found
nothing to answer). A sender that awaits them (`settle`) lets the deliveries it caused go out
before its own reply, which the event loop would otherwise interleave with them. `Watch`
keeps that bookkeeping for a blocked request's loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Collection, Iterable
from types import TracebackType

from mcp_chat import errors

EVERY_ROOM = "*"
"""What listeners hear when any room may have changed unseen (a shared store came back)."""

SETTLE_LIMIT = 0.05
"""Seconds a sender waits at most for the deliveries it caused; they normally take well
under a millisecond, and a slow one must not hold the sender up."""

Handoff = asyncio.Future[None]


class Reply:
    """The answer to the request being served. Whoever writes it to the wire calls `sent`;
    the handoffs held until then resolve with it. A transport that cannot tell when it wrote
    its answer sets no Reply, and handoffs resolve as soon as the answer is ready."""

    __slots__ = ("_held", "_sent")

    def __init__(self) -> None:
        self._held: list[Handoff] = []
        self._sent = False

    def hold(self, handoff: Handoff) -> None:
        if self._sent:
            delivered(handoff)
        else:
            self._held.append(handoff)

    def sent(self) -> None:
        self._sent = True
        held, self._held = self._held, []
        for handoff in held:
            delivered(handoff)


current_reply: contextvars.ContextVar[Reply | None] = contextvars.ContextVar(
    "current_reply", default=None
)


def delivered(handoff: Handoff | None) -> None:
    """The woken wait is done with its part: its answer is out, or it has none."""
    if handoff is not None and not handoff.done():
        handoff.set_result(None)


def answering(handoff: Handoff | None) -> None:
    """The woken wait is about to answer: resolve `handoff` when the reply is written."""
    if handoff is None:
        return
    reply = current_reply.get()
    if reply is None:
        delivered(handoff)
    else:
        reply.hold(handoff)


async def settle(handoffs: Iterable[Handoff]) -> None:
    """Wait (at most SETTLE_LIMIT seconds) until the woken waits have answered."""
    pending = [h for h in handoffs if not h.done()]
    if pending:
        await asyncio.wait(pending, timeout=SETTLE_LIMIT)


_NONE: frozenset[Handoff] = frozenset()  # notify's answer when nobody waits


class RoomSignals:
    """`watch(room)` before reading the store, then `wait(...)` on what it returned: a change
    that lands between the read and the wait still wakes the waiter."""

    def __init__(self) -> None:
        self.stopping = False
        """The server is going down: every `Watch` refuses its next look (see `stop`)."""
        self._events: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, int] = {}
        self._blocked: dict[str, set[Handoff]] = {}
        self._listeners: list[Callable[[str], None]] = []

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Also tell `listener` of every change (it must not block or raise)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], None]) -> None:
        self._listeners.remove(listener)

    def watch(self, room_id: str) -> asyncio.Event:
        event = self._events.get(room_id)
        if event is None:
            event = self._events[room_id] = asyncio.Event()
        return event

    def notify(self, room_id: str) -> Collection[Handoff]:
        """Wake the waits blocked on `room_id`; returns their handoffs (see `settle`)."""
        event = self._events.pop(room_id, None)
        if event is not None:
            event.set()
        for listener in self._listeners:
            listener(room_id)
        return self._blocked.pop(room_id, _NONE)

    def stop(self) -> None:
        """Blocked and new watches end with server_restarting at once."""
        self.stopping = True
        self.notify_all()

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

    async def wait(self, room_id: str, event: asyncio.Event, timeout: float) -> Handoff | None:
        """If the room changed within `timeout` seconds, the handoff for that change, which
        the caller must pass to `answering` or `delivered`; None if time ran out."""
        self._watchers[room_id] = self._watchers.get(room_id, 0) + 1
        handoff: Handoff = asyncio.get_running_loop().create_future()
        blocked = self._blocked.get(room_id)
        if blocked is None:
            blocked = self._blocked[room_id] = set()
        blocked.add(handoff)
        woken = False
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            woken = True
            return handoff
        except TimeoutError:
            return None
        finally:
            if not woken:
                delivered(handoff)
            if (still := self._blocked.get(room_id)) is not None:
                # Woken by notify_all, or never woken: nobody settles this handoff.
                still.discard(handoff)
                if not still:
                    del self._blocked[room_id]
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


class Watch:
    """One blocked request's loop on `key` (a room, a queue entry), without the handoff
    bookkeeping in sight. Each turn: `look` (before reading the store; refused with
    server_restarting once the signals stop), then `answer` when about to answer (whoever
    woke the request gets its handoff when the answer is written) or `idle` when there is
    nothing to answer yet (its waker need not wait), and `sleep` until the key changes or
    the time is up. Used as a context manager: whatever way the loop ends, no handoff is
    left owed."""

    __slots__ = ("_changed", "_handoff", "_key", "_request", "_signals")

    def __init__(self, signals: RoomSignals, key: str, request: str) -> None:
        """`request` names what is refused when the server stops (e.g. wait_for_message)."""
        self._signals, self._key, self._request = signals, key, request
        self._changed: asyncio.Event | None = None
        self._handoff: Handoff | None = None  # owed to whoever woke this request

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.idle()

    def look(self) -> None:
        if self._signals.stopping:
            raise errors.server_restarting(self._request)
        self._changed = self._signals.watch(self._key)

    def answer(self) -> None:
        answering(self._handoff)
        self._handoff = None

    def idle(self) -> None:
        delivered(self._handoff)
        self._handoff = None

    async def sleep(self, timeout: float) -> None:
        assert self._changed is not None, "look before sleeping"
        self._handoff = await self._signals.wait(self._key, self._changed, timeout)
