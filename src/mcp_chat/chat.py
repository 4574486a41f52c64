"""The chat core: join, send, wait, leave and read history. Knows nothing of MCP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from mcp_chat import credentials, errors, matching, mentions, messages, names, rooms
from mcp_chat.errors import ChatError
from mcp_chat.limits import Limits, Rate, WaitSlots
from mcp_chat.matching import MatchPolicy
from mcp_chat.presence import PresencePolicy, Session, Tracker, status
from mcp_chat.signals import Handoff, RoomSignals, answering, delivered, settle
from mcp_chat.stores.base import EVERYTHING, Store, Unseated
from mcp_chat.types import (
    Claim,
    HistoryPage,
    JoinResult,
    Kind,
    Matched,
    Member,
    Message,
    Participant,
    QueueEntry,
    QueueResult,
    Room,
    RoomSummary,
    Roster,
    SendResult,
    WaitResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Identity:
    """What never changes about a participant; safe to cache by secret hash."""

    participant_id: str
    room_id: str
    display_name: str
    secret_hash: str


_IDENTITY_CACHE_SIZE = 100_000
_LOOK_AHEAD = 100
"""Messages a mentions_only wait reads per look past the read position."""


class ReadTurns:
    """Readers of a participant that a push follows take turns: a push reads without taking
    (`Store.peek`), writes, and only then moves the read position (see `push`), so a claim
    in between would return what it wrote. Participants no push follows need no turn: their
    claims are atomic in the store."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def join(self, participant_id: str) -> None:
        """A push starts following the participant (once per feed)."""
        lock, users = self._locks.get(participant_id, (None, 0))
        self._locks[participant_id] = (lock or asyncio.Lock(), users + 1)

    def leave(self, participant_id: str) -> None:
        lock, users = self._locks[participant_id]
        if users > 1:
            self._locks[participant_id] = (lock, users - 1)
        else:
            del self._locks[participant_id]

    def turn(self, participant_id: str) -> contextlib.AbstractAsyncContextManager[object]:
        found = self._locks.get(participant_id)
        return _NO_TURN if found is None else found[0]


_NO_TURN: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()


