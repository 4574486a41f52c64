"""Push: what arrives for a participant, written at once to the client connection it speaks
through. Knows nothing of MCP: the adapter (`mcp/channel.py`) gives each connection's `Feed`
a `write` that puts one message on the wire.

Who is pushed to. A connection's feed follows every participant that speaks through it: that
joins a room or enters the queue there, or makes any call there with its client_id
(`presence.Session.follow`). So a client that starts a new server process and calls again
with its old client_id is followed again, and resumes from its read position.

What is pushed. Each message from others in a followed participant's room, the system
events (joined, left, matched, disconnected, returned) included, in the room's order, and
each once per connection: when two participants of one connection share a room, a message
from a third is written once, and both read positions move past it. `pushed` is the one
place that decides, message by message, what a participant is pushed.

Delivered means read; not written means unread. A push writes first and moves the read
position after, for each participant in turn:

1. `Store.peek`: the messages a claim would take, without taking them;
2. `write` each, in order: it returns once the message is out on the connection (over
   stdio: flushed into the pipe) and raises `Undelivered` when it cannot be (the client is
   gone, or has no stream open to take it);
3. `Store.claim` through the last message written: it moves the read position past what
   was written and no further, and never back, so that a read position another reader
   moved further meanwhile stays where it is.

A message that could not be written is not passed: the next wait_for_message (or the next
push, once the client can take one again) returns it. A process killed between a write and
that claim has shown the message without marking it read: it comes again, at least once,
never lost. A message `pushed` declines is passed over like a written one (it stays in
get_messages, and `after` re-reads it).

Two readers, one message. Claims are atomic in the store, but a peek takes nothing: a
wait_for_message claiming between a push's peek and its own claim would return what the push
wrote. So in this process the readers of a followed participant take turns
(`ChatService.turns`): the push holds the turn from its peek to its claim, every other claim
holds it while it claims. Another process reading the same participant does not wait for
this process's turn; that takes one client_id used in two live processes at once, and then a
message may reach both, never neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from mcp_chat import mentions, rooms
from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError
from mcp_chat.messages import shown
from mcp_chat.pairing import queue_key
from mcp_chat.signals import EVERY_ROOM
from mcp_chat.types import Message

log = logging.getLogger(__name__)

Mode = Literal["on", "mentions"]
"""What a feed pushes: every message from others, or (for now the same) those that concern
the participant; see `pushed`."""


@dataclass(frozen=True, slots=True)
class Reader:
    """The participant a message is pushed for."""

    participant_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Push:
    """One message, as a connection is told of it."""

    room_id: str
    """The room's public id: the one to answer in with send_message."""
    message: Message


class Undelivered(Exception):
    """The connection did not take the message: it stays unread."""


Write = Callable[[Push], Awaitable[None]]


def pushed(mode: Mode, message: Message, reader: Reader) -> bool:
    """Whether `message` (from someone else, in `reader`'s room) is pushed to `reader`: the
    filter point. `on` pushes everything; `mentions` only what addresses the reader (a
    message that mentions it, an event that changes its conversation: `mentions.addresses`).
    What is not pushed is passed over as read (a busy room's agent asked to hear only what is
    for it); get_messages still has it."""
    return mode != "mentions" or mentions.addresses(message, reader.participant_id)


_WRITTEN_KEPT = 1_000
"""Seqs remembered per room as written on a connection, so that a second participant of the
connection in the same room is not pushed them again; older ones are forgotten."""


