"""The chat core: join, send, wait, leave and read history. Knows nothing of MCP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field

from mcp_chat import credentials, errors, messages, names, rooms
from mcp_chat.errors import ChatError
from mcp_chat.limits import SendRate, WaitSlots
from mcp_chat.retention import Retention
from mcp_chat.signals import RoomSignals
from mcp_chat.stores.base import Store
from mcp_chat.types import Kind, Message, Participant, Room, RoomSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits; a 0 for max_rooms, rate_messages or max_waits means no limit."""

    max_message_bytes: int = 64 * 1024
    max_capacity: int = 50
    max_name_chars: int = names.MAX_NAME_CHARS
    max_room_id_chars: int = names.MAX_ROOM_ID_CHARS
    max_rooms: int = 10_000
    rate_messages: int = 120
    """Messages a participant may send at once, refilled over `rate_window` seconds."""
    rate_window: float = 60.0
    max_waits: int = 4
    """Blocked wait_for_message calls one participant may have open at once."""
    batch_size: int = 50
    history_page: int = 100
    default_wait: float = 30.0
    min_wait: float = 1.0
    max_wait: float = 300.0
    retention: Retention = field(default_factory=Retention)
    retention_interval: float = 300.0


@dataclass(frozen=True, slots=True)
class JoinResult:
    client_id: str
    participant: Participant
    room: Room
    created: bool
    members: list[Participant]


@dataclass(frozen=True, slots=True)
class SendResult:
    message: Message
    duplicate: bool


@dataclass(frozen=True, slots=True)
class WaitResult:
    messages: list[Message]
    has_more: bool
    timed_out: bool
    chat_ended: bool
    cursor: int
    waited: float


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[Message]
    last_seq: int
    has_older: bool


@dataclass(frozen=True, slots=True)
class _Identity:
    """What never changes about a participant; safe to cache by secret hash."""

    participant_id: str
    room_id: str
    display_name: str
    secret_hash: str


_IDENTITY_CACHE_SIZE = 100_000