class ChatService:
    def __init__(
        self,
        store: Store,
        limits: Limits | None = None,
        matching_policy: MatchPolicy | None = None,
        presence_policy: PresencePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.matching = matching_policy or MatchPolicy()
        self.presence = presence_policy or PresencePolicy()
        self.clock = clock
        self.signals = RoomSignals()
        self.tracker = Tracker(clock)
        self.send_rate = Rate(self.limits.rate_messages, self.limits.rate_window)
        self.join_rate = Rate(
            self.limits.rate_joins, self.limits.rate_window, refusal=errors.joining_too_fast
        )
        self.wait_slots = WaitSlots(self.limits.max_waits)
        self.turns = ReadTurns()
        self._identities: dict[str, _Identity] = {}
        self._users = 0
        self._start_lock = asyncio.Lock()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._queue_waiters: set[str] = set()
        self._stopping = False
        self._retention: asyncio.Task[None] | None = None
        self._unready = False  # the last readiness check failed for a reason it logged
        self._departure_listeners: list[Callable[[set[str]], None]] = []
        self.messages_sent = 0
        """Messages this process stored (for metrics)."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store. Several owners may start one service; the last `close` closes it."""
        async with self._start_lock:
            if self._users == 0:
                self._stopping = False
                await self.store.start(self._changed_elsewhere)
                self._heartbeat_task = asyncio.create_task(self._heartbeats())
                retention = self.limits.retention
                if retention.enabled:
                    self._retention = asyncio.create_task(
                        retention.run(self.store, self.limits.retention_interval)
                    )
            self._users += 1

    def stop_waits(self) -> None:
        """The server is going down: blocked and new waits fail with server_restarting at
        once, so that open requests end; sends still work until `close`."""
        self._stopping = True
        self.signals.notify_all()

    def _changed_elsewhere(self, key: str) -> None:
        if key == EVERYTHING:
            self.signals.notify_everywhere()
        else:
            self.signals.notify(key)

    async def close(self) -> None:
        async with self._start_lock:
            self._users -= 1
            if self._users == 0:
                if self._heartbeat_task is not None:
                    self._heartbeat_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._heartbeat_task
                    self._heartbeat_task = None
                with contextlib.suppress(errors.ChatError):
                    await self.heartbeat()  # write the last signs of life
                self.stop_waits()
                if self._retention is not None:
                    self._retention.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._retention
                    self._retention = None
                await self.store.close()
                log.info("store closed")

    async def ready(self) -> bool:
        """True if the store takes a write now and the server is not stopping.

        A load balancer asks every few seconds, through a whole outage: the store logs the
        cause of store_unavailable once per outage (`stores.base.Outage`), so that answer is
        not logged here again; anything else is a bug, logged once (with its traceback) until
        a check passes."""
        if self._stopping:
            return False
        try:
            await self.store.check_writable()
        except ChatError:
            return False
        except Exception:
            if not self._unready:
                self._unready = True
                log.exception("readiness check failed unexpectedly")
            return False
        self._unready = False
        return True

    # -- identity -------------------------------------------------------------------------------

    async def _identify(self, room_id: str, client_id: str) -> _Identity:
        names.check_room_id(room_id, self.limits.max_room_id_chars)
        if not isinstance(client_id, str) or not client_id:
            raise errors.invalid("client_id is empty. Pass the client_id that join_room returned.")
        secret_hash = credentials.hash_secret(client_id)
        identity = self._identities.get(secret_hash)
        if identity is None:
            participant = await self.store.participant(secret_hash)
            if participant is None or not credentials.matches(participant.secret_hash, client_id):
                raise errors.unknown_client()
            identity = _Identity(
                participant.participant_id,
                participant.room_id,
                participant.display_name,
                participant.secret_hash,
            )
            if len(self._identities) >= _IDENTITY_CACHE_SIZE:
                self._identities.clear()
            self._identities[secret_hash] = identity
        if identity.room_id != room_id and rooms.public_id(identity.room_id) != room_id:
            raise errors.not_in_room(room_id)
        self.tracker.seen(identity.participant_id)
        return identity

    @staticmethod
    def _as_participant(identity: _Identity) -> Participant:
        return Participant(
            identity.participant_id,
            identity.room_id,
            identity.display_name,
            identity.secret_hash,
            cursor=0,
            joined_at="",
            left=False,
        )

    # -- operations -----------------------------------------------------------------------------

    async def join(
        self,
        room_id: str | None,
        display_name: str,
        capacity: int | None = None,
        invite: str | None = None,
        caller: str | None = None,
    ) -> JoinResult:
        """Enter (or create) a room. `caller` names who asks, as the adapter knows it (a
        client's address, a stdio process): its joins are limited to `limits.rate_joins` per
        window, so that nobody fills the store with rooms; None is not limited."""
        limits = self.limits
        name = names.clean_display_name(display_name, limits.max_name_chars)
        if room_id:
            room_id = names.check_room_id(room_id, limits.max_room_id_chars)
        else:
            room_id = credentials.new_public_id("room-")
        size = rooms.check_capacity(capacity, limits.max_capacity)
        invite_hash = (
            None if invite is None else credentials.hash_secret(rooms.check_invite(invite))
        )
        if caller is not None:
            self.join_rate.take(caller)
        if limits.max_rooms and await self.store.room(room_id) is None:
            # Checked before the store creates the room, so concurrent creations may overshoot
            # the limit by a few; it bounds growth, it is not an exact quota.
            rooms.check_room_count((await self.store.counts()).rooms, limits.max_rooms)
        client_id = credentials.new_client_secret()
        participant = Participant(
            participant_id=credentials.new_public_id("p-"),
            room_id=room_id,
            display_name=name,
            secret_hash=credentials.hash_secret(client_id),
            cursor=0,
            joined_at=messages.utc_now(),
            left=False,
            last_seen=self.clock(),
        )
        joined = await self.store.join(
            room_id, size, participant, messages.event_draft(Kind.JOINED, participant), invite_hash
        )
        self.tracker.seen(participant.participant_id)
        self.signals.notify(room_id)
        log.info(
            "joined room=%s participant=%s client=%s",
            room_id,
            participant.participant_id,
            credentials.redact(client_id),
        )
        return JoinResult(
            client_id,
            joined.participant,
            joined.room,
            joined.created,
            self._presence_of(joined.members),
            await self.store.unread(participant.participant_id),
        )

    async def send(
        self, room_id: str, client_id: str, text: str, key: str | None = None
    ) -> SendResult:
        text = messages.check_text(text, self.limits.max_message_bytes)
        key = messages.check_key(key)
        identity = await self._identify(room_id, client_id)
        try:
            self.send_rate.take(identity.participant_id)
        except ChatError:
            # A retry of a message that was stored is answered as the first send was, however
            # fast it comes: "nothing was stored" would be false, and it would be sent twice.
            stored = None if key is None else await self.store.keyed(identity.participant_id, key)
            if stored is None:
                raise
            unread = await self.store.unread(identity.participant_id)
            return self._duplicate(stored, text, key, unread)
        try:
            mentioned: tuple[str, ...] = ()
            if mentions.MARK in text:
                # Who is named is resolved against the room's members now: one more read of
                # the store, paid only by a text with an "@" in it.
                members = await self.store.members(identity.room_id)
                mentioned = mentions.find(text, members, identity.participant_id)
            draft = messages.text_draft(self._as_participant(identity), text, key, mentioned)
            appended = await self._seated(
                identity, lambda: self.store.append(identity.participant_id, draft)
            )
        except ChatError:
            self.send_rate.give_back(identity.participant_id)
            raise
        if appended.duplicate:
            self.send_rate.give_back(identity.participant_id)
            return self._duplicate(appended.message, text, key, appended.unread)
        self.messages_sent += 1
        # The deliveries go out first: the message reaching those waiting for it is what
        # matters, the sender's receipt can follow.
        await settle(self.signals.notify(room_id))
        return SendResult(appended.message, False, appended.unread)

    @staticmethod
    def _duplicate(stored: Message, text: str, key: str | None, unread: int) -> SendResult:
        """The answer to a send whose `key` names a stored message."""
        if stored.text != text:
            # A key names one message: a different text under it is a client mistake, and
            # answering "sent" would silently lose the new message.
            raise errors.invalid(
                f"message_key '{key}' was already used for a different message "
                f"(seq {stored.seq}). Use a new key for a new message."
            )
        return SendResult(stored, True, unread)

    async def wait(
        self,
        room_id: str,
        client_id: str,
        timeout: float | None = None,
        after: int | None = None,
        mentions_only: bool = False,
    ) -> WaitResult:
        """Messages from others past the read position, at once if any, else the first to
        arrive within `timeout` seconds (clamped). `after` re-reads from a sequence number.

        `mentions_only`: the same, but only a message that addresses the caller
        (`mentions.addresses`: a mention, being matched, a partner's leave that ends the
        room) ends the wait, or the room having ended; it then returns everything from
        others up to and including that message, as a plain wait would (at most a batch:
        `has_more` says more waits before it). The messages past it stay unread."""
        seconds = self.limits.clamp_timeout(timeout)
        after = messages.check_seq(after, "after")
        if not isinstance(mentions_only, bool):
            raise errors.invalid("mentions_only must be true or false.")
        identity = await self._identify(room_id, client_id)
        with self.wait_slots.hold(identity.participant_id):
            return await self._wait(identity, seconds, after, mentions_only)

    async def _wait(
        self, identity: _Identity, seconds: float, after: int | None, mentions_only: bool
    ) -> WaitResult:
        room_id = identity.room_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds
        position = after
        looked = after  # mentions_only: where the look for one addressed to the caller goes on
        handoff: Handoff | None = None  # owed to whoever woke this wait, once it answers
        try:
            while True:
                if self._stopping:
                    raise errors.server_restarting("wait_for_message")
                changed = self.signals.watch(room_id)
                through: int | None = None
                seen: Claim | None = None
                if mentions_only:
                    through, looked, seen = await self._addressed(identity, looked)
                if seen is not None and through is None and not seen.ended:
                    # Nothing addresses the caller yet: claim nothing, the rest stays unread.
                    claim = Claim([], seen.cursor, False, False, seen.room_id)
                else:
                    async with self.turns.turn(identity.participant_id):
                        claim = await self._seated(
                            identity,
                            functools.partial(
                                self.store.claim,
                                identity.participant_id,
                                position,
                                self.limits.batch_size,
                                through,
                            ),
                        )
                    position = None
                    if through is not None and not claim.messages:
                        # Another wait of the caller's took that message: look on past it.
                        looked = max(through, claim.cursor)
                        continue
                waited = loop.time() - started
                if claim.messages:
                    answering(handoff)
                    handoff = None
                    # The read position has moved: from here on nothing may fail the answer,
                    # or what was claimed would be skipped by the next wait. Past a message
                    # claimed `through`, what follows it stays unread: count that too.
                    more = claim.has_more or through is not None
                    return WaitResult(
                        [messages.shown(m) for m in claim.messages],
                        claim.has_more,
                        False,
                        claim.ended,
                        claim.cursor,
                        waited,
                        await self._still_unread(identity) if more else 0,
                    )
                delivered(handoff)  # nothing for this wait: its waker need not wait for it
                handoff = None
                if claim.ended:
                    raise errors.chat_ended(room_id)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return WaitResult([], False, True, False, claim.cursor, waited)
                with self.tracker.blocked(identity.participant_id):
                    handoff = await self.signals.wait(room_id, changed, remaining)
        finally:
            delivered(handoff)

    async def _addressed(
        self, identity: _Identity, after: int | None
    ) -> tuple[int | None, int | None, Claim]:
        """Looks past `after` (None: the read position) for the first message from others
        that addresses the participant, without moving the read position. Returns its seq
        (None if there is none yet), where the next look may start (what was looked at
        needs no second look: a wake-up reads only what is new), and the last look (its
        `cursor` is the read position, `ended` says whether the room has ended)."""
        participant_id = identity.participant_id
        while True:
            seen = await self.store.peek(participant_id, after, _LOOK_AHEAD)
            for message in seen.messages:
                if mentions.addresses(message, participant_id):
                    return message.seq, after, seen
            if seen.messages:
                after = seen.messages[-1].seq
            if not seen.has_more:
                return None, after, seen

    async def _still_unread(self, identity: _Identity) -> int:
        """Unread count after a claim that left more behind. The claimed messages must reach
        the caller even if the store fails now: then 1, the least `has_more` promises."""
        try:
            return await self.store.unread(identity.participant_id)
        except ChatError:
            return 1

    async def leave(self, room_id: str, client_id: str) -> bool:
        """Leave the room; True if that ended it."""
        identity = await self._identify(room_id, client_id)
        left = await self.store.leave(
            identity.participant_id,
            messages.event_draft(Kind.LEFT, self._as_participant(identity)),
        )
        # Nothing kept in this process for someone who has left: long-lived leftovers from
        # many passing clients would pin the memory their requests used.
        self._identities.pop(identity.secret_hash, None)
        self.tracker.forget({identity.participant_id})
        self.send_rate.forget(identity.participant_id)
        self._departed({identity.participant_id})
        self.signals.notify(room_id)
        log.info("left room=%s participant=%s", room_id, identity.participant_id)
        return left.room_ended

    async def history(
        self,
        room_id: str,
        client_id: str,
        before: int | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        before, after, size = self.limits.history_bounds(before, after, limit)
        identity = await self._identify(room_id, client_id)
        room_id = await self._room_of(identity)
        found = await self.store.history(room_id, after, before, size)
        room = await self.store.room(room_id)
        last_seq = room.last_seq if room else 0
        has_older = bool(found) and found[0].seq > 1
        unread = await self.store.unread(identity.participant_id)
        return HistoryPage([messages.shown(m) for m in found], last_seq, has_older, unread)

    async def members(self, room_id: str, client_id: str) -> Roster:
        """The room and who is in it, each present, away or gone."""
        identity = await self._identify(room_id, client_id)
        room_id = await self._room_of(identity)
        room = await self.store.room(room_id)
        if room is None:
            raise errors.room_not_found(room_id)
        members = self._presence_of(await self.store.members(room_id))
        unread = await self.store.unread(identity.participant_id)
        return Roster(dataclasses.replace(room, room_id=rooms.public_id(room_id)), members, unread)

    def _presence_of(self, participants: list[Participant]) -> list[Member]:
        """Each participant with its status, counting what this process heard since the last
        heartbeat wrote it down."""
        now = self.clock()
        members = []
        for p in participants:
            latest = max(p.last_seen, self.tracker.last_seen(p.participant_id))
            seen = dataclasses.replace(p, last_seen=latest)
            members.append(Member(seen, status(seen, now, self.presence)))
        return members

    async def rooms(self) -> list[RoomSummary]:
        return await self.store.rooms(limit=100)

    async def unread(self, room_id: str, client_id: str) -> int:
        """How many messages from others wait past this participant's read position."""
        identity = await self._identify(room_id, client_id)
        return await self.store.unread(identity.participant_id)

    # -- reading rooms by key (MCP resources) ---------------------------------------------------

    async def check_reader(self, room_id: str, key: str) -> Room:
        """The room, if `key` is the read key of one of its current members."""
        names.check_room_id(room_id)
        # Bytes: compare_digest refuses str with non-ASCII characters.
        given = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else b""
        room = await self.store.room(room_id)
        members = await self.store.members(room_id) if room is not None else []
        # Compare with every member, in constant time each, so timing tells nothing.
        found = False
        for p in members:
            found |= hmac.compare_digest(credentials.read_key(p.secret_hash).encode(), given)
        if room is None or not found:
            raise errors.ChatError(
                errors.Code.NOT_IN_ROOM,
                f"That key does not open room '{room_id}'. Use the resource URIs that join_room "
                "or enter_queue gave you; they work while you are in the room.",
            )
        return room

    async def transcript(self, room_id: str) -> list[Message]:
        found = await self.store.history(room_id, None, None, self.limits.history_page)
        return [messages.shown(m) for m in found]

    async def room_members(self, room_id: str) -> list[Member]:
        return self._presence_of(await self.store.members(room_id))

    async def _room_of(self, identity: _Identity) -> str:
        """The id the participant's room is stored under now (the name it joined may since
        have been taken by a new conversation, see `rooms.starts_anew`); raises if it left.
        One marked gone takes a seat again first, or gets room_full (see `rooms`)."""
        participant = await self.store.participant(identity.secret_hash)
        if participant is None:
            raise errors.unknown_client()
        if participant.left:
            raise errors.left_room(rooms.public_id(participant.room_id))
        if participant.gone:
            await self._come_back(identity)
        return participant.room_id

    async def _seated(self, identity: _Identity, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, a store operation for someone who must hold a seat. One marked gone
        (its connection closed, or long silent) takes a seat again first, if one is free,
        else gets room_full and stays gone (`rooms.check_return`)."""
        for _ in range(3):
            try:
                return await call()
            except Unseated:
                await self._come_back(identity)
        # Marked gone again each time it came back: cannot happen while it keeps calling.
        raise errors.ChatError(
            errors.Code.STORE_UNAVAILABLE,
            "Your place in the room changed as you called; call again.",
        )

    async def _come_back(self, identity: _Identity) -> None:
        event = await self.store.come_back(identity.participant_id)
        if event is not None:
            self._announce([event])

    # -- random pairing ---------------------------------------------------------------------------

    async def enter_queue(
        self, display_name: str, interests: list[str] | None = None, caller: str | None = None
    ) -> QueueResult:
        """Join the random queue: matched at once with someone waiting, or waiting. `caller`
        counts toward the same limit as `join`'s."""
        name = names.clean_display_name(display_name, self.limits.max_name_chars)
        tags = matching.clean_interests(interests)
        if caller is not None:
            self.join_rate.take(caller)
        client_id = credentials.new_client_secret()
        now = self.clock()
        entry = QueueEntry(
            entry_id=credentials.new_public_id("p-"),
            secret_hash=credentials.hash_secret(client_id),
            display_name=name,
            interests=tags,
            entered_at=now,
            last_seen=now,
        )
        matched = await self.store.enqueue(entry, now, self.matching)
        self.tracker.seen(entry.entry_id)
        if matched is not None:
            await settle(self._announce_match(matched))  # the one waiting hears first
            return await self._match_result(client_id, entry.entry_id, matched)
        position = await self.store.queue_position(entry.entry_id)
        log.info("queued participant=%s client=%s", entry.entry_id, credentials.redact(client_id))
        return QueueResult(client_id, entry.entry_id, None, position)

    async def wait_for_match(self, client_id: str, timeout: float | None = None) -> QueueResult:
        """Block until this queue entry is matched, or `timeout` seconds (clamped) pass."""
        seconds = self.limits.clamp_timeout(timeout)
        entry = await self._queue_entry(client_id)
        deadline = asyncio.get_running_loop().time() + seconds
        self._queue_waiters.add(entry.entry_id)
        with self.wait_slots.hold(entry.entry_id), self.tracker.blocked(entry.entry_id):
            try:
                return await self._await_match(client_id, entry, deadline)
            finally:
                self._queue_waiters.discard(entry.entry_id)

    async def _await_match(self, client_id: str, entry: QueueEntry, deadline: float) -> QueueResult:
        key = queue_key(entry.entry_id)
        loop = asyncio.get_running_loop()
        handoff: Handoff | None = None  # owed to whoever woke this wait, once it answers
        try:
            while True:
                if self._stopping:
                    raise errors.server_restarting("wait_for_match")
                changed = self.signals.watch(key)
                entry = await self._queue_entry(client_id)
                if entry.room_id is not None:
                    result = await self._matched_result(client_id, entry)
                    answering(handoff)
                    handoff = None
                    return result
                delivered(handoff)
                handoff = None
                now = self.clock()
                fallback_at = entry.entered_at + self.matching.fallback_after
                if now >= fallback_at:
                    matched = await self.store.rematch(entry.entry_id, now, self.matching)
                    if matched is not None:
                        self._announce_match(matched)
                        return await self._match_result(client_id, entry.entry_id, matched)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    position = await self.store.queue_position(entry.entry_id)
                    return QueueResult(client_id, entry.entry_id, None, position, timed_out=True)
                if now < fallback_at:
                    remaining = min(remaining, fallback_at - now)
                handoff = await self.signals.wait(key, changed, remaining)
        finally:
            delivered(handoff)

    async def leave_queue(self, client_id: str) -> None:
        entry = await self._queue_entry(client_id)
        if entry.room_id is not None:
            raise errors.ChatError(
                errors.Code.INVALID_ARGUMENT,
                f"You were already matched: you are in room '{entry.room_id}'. "
                "Use leave_chat with that room_id to leave it.",
            )
        if not await self.store.leave_queue(entry.entry_id):
            raise errors.not_in_queue()
        self.tracker.forget({entry.entry_id})
        self.signals.notify(queue_key(entry.entry_id))  # a blocked wait_for_match ends now

    async def queue_state(self, client_id: str) -> QueueResult:
        """Where this queue entry stands now (matched, or its position), without blocking."""
        entry = await self._queue_entry(client_id)
        if entry.room_id is not None:
            return await self._matched_result(client_id, entry)
        position = await self.store.queue_position(entry.entry_id)
        return QueueResult(client_id, entry.entry_id, None, position)

    async def _queue_entry(self, client_id: str) -> QueueEntry:
        if not isinstance(client_id, str) or not client_id:
            raise errors.invalid("client_id is empty. Pass the client_id enter_queue returned.")
        entry = await self.store.queue_entry(credentials.hash_secret(client_id))
        if entry is None or not credentials.matches(entry.secret_hash, client_id):
            raise errors.not_in_queue()
        self.tracker.seen(entry.entry_id)
        return entry

    async def _matched_result(self, client_id: str, entry: QueueEntry) -> QueueResult:
        assert entry.room_id is not None
        room = await self.store.room(entry.room_id)
        members = await self.store.members(entry.room_id)
        if room is None or len(members) < 2:
            # Matched earlier, and the partner has left since: the pair has ended.
            raise errors.chat_ended(entry.room_id)
        first, second = members[0], members[1]
        return await self._match_result(client_id, entry.entry_id, Matched(room, first, second))

    async def _match_result(self, client_id: str, entry_id: str, matched: Matched) -> QueueResult:
        unread = await self.store.unread(entry_id)  # the entry's id is its participant id
        return QueueResult(client_id, entry_id, matched, 0, unread=unread)

    def _announce_match(self, matched: Matched) -> set[Handoff]:
        """Wake the pair's waits; returns their handoffs."""
        woken = set(self.signals.notify(matched.room.room_id))
        for member in (matched.first, matched.second):
            woken.update(self.signals.notify(queue_key(member.participant_id)))
        log.info(
            "matched room=%s participants=%s,%s",
            matched.room.room_id,
            matched.first.participant_id,
            matched.second.participant_id,
        )
        return woken

    # -- presence ------------------------------------------------------------------------------

    async def heartbeat(self, now: float | None = None) -> None:
        """Write the signs of life noted since the last heartbeat, and mark as gone those
        silent for too long. Runs every `presence.heartbeat` seconds; tests call it directly."""
        events = await self.store.touch(self.tracker.take())
        events += await self.store.sweep(
            self.clock() if now is None else now,
            self.presence.gone_after,
            self.matching.stale_after,
        )
        self.tracker.prune(self.clock() - self.presence.away_after)
        self._announce(events)
        # Waiters re-check: some may have waited past the fallback, or lost their partner-to-be.
        for entry_id in self._queue_waiters:
            self.signals.notify(queue_key(entry_id))

    async def disconnect(self, session: Session) -> None:
        """A client connection closed: the participants it spoke for are gone."""
        ids = set(session.participants)
        session.participants.clear()
        if not ids:
            return
        self.tracker.forget(ids)
        self._announce(await self.store.disconnect(ids))

    def _announce(self, events: list[Message]) -> None:
        gone = {m.sender_id for m in events if m.kind is Kind.DISCONNECTED}
        if gone:
            self._departed(gone)
        for room_id in {m.room_id for m in events}:
            self.signals.notify(room_id)

    def add_departure_listener(self, listener: Callable[[set[str]], None]) -> None:
        """Also tell `listener` the ids of participants who left their room, or were marked
        gone (their connection closed, or they were silent too long), in this process. It
        must not block or raise. A participant gone may come back; one who left may not."""
        self._departure_listeners.append(listener)

    def _departed(self, participant_ids: set[str]) -> None:
        for listener in self._departure_listeners:
            listener(participant_ids)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.presence.heartbeat)
            try:
                await self.heartbeat()
            except errors.ChatError as exc:
                log.warning("heartbeat failed (%s); will try again", exc.code.value)
            except Exception:
                log.exception("heartbeat failed; will try again")


def queue_key(entry_id: str) -> str:
    """The signal a queue entry's changes (its match) are announced on."""
    return f"queue:{entry_id}"