class Feed:
    """Pushes to one client connection what arrives for the participants that spoke through
    it. One task writes, so that pushes keep each room's order."""

    def __init__(self, chat: ChatService, write: Write, mode: Mode = "on") -> None:
        self._chat = chat
        self._write = write
        self._mode = mode
        self._followed: dict[str, Reader | None] = {}  # participant id -> reader, once known
        self._rooms: dict[str, set[str]] = {}  # room id (as stored) -> participants in it
        self._room_of: dict[str, str] = {}
        self._written: dict[str, set[int]] = {}  # room id -> seqs written on this connection
        self._due: dict[str, None] = {}  # participants to look at, in order
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        chat.signals.add_listener(self._changed)

    def follow(self, participant_id: str) -> None:
        """Push to this connection what arrives for `participant_id` from now on, and what it
        has not read yet."""
        if self._closed or participant_id in self._followed:
            return
        self._followed[participant_id] = None
        self._chat.turns.join(participant_id)
        self._due_now([participant_id])

    def resume(self) -> None:
        """The connection can take pushes again (a stream reopened): look at everyone."""
        self._due_now(list(self._followed))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._chat.signals.remove_listener(self._changed)
        for participant_id in self._followed:
            self._chat.turns.leave(participant_id)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _changed(self, key: str) -> None:
        if key == EVERY_ROOM:
            self._due_now(list(self._followed))
        elif (followers := self._rooms.get(key)) is not None:
            self._due_now(list(followers))
        elif key.startswith("queue:"):
            # A queue entry that is matched becomes a participant of the pair's room.
            self._due_now([p for p in self._followed if queue_key(p) == key])

    def _due_now(self, participant_ids: list[str]) -> None:
        if self._closed or not participant_ids:
            return
        for participant_id in participant_ids:
            self._due[participant_id] = None
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._due:
                participant_id = next(iter(self._due))
                del self._due[participant_id]
                try:
                    more = await self._push(participant_id)
                except Undelivered:
                    # Unread until the connection can take a push again.
                    log.debug("push not delivered: the connection cannot take it now")
                    break
                except ChatError as exc:
                    # Left, not matched yet, or the store is unavailable: nothing to push
                    # until its room (or queue entry) changes again.
                    log.debug("nothing pushed for %s (%s)", participant_id, exc.code.value)
                    self._settle(participant_id, None)
                    continue
                except Exception:
                    log.exception("push for %s failed; will try at the next change", participant_id)
                    continue
                if more:
                    self._due[participant_id] = None

    async def _push(self, participant_id: str) -> bool:
        """Write what `participant_id` has not read, then mark it read; True if more wait."""
        chat = self._chat
        async with chat.turns.turn(participant_id):
            page = await chat.store.peek(participant_id, None, chat.limits.batch_size)
            self._settle(participant_id, page.room_id)
            reader = self._followed.get(participant_id) or await self._reader(
                participant_id, page.room_id
            )
            written = self._written.setdefault(page.room_id, set())
            passed: int | None = None
            try:
                for message in page.messages:
                    if message.seq not in written and pushed(self._mode, message, reader):
                        public = rooms.public_id(message.room_id)
                        await self._write(Push(public, shown(message)))
                        chat.tracker.took_push(participant_id)
                        written.add(message.seq)
                        if len(written) > _WRITTEN_KEPT:
                            written.discard(min(written))
                    passed = message.seq
            finally:
                if passed is not None:
                    # Forward only, and no further than what was written: a claim through it.
                    await chat.store.claim(
                        participant_id, None, chat.limits.batch_size, through=passed
                    )
            return page.has_more

    async def _reader(self, participant_id: str, room_id: str) -> Reader:
        name = ""
        for member in await self._chat.store.members(room_id):
            if member.participant_id == participant_id:
                name = member.display_name
        reader = Reader(participant_id, name)
        self._followed[participant_id] = reader
        return reader

    def _settle(self, participant_id: str, room_id: str | None) -> None:
        """Note the room a followed participant is in now (None: none to watch)."""
        old = self._room_of.pop(participant_id, None)
        if old is not None and old != room_id:
            followers = self._rooms[old]
            followers.discard(participant_id)
            if not followers:
                del self._rooms[old]
                self._written.pop(old, None)
        if room_id is not None:
            self._room_of[participant_id] = room_id
            self._rooms.setdefault(room_id, set()).add(participant_id)
