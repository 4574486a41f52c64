"""Presence: signs of life, who is present, away or gone, and client sessions that close.

Calls and blocked waits are noted in memory and written to the store in one batch per
heartbeat, so the hot path never waits on a presence write.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from mcp_chat import messages
from mcp_chat.types import Draft, Kind, Participant, Room, Status


@dataclass(frozen=True, slots=True)
class PresencePolicy:
    heartbeat: float = 5.0
    """Seconds between writes of signs of life (and sweeps for the silent)."""
    away_after: float = 60.0
    """Silent this long: shown as away."""
    gone_after: float = 600.0
    """Silent this long: marked gone, and the room is told."""


def status(participant: Participant, now: float, policy: PresencePolicy) -> Status:
    if participant.gone:
        return Status.GONE
    if now - participant.last_seen < policy.away_after:
        return Status.PRESENT
    return Status.AWAY


# -- the marks a store writes ------------------------------------------------------------------
# The memory and SQLite stores call these; the Redis store restates `goes` in Lua (the 'gone'
# mode of `_APPEND` in stores/redis/lua.py). Whether one gone may come back is a rule of rooms
# (`rooms.may_come_back`, `rooms.check_return`).


def silent_since(now: float, after: float) -> float:
    """The cutoff of a sweep: whoever was last seen then or earlier has been silent `after`
    seconds at `now`."""
    return now - after


def goes(participant: Participant, room: Room, cutoff: float | None = None) -> bool:
    """Is a 'disconnected' mark due? For a member still in a room that has not ended, not
    marked gone already, and (in a sweep, with `cutoff`) last seen no later than `cutoff`."""
    return (
        not participant.left
        and not room.ended
        and not participant.gone
        and (cutoff is None or participant.last_seen <= cutoff)
    )


def mark(participant: Participant, kind: Kind) -> tuple[Draft, Participant]:
    """A presence mark: the event to log about the participant, and the participant as the
    mark leaves it (gone after 'disconnected', holding a seat again after 'returned')."""
    return messages.event_draft(kind, participant), dataclasses.replace(
        participant, gone=kind is Kind.DISCONNECTED
    )


def seen(participant: Participant, when: float) -> Participant:
    """A sign of life at `when`: last_seen rises, and never falls."""
    return dataclasses.replace(participant, last_seen=max(participant.last_seen, when))


@dataclass(eq=False)
class Session:
    """One client connection. When it closes, the participants it spoke for are gone."""

    participants: set[str] = field(default_factory=set)
    follow: Callable[[str], None] | None = None
    """Told of each participant the first time it speaks through this connection (a push
    feed then follows it, see `push.Feed`)."""


current_session: ContextVar[Session | None] = ContextVar("mcp_chat_session", default=None)


class Tracker:
    """Notes signs of life in memory until the next heartbeat takes them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._seen: dict[str, float] = {}
        self._latest: dict[str, float] = {}
        self._blocked: dict[str, int] = {}

    def seen(self, participant_id: str) -> None:
        self._seen[participant_id] = self._latest[participant_id] = self.clock()
        session = current_session.get()
        if session is not None and participant_id not in session.participants:
            session.participants.add(participant_id)
            if session.follow is not None:
                session.follow(participant_id)

    @contextmanager
    def blocked(self, participant_id: str) -> Iterator[None]:
        """While inside, the participant counts as alive at every heartbeat."""
        self._blocked[participant_id] = self._blocked.get(participant_id, 0) + 1
        try:
            yield
        finally:
            left = self._blocked[participant_id] - 1
            if left:
                self._blocked[participant_id] = left
            else:
                del self._blocked[participant_id]
            self._seen[participant_id] = self._latest[participant_id] = self.clock()

    def took_push(self, participant_id: str) -> None:
        """The participant's connection took a push: its client is alive, though it may make
        no call while it only listens (a Claude Code channel), and must not be swept as gone."""
        self._seen[participant_id] = self._latest[participant_id] = self.clock()

    def last_seen(self, participant_id: str) -> float:
        """When this process last heard from the participant (now, while it is blocked)."""
        if participant_id in self._blocked:
            return self.clock()
        return self._latest.get(participant_id, 0.0)

    def prune(self, before: float) -> None:
        """Forget what the store already knows and is too old to matter."""
        self._latest = {k: v for k, v in self._latest.items() if v >= before}

    def take(self) -> dict[str, float]:
        """Everything seen since the last call, and everyone blocked right now."""
        now = self.clock()
        seen, self._seen = self._seen, {}
        for participant_id in self._blocked:
            seen[participant_id] = now
        return seen

    def forget(self, participant_ids: set[str]) -> None:
        for participant_id in participant_ids:
            self._seen.pop(participant_id, None)
            self._latest.pop(participant_id, None)
