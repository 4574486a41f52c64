"""The storage interface every backend implements, and how a URL picks one."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from mcp_chat.matching import MatchPolicy
from mcp_chat.signals import EVERY_ROOM
from mcp_chat.types import (
    Appended,
    Claim,
    Counts,
    Draft,
    Joined,
    Left,
    Matched,
    Message,
    Participant,
    Pruned,
    QueueEntry,
    Room,
    RoomSummary,
)

T = TypeVar("T")


class Outage:
    """What a store's log says of failing calls: one warning naming the error when calls
    start failing (they answer store_unavailable), one line when one succeeds again."""

    def __init__(self, store: str, log: logging.Logger) -> None:
        self.store, self.log = store, log
        self.failing = False

    def failed(self, exc: BaseException) -> None:
        if not self.failing:
            self.failing = True
            self.log.warning(
                "%s calls failing (%s: %s); they answer store_unavailable until it is back",
                self.store,
                type(exc).__name__,
                exc,
            )

    def passed(self, result: T) -> T:
        """A call went through; returns its result."""
        if self.failing:
            self.failing = False
            self.log.info("%s calls succeed again", self.store)
        return result


class Unseated(Exception):
    """A call by a member marked gone, in a room that has not ended: it holds no seat, and
    must take one again (`Store.come_back`) before it may send or read (see `rooms`)."""


ChangeListener = Callable[[str], None]
"""Called with a room id (or `queue:<entry id>`) when another process changed it, or with
`EVERYTHING` when changes may have been missed (a lost connection to a shared store)."""

EVERYTHING = EVERY_ROOM


class Store(ABC):
    """A durable log of messages per room, the rooms and their participants.

    Every method is atomic: two processes sharing one store never see half an operation,
    never hand out one sequence number twice, and never put more participants in a room
    than its capacity. Rule decisions (capacity, when a room ends) come from `mcp_chat.rooms`.
    """

    async def start(self, on_change: ChangeListener) -> None:  # noqa: B027 - optional hook
        """Begin telling `on_change` of changes made by other processes."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def join(
        self,
        room_id: str,
        capacity: int,
        participant: Participant,
        event: Draft,
        invite_hash: str | None = None,
    ) -> Joined:
        """Create the room with `capacity` (private when `invite_hash` is given) if it does not
        exist, add `participant`, and log `event` (its 'joined' message). A room that has
        ended is first set aside under `rooms.archive_id` with its participants and messages
        (`rooms.starts_anew`), and a new one made. Members marked gone hold no seat
        (`rooms.seated`). Raises invite_required, room_not_private or room_full (via
        `rooms.check_join`)."""

    @abstractmethod
    async def participant(self, secret_hash: str) -> Participant | None:
        """The participant whose client_id hashes to `secret_hash`."""

    @abstractmethod
    async def append(self, participant_id: str, draft: Draft) -> Appended:
        """Log a message from a current participant. A draft whose `key` this sender used
        before returns the first message, marked duplicate. Either way the answer carries the
        sender's `unread` count, taken in the same operation. Raises chat_ended or
        not_in_room, or Unseated for a sender marked gone."""

    @abstractmethod
    async def keyed(self, participant_id: str, key: str) -> Message | None:
        """The message this participant sent with `key`, if one is stored."""

    @abstractmethod
    async def claim(
        self, participant_id: str, after: int | None, limit: int, through: int | None = None
    ) -> Claim:
        """Take up to `limit` messages from others past the read position (or past `after`,
        when given) and move the read position past them (`reading.read`), atomically: two
        concurrent claims never return the same message. With `through`, nothing past that seq is
        taken, and the read position moves no further than it (and never back for it). Raises
        Unseated for a reader marked gone in a room that has not ended."""

    @abstractmethod
    async def peek(self, participant_id: str, after: int | None, limit: int) -> Claim:
        """What `claim` would take now (up to `limit` messages from others past the read
        position, or past `after`), without moving anything; `cursor` is the read position
        as it stands. Raises as `claim` does."""

    @abstractmethod
    async def unread(self, participant_id: str) -> int:
        """How many messages from others lie past the participant's read position
        (`reading.unread`)."""

    @abstractmethod
    async def history(
        self, room_id: str, after: int | None, before: int | None, limit: int
    ) -> list[Message]:
        """Up to `limit` messages in seq order: the first ones after `after`, or the last ones
        before `before` (or the newest, when neither is given)."""

    @abstractmethod
    async def leave(self, participant_id: str, event: Draft) -> Left:
        """Mark the participant gone, log `event` (addressed as `mentions.left` says), and
        end the room if the rules say so (`rooms.ends_after_leave`). One marked gone may leave
        too, seat or none."""

    @abstractmethod
    async def room(self, room_id: str) -> Room | None: ...

    async def check_writable(self) -> None:
        """Return if a write would go through now, else raise (what `/readyz` reports). This
        default reads instead: a store in this process's memory takes what it can read."""
        await self.room("")

    @abstractmethod
    async def members(self, room_id: str) -> list[Participant]:
        """The participants currently in the room, in order of joining."""

    @abstractmethod
    async def rooms(self, limit: int) -> list[RoomSummary]:
        """The rooms `rooms.listed` offers (open, public, someone in them not gone), newest
        first, each with how many members hold a seat."""

    @abstractmethod
    async def counts(self) -> Counts:
        """How many open rooms, and participants in them, the store holds."""

    @abstractmethod
    async def prune(self, messages_before: str | None, idle_before: str | None) -> Pruned:
        """Retention, with UTC timestamps as `messages.utc_now` writes them. Removes messages
        older than `messages_before`, except each room's newest (it dates the room's last
        activity); then rooms whose newest message is older than `idle_before`, with their
        participants and messages. None skips that part."""

    # -- the random-pairing queue -------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, entry: QueueEntry, now: float, policy: MatchPolicy) -> Matched | None:
        """Match `entry` with a waiting entry (`matching.on_entering`) and make their room,
        or add it to the queue. Atomic: nobody is matched twice."""

    @abstractmethod
    async def rematch(self, entry_id: str, now: float, policy: MatchPolicy) -> Matched | None:
        """Try again to match a waiting entry (its interests may have stopped mattering):
        `matching.on_retry`."""

    @abstractmethod
    async def queue_entry(self, secret_hash: str) -> QueueEntry | None:
        """The entry whose client_id hashes to `secret_hash`, matched or waiting."""

    @abstractmethod
    async def queue_position(self, entry_id: str) -> int:
        """1 for the longest-waiting entry; 0 if not waiting."""

    @abstractmethod
    async def leave_queue(self, entry_id: str) -> bool:
        """Remove a waiting entry; False if it was not waiting."""

    # -- presence --------------------------------------------------------------------------------

    @abstractmethod
    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        """Record signs of life (participant or queue-entry id -> epoch seconds). A gone
        participant that shows life is back if a seat is free for it (`rooms.check_return`;
        else it stays gone): returns the 'returned' events logged."""

    @abstractmethod
    async def come_back(self, participant_id: str) -> Message | None:
        """A member marked gone calls again: it takes a seat if `rooms.check_return` allows,
        and its 'returned' event is logged and returned; else room_full, and it stays gone.
        None if there is nothing to do (not gone, or its room has ended). Raises
        unknown_client, or not_in_room for one who left."""

    @abstractmethod
    async def disconnect(self, ids: Collection[str]) -> list[Message]:
        """Their clients went away: mark participants gone where `presence.goes` (logging
        'disconnected' events, returned) and drop waiting queue entries."""

    @abstractmethod
    async def sweep(self, now: float, gone_after: float, stale_after: float) -> list[Message]:
        """Mark gone the participants silent for `gone_after` seconds (`presence.goes` with
        `presence.silent_since`; returning the events logged) and drop queue entries silent
        for `stale_after` (`matching.stale`)."""
