"""Random pairing as a service: enter the queue, wait to be matched, leave it, or ask where
one stands. Who is matched with whom is `matching`'s rule; the store makes the pair's room
atomically (`Store.enqueue`, `Store.rematch`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from mcp_chat import credentials, errors, matching, names
from mcp_chat.limits import Limits, Rate, WaitSlots
from mcp_chat.matching import MatchPolicy
from mcp_chat.presence import Tracker
from mcp_chat.signals import Handoff, RoomSignals, Watch, settle
from mcp_chat.stores.base import Store
from mcp_chat.types import Matched, QueueEntry, QueueResult

log = logging.getLogger(__name__)


def queue_key(entry_id: str) -> str:
    """The signal a queue entry's changes (its match) are announced on."""
    return f"queue:{entry_id}"


class Pairing:
    """The random queue of one chat service (`ChatService.pairing`), sharing its store, its
    signals, its record of signs of life and its limits on joins and open waits."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        policy: MatchPolicy,
        signals: RoomSignals,
        tracker: Tracker,
        join_rate: Rate,
        wait_slots: WaitSlots,
        clock: Callable[[], float],
    ) -> None:
        self.store, self.limits, self.policy = store, limits, policy
        self.signals, self.tracker, self.clock = signals, tracker, clock
        self.join_rate, self.wait_slots = join_rate, wait_slots
        self._waiters: set[str] = set()

    async def enter(
        self, display_name: str, interests: list[str] | None = None, caller: str | None = None
    ) -> QueueResult:
        """Join the random queue: matched at once with someone waiting, or waiting. `caller`
        counts toward the same limit as `ChatService.join`'s."""
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
        matched = await self.store.enqueue(entry, now, self.policy)
        self.tracker.seen(entry.entry_id)
        if matched is not None:
            await settle(self._announce(matched))  # the one waiting hears first
            return await self._result(client_id, entry.entry_id, matched)
        position = await self.store.queue_position(entry.entry_id)
        log.info("queued participant=%s client=%s", entry.entry_id, credentials.redact(client_id))
        return QueueResult(client_id, entry.entry_id, None, position)

    async def wait(self, client_id: str, timeout: float | None = None) -> QueueResult:
        """Block until this queue entry is matched, or `timeout` seconds (clamped) pass."""
        seconds = self.limits.clamp_timeout(timeout)
        entry = await self._entry(client_id)
        deadline = asyncio.get_running_loop().time() + seconds
        self._waiters.add(entry.entry_id)
        with self.wait_slots.hold(entry.entry_id), self.tracker.blocked(entry.entry_id):
            try:
                return await self._await_match(client_id, entry, deadline)
            finally:
                self._waiters.discard(entry.entry_id)

    async def _await_match(self, client_id: str, entry: QueueEntry, deadline: float) -> QueueResult:
        loop = asyncio.get_running_loop()
        with Watch(self.signals, queue_key(entry.entry_id), "wait_for_match") as watch:
            while True:
                watch.look()
                entry = await self._entry(client_id)
                if entry.room_id is not None:
                    result = await self._matched(client_id, entry)
                    watch.answer()
                    return result
                watch.idle()
                now = self.clock()
                fallback_at = entry.entered_at + self.policy.fallback_after
                if now >= fallback_at:
                    matched = await self.store.rematch(entry.entry_id, now, self.policy)
                    if matched is not None:
                        self._announce(matched)
                        return await self._result(client_id, entry.entry_id, matched)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    position = await self.store.queue_position(entry.entry_id)
                    return QueueResult(client_id, entry.entry_id, None, position, timed_out=True)
                if now < fallback_at:
                    remaining = min(remaining, fallback_at - now)
                await watch.sleep(remaining)

    async def leave(self, client_id: str) -> None:
        entry = await self._entry(client_id)
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

    async def state(self, client_id: str) -> QueueResult:
        """Where this queue entry stands now (matched, or its position), without blocking."""
        entry = await self._entry(client_id)
        if entry.room_id is not None:
            return await self._matched(client_id, entry)
        position = await self.store.queue_position(entry.entry_id)
        return QueueResult(client_id, entry.entry_id, None, position)

    def recheck(self) -> None:
        """Blocked waits look again (after a heartbeat: some may have waited past the
        fallback, or lost their partner-to-be)."""
        for entry_id in self._waiters:
            self.signals.notify(queue_key(entry_id))

    async def _entry(self, client_id: str) -> QueueEntry:
        if not isinstance(client_id, str) or not client_id:
            raise errors.invalid("client_id is empty. Pass the client_id enter_queue returned.")
        entry = await self.store.queue_entry(credentials.hash_secret(client_id))
        if entry is None or not credentials.matches(entry.secret_hash, client_id):
            raise errors.not_in_queue()
        self.tracker.seen(entry.entry_id)
        return entry

    async def _matched(self, client_id: str, entry: QueueEntry) -> QueueResult:
        assert entry.room_id is not None
        room = await self.store.room(entry.room_id)
        members = await self.store.members(entry.room_id)
        if room is None or len(members) < 2:
            # Matched earlier, and the partner has left since: the pair has ended.
            raise errors.chat_ended(entry.room_id)
        first, second = members[0], members[1]
        return await self._result(client_id, entry.entry_id, Matched(room, first, second))

    async def _result(self, client_id: str, entry_id: str, matched: Matched) -> QueueResult:
        unread = await self.store.unread(entry_id)  # the entry's id is its participant id
        return QueueResult(client_id, entry_id, matched, 0, unread=unread)

    def _announce(self, matched: Matched) -> Collection[Handoff]:
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
