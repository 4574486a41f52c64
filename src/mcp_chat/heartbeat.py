"""The heartbeat and what it keeps: every `PresencePolicy.heartbeat` seconds, the signs of
life this process noted are written down and the long silent are marked gone; a closed
client connection marks its participants gone at once; one marked gone that calls again
takes a seat again (`seated`). Whoever must hear of it is told: the rooms' waits, and the
departure listeners (push feeds, resource subscriptions). `presence_of` says who is
present, away or gone."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mcp_chat import errors
from mcp_chat.matching import MatchPolicy
from mcp_chat.presence import PresencePolicy, Session, Tracker, status
from mcp_chat.signals import RoomSignals
from mcp_chat.stores.base import Store, Unseated
from mcp_chat.types import Kind, Member, Message, Participant

log = logging.getLogger(__name__)

T = TypeVar("T")


class Heartbeat:
    """Presence upkeep for one chat service (`ChatService.heartbeat`). `after_beat` runs after
    each beat (the queue's waits look again, see `Pairing.recheck`)."""

    def __init__(
        self,
        store: Store,
        tracker: Tracker,
        signals: RoomSignals,
        presence: PresencePolicy,
        matching: MatchPolicy,
        clock: Callable[[], float],
        after_beat: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.tracker, self.signals = store, tracker, signals
        self.presence, self.matching, self.clock = presence, matching, clock
        self._after_beat = after_beat
        self._listeners: list[Callable[[set[str]], None]] = []
        self._task: asyncio.Task[None] | None = None

    async def beat(self, now: float | None = None) -> None:
        """Write the signs of life noted since the last beat, and mark as gone those silent
        for too long. Runs every `presence.heartbeat` seconds; tests call it directly."""
        events = await self.store.touch(self.tracker.take())
        events += await self.store.sweep(
            self.clock() if now is None else now,
            self.presence.gone_after,
            self.matching.stale_after,
        )
        self.tracker.prune(self.clock() - self.presence.away_after)
        self.announce(events)
        self._after_beat()

    def start(self) -> None:
        self._task = asyncio.create_task(self._beats())

    async def stop(self) -> None:
        """Stop beating, then write the last signs of life."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(errors.ChatError):
            await self.beat()

    async def _beats(self) -> None:
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # A cancellation that landed inside a store call can be lost there (seen with
                # redis-py): without this, stop() would wait for this loop forever.
                raise asyncio.CancelledError
            await asyncio.sleep(self.presence.heartbeat)
            try:
                await self.beat()
            except errors.ChatError as exc:
                log.warning("heartbeat failed (%s); will try again", exc.code.value)
            except Exception:
                log.exception("heartbeat failed; will try again")

    async def disconnect(self, session: Session) -> None:
        """A client connection closed: the participants it spoke for are gone."""
        ids = set(session.participants)
        session.participants.clear()
        if not ids:
            return
        self.tracker.forget(ids)
        self.announce(await self.store.disconnect(ids))

    def announce(self, events: list[Message]) -> None:
        """Presence events were logged: wake their rooms, and tell the listeners who is gone."""
        gone = {m.sender_id for m in events if m.kind is Kind.DISCONNECTED}
        if gone:
            self.departed(gone)
        for room_id in {m.room_id for m in events}:
            self.signals.notify(room_id)

    def add_departure_listener(self, listener: Callable[[set[str]], None]) -> None:
        """Also tell `listener` the ids of participants who left their room, or were marked
        gone (their connection closed, or they were silent too long), in this process. It
        must not block or raise. A participant gone may come back; one who left may not."""
        self._listeners.append(listener)

    def departed(self, participant_ids: set[str]) -> None:
        for listener in self._listeners:
            listener(participant_ids)

    def presence_of(self, participants: list[Participant]) -> list[Member]:
        """Each participant with its status, counting what this process heard since the last
        beat wrote it down."""
        now = self.clock()
        members = []
        for p in participants:
            latest = max(p.last_seen, self.tracker.last_seen(p.participant_id))
            seen = dataclasses.replace(p, last_seen=latest)
            members.append(Member(seen, status(seen, now, self.presence)))
        return members

    async def seated(self, participant_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, a store operation for someone who must hold a seat. One marked gone
        (its connection closed, or long silent) takes a seat again first, if one is free,
        else gets room_full and stays gone (`rooms.check_return`)."""
        for _ in range(3):
            try:
                return await call()
            except Unseated:
                await self.come_back(participant_id)
        # Marked gone again each time it came back: cannot happen while it keeps calling.
        raise errors.ChatError(
            errors.Code.STORE_UNAVAILABLE,
            "Your place in the room changed as you called; call again.",
        )

    async def come_back(self, participant_id: str) -> None:
        """A member marked gone calls again: it takes a seat, if one is free (its return is
        announced), or gets room_full. The sign of life is written first (and brings it back
        if a seat is free): back with its old silence, it would be swept gone again by another
        process's sweep before this one's next beat wrote it."""
        events = await self.store.touch({participant_id: self.clock()})
        if not events:  # no free seat: come_back says room_full
            event = await self.store.come_back(participant_id)
            events = [event] if event is not None else []
        self.announce(events)