class ChatService:
    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.signals = RoomSignals()
        self.send_rate = SendRate(self.limits.rate_messages, self.limits.rate_window)
        self.wait_slots = WaitSlots(self.limits.max_waits)
        self._identities: dict[str, _Identity] = {}
        self._users = 0
        self._start_lock = asyncio.Lock()
        self._stopping = False
        self._retention: asyncio.Task[None] | None = None
        self.messages_sent = 0
        """Messages this process stored (for metrics)."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store. Several owners may start one service; the last `close` closes it."""
        async with self._start_lock:
            if self._users == 0:
                self._stopping = False
                await self.store.start(self.signals.notify)
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

    async def close(self) -> None:
        async with self._start_lock:
            self._users -= 1
            if self._users == 0:
                self.stop_waits()
                if self._retention is not None:
                    self._retention.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._retention
                    self._retention = None
                await self.store.close()
                log.info("store closed")

    async def ready(self) -> bool:
        """True if the store answers and the server is not stopping."""
        if self._stopping:
            return False
        try:
            await self.store.room("")
        except Exception:
            log.warning("readiness check: the store did not answer", exc_info=True)
            return False
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
        if identity.room_id != room_id:
            raise errors.not_in_room(room_id)
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
        self, room_id: str | None, display_name: str, capacity: int | None = None
    ) -> JoinResult:
        limits = self.limits
        name = names.clean_display_name(display_name, limits.max_name_chars)
        if room_id:
            room_id = names.check_room_id(room_id, limits.max_room_id_chars)
        else:
            room_id = credentials.new_public_id("room-")
        size = rooms.check_capacity(capacity, limits.max_capacity)
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
        )
        joined = await self.store.join(
            room_id, size, participant, messages.event_draft(Kind.JOINED, participant)
        )
        self.signals.notify(room_id)
        log.info(
            "joined room=%s participant=%s client=%s",
            room_id,
            participant.participant_id,
            credentials.redact(client_id),
        )
        return JoinResult(
            client_id, joined.participant, joined.room, joined.created, joined.members
        )

    async def send(
        self, room_id: str, client_id: str, text: str, key: str | None = None
    ) -> SendResult:
        text = messages.check_text(text, self.limits.max_message_bytes)
        key = messages.check_key(key)
        identity = await self._identify(room_id, client_id)
        self.send_rate.take(identity.participant_id)
        draft = messages.text_draft(self._as_participant(identity), text, key)
        try:
            appended = await self.store.append(identity.participant_id, draft)
        except ChatError:
            self.send_rate.give_back(identity.participant_id)
            raise
        if appended.duplicate:
            self.send_rate.give_back(identity.participant_id)
        else:
            self.messages_sent += 1
            self.signals.notify(room_id)
        return SendResult(appended.message, appended.duplicate)

    def clamp_timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.limits.default_wait
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise errors.invalid("timeout must be a number of seconds.")
        if not math.isfinite(timeout):
            raise errors.invalid(
                f"timeout must be a finite number of seconds between "
                f"{self.limits.min_wait:g} and {self.limits.max_wait:g}."
            )
        return min(max(float(timeout), self.limits.min_wait), self.limits.max_wait)

    async def wait(
        self,
        room_id: str,
        client_id: str,
        timeout: float | None = None,
        after: int | None = None,
    ) -> WaitResult:
        """Messages from others past the read position, at once if any, else the first to
        arrive within `timeout` seconds (clamped). `after` re-reads from a sequence number."""
        seconds = self.clamp_timeout(timeout)
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise errors.invalid("after must be a whole number (a message seq).")
        identity = await self._identify(room_id, client_id)
        with self.wait_slots.hold(identity.participant_id):
            return await self._wait(identity, seconds, after)

    async def _wait(self, identity: _Identity, seconds: float, after: int | None) -> WaitResult:
        room_id = identity.room_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds
        position = after
        while True:
            if self._stopping:
                raise errors.server_restarting()
            changed = self.signals.watch(room_id)
            claim = await self.store.claim(
                identity.participant_id, position, self.limits.batch_size
            )
            position = None
            waited = loop.time() - started
            if claim.messages:
                return WaitResult(
                    claim.messages, claim.has_more, False, claim.ended, claim.cursor, waited
                )
            if claim.ended:
                raise errors.chat_ended(room_id)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return WaitResult([], False, True, False, claim.cursor, waited)
            await self.signals.wait(room_id, changed, remaining)

    async def leave(self, room_id: str, client_id: str) -> bool:
        """Leave the room; True if that ended it."""
        identity = await self._identify(room_id, client_id)
        left = await self.store.leave(
            identity.participant_id,
            messages.event_draft(Kind.LEFT, self._as_participant(identity)),
        )
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
        for label, value in (("before", before), ("after", after), ("limit", limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise errors.invalid(f"{label} must be a whole number.")
        if before is not None and after is not None:
            raise errors.invalid("Give either before or after, not both.")
        page = self.limits.history_page
        if limit is not None and not 1 <= limit <= page:
            raise errors.invalid(f"limit must be between 1 and {page}.")
        identity = await self._identify(room_id, client_id)
        await self._check_present(identity)
        found = await self.store.history(room_id, after, before, limit or page)
        room = await self.store.room(room_id)
        last_seq = room.last_seq if room else 0
        has_older = bool(found) and found[0].seq > 1
        return HistoryPage(found, last_seq, has_older)

    async def members(self, room_id: str, client_id: str) -> tuple[Room, list[Participant]]:
        identity = await self._identify(room_id, client_id)
        await self._check_present(identity)
        room = await self.store.room(room_id)
        if room is None:
            raise errors.room_not_found(room_id)
        return room, await self.store.members(room_id)

    async def rooms(self) -> list[RoomSummary]:
        return await self.store.rooms(limit=100)

    async def _check_present(self, identity: _Identity) -> None:
        # unread() raises for a participant who has left; it is the cheapest such check.
        await self.store.unread(identity.participant_id)
