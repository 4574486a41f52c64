"""The chat core: join, send, wait, leave and read history. Knows nothing of MCP.

`ChatService` is what the adapters call. It holds the parts it is made of, each in a module
of its own: who calls (`identity`), the message wait (`waiting`), the random queue
(`pairing.Pairing`, as `ChatService.pairing`), presence upkeep (`heartbeat.Heartbeat`, as
`ChatService.heartbeat`), wake-ups (`signals`) and the limits (`limits`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import time
from collections.abc import Callable

from mcp_chat import credentials, errors, mentions, messages, names, rooms
from mcp_chat.errors import ChatError
from mcp_chat.heartbeat import Heartbeat
from mcp_chat.identity import Identities, Identity
from mcp_chat.limits import Limits, Rate, WaitSlots
from mcp_chat.matching import MatchPolicy
from mcp_chat.pairing import Pairing
from mcp_chat.presence import PresencePolicy, Tracker
from mcp_chat.signals import RoomSignals, settle
from mcp_chat.stores.base import EVERYTHING, Store
from mcp_chat.types import (
    HistoryPage,
    JoinResult,
    Kind,
    Member,
    Message,
    Participant,
    Room,
    RoomSummary,
    Roster,
    SendResult,
    WaitResult,
)
from mcp_chat.waiting import ReadTurns, Waits

log = logging.getLogger(__name__)


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
        self.pairing = Pairing(
            store,
            self.limits,
            self.matching,
            self.signals,
            self.tracker,
            self.join_rate,
            self.wait_slots,
            clock,
        )
        self.heartbeat = Heartbeat(
            store,
            self.tracker,
            self.signals,
            self.presence,
            self.matching,
            clock,
            after_beat=self.pairing.recheck,
        )
        self.waits = Waits(
            store, self.signals, self.tracker, self.turns, self.limits, self.heartbeat
        )
        self.identities = Identities(store, self.tracker, self.limits.max_room_id_chars)
        self._users = 0
        self._start_lock = asyncio.Lock()
        self._retention: asyncio.Task[None] | None = None
        self._unready = False  # the last readiness check failed for a reason it logged
        self.messages_sent = 0
        """Messages this process stored (for metrics)."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store. Several owners may start one service; the last `close` closes it."""
        async with self._start_lock:
            if self._users == 0:
                self.signals.stopping = False
                await self.store.start(self._changed_elsewhere)
                self.heartbeat.start()
                retention = self.limits.retention
                if retention.enabled:
                    self._retention = asyncio.create_task(
                        retention.run(self.store, self.limits.retention_interval)
                    )
            self._users += 1

    def stop_waits(self) -> None:
        """The server is going down: blocked and new waits fail with server_restarting at
        once, so that open requests end; sends still work until `close`."""
        self.signals.stop()

    def _changed_elsewhere(self, key: str) -> None:
        if key == EVERYTHING:
            self.signals.notify_everywhere()
        else:
            self.signals.notify(key)

    async def close(self) -> None:
        async with self._start_lock:
            self._users -= 1
            if self._users == 0:
                await self.heartbeat.stop()  # and write the last signs of life
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
        if self.signals.stopping:
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
            self.heartbeat.presence_of(joined.members),
            await self.store.unread(participant.participant_id),
        )

    async def send(
        self, room_id: str, client_id: str, text: str, key: str | None = None
    ) -> SendResult:
        text = messages.check_text(text, self.limits.max_message_bytes)
        key = messages.check_key(key)
        identity = await self.identities.check(room_id, client_id)
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
            draft = messages.text_draft(identity.as_participant(), text, key, mentioned)
            appended = await self.heartbeat.seated(
                identity.participant_id, lambda: self.store.append(identity.participant_id, draft)
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
        identity = await self.identities.check(room_id, client_id)
        with self.wait_slots.hold(identity.participant_id):
            return await self.waits.wait(identity, seconds, after, mentions_only)

    async def leave(self, room_id: str, client_id: str) -> bool:
        """Leave the room; True if that ended it."""
        identity = await self.identities.check(room_id, client_id)
        left = await self.store.leave(
            identity.participant_id,
            messages.event_draft(Kind.LEFT, identity.as_participant()),
        )
        # Nothing kept in this process for someone who has left: long-lived leftovers from
        # many passing clients would pin the memory their requests used.
        self.identities.forget(identity)
        self.tracker.forget({identity.participant_id})
        self.send_rate.forget(identity.participant_id)
        self.heartbeat.departed({identity.participant_id})
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
        identity = await self.identities.check(room_id, client_id)
        room_id = await self._room_of(identity)
        found = await self.store.history(room_id, after, before, size)
        room = await self.store.room(room_id)
        last_seq = room.last_seq if room else 0
        has_older = bool(found) and found[0].seq > 1
        unread = await self.store.unread(identity.participant_id)
        return HistoryPage([messages.shown(m) for m in found], last_seq, has_older, unread)

    async def members(self, room_id: str, client_id: str) -> Roster:
        """The room and who is in it, each present, away or gone."""
        identity = await self.identities.check(room_id, client_id)
        room_id = await self._room_of(identity)
        room = await self.store.room(room_id)
        if room is None:
            raise errors.room_not_found(room_id)
        members = self.heartbeat.presence_of(await self.store.members(room_id))
        unread = await self.store.unread(identity.participant_id)
        return Roster(dataclasses.replace(room, room_id=rooms.public_id(room_id)), members, unread)

    async def rooms(self) -> list[RoomSummary]:
        return await self.store.rooms(limit=100)

    async def unread(self, room_id: str, client_id: str) -> int:
        """How many messages from others wait past this participant's read position."""
        identity = await self.identities.check(room_id, client_id)
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
        return self.heartbeat.presence_of(await self.store.members(room_id))

    async def _room_of(self, identity: Identity) -> str:
        """The id the participant's room is stored under now (the name it joined may since
        have been taken by a new conversation, see `rooms.starts_anew`); raises if it left.
        One marked gone takes a seat again first, or gets room_full (see `rooms`)."""
        participant = await self.store.participant(identity.secret_hash)
        if participant is None:
            raise errors.unknown_client()
        if participant.left:
            raise errors.left_room(rooms.public_id(participant.room_id))
        if participant.gone:
            await self.heartbeat.come_back(identity.participant_id)
        return participant.room_id
