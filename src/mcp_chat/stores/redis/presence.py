"""The Redis store's presence: signs of life, and the marks of `presence` and `rooms`."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping

from redis.asyncio.client import Pipeline

from mcp_chat import errors, presence, rooms
from mcp_chat.stores.redis.client import Moved, begin
from mcp_chat.stores.redis.codecs import as_texts, participant_of, room_of
from mcp_chat.stores.redis.writes import Writes
from mcp_chat.types import Kind, Message


class PresenceOps(Writes):
    """Signs of life, members marked gone, and their return."""

    # Each participant's mark is atomic on its own (one script); a batch of them is not one
    # transaction, and needs not be: every mark re-checks its conditions when it runs.

    async def _gone(self, participant_id: str, cutoff: str = "") -> Message | None:
        """Log that the participant is gone and set its gone flag, if that still applies when
        the script runs (another instance may have done it first)."""
        with self._guard():
            fields = await self._hash(self._key("p", participant_id))
        if not fields:
            return None
        participant = participant_of(fields)
        draft, _ = presence.mark(participant, Kind.DISCONNECTED)  # the flag: in the script
        status, *rest = await self._run_append(
            participant.room_id, participant_id, "gone", draft, cutoff=cutoff
        )
        if status != "ok":
            return None
        return Message.from_draft(participant.room_id, int(rest[0]), draft)

    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        # One round trip for the whole heartbeat: each script in the pipeline is atomic alone.
        with self._guard():
            async with self._redis.pipeline(transaction=False) as pipe:
                for some_id, when in seen.items():
                    await self._touch(
                        keys=[
                            self._key("p", some_id),
                            self._key("q", some_id),
                            self._key("present"),
                        ],
                        args=[repr(when), some_id],
                        client=pipe,
                    )
                flags = await pipe.execute()
        events: list[Message] = []
        for some_id, gone in zip(seen, flags, strict=True):
            if gone != "1":
                continue
            with contextlib.suppress(errors.ChatError):  # no free seat: it stays gone
                if event := await self.come_back(some_id):
                    events.append(event)
        return events

    async def come_back(self, participant_id: str) -> Message | None:
        async def run(room_id: str) -> Message | None:
            return await self._come_back(participant_id, room_id)

        return (await self._in_room(participant_id, run))[1]

    async def _come_back(self, participant_id: str, room_id: str) -> Message | None:
        room_key, _, members_key, _ = self._room_keys(room_id)
        p_key = self._key("p", participant_id)

        async def body(pipe: Pipeline) -> Message | None:
            fields = await self._hash(p_key)
            if not fields:
                raise errors.unknown_client()
            if fields["room_id"] != room_id:
                raise Moved
            participant = participant_of(fields)
            if participant.left:
                raise errors.left_room(room_id)
            room = room_of(await self._hash(room_key))
            if not rooms.may_come_back(room, participant):
                return None
            others = [m for m in await self._ids(members_key) if m != participant_id]
            members = await self._hashes([self._key("p", m) for m in others])
            rooms.check_return(room, rooms.seated(participant_of(f) for f in members if f))
            draft, _ = presence.mark(participant, Kind.RETURNED)  # the flag: below
            begin(pipe)
            message = self._log(pipe, room_id, room.last_seq + 1, draft)
            pipe.hset(p_key, "gone", 0)
            pipe.zadd(self._key("present"), {participant_id: participant.last_seen})
            pipe.publish(self.channel, self._notice(room_id))
            await pipe.execute()
            return message

        # The room's hash changes with every seat taken or given up (each logs an event), so
        # watching it sees a newcomer or another returner get there first.
        return await self._transact([p_key, room_key, members_key], body)

    async def disconnect(self, ids: Collection[str]) -> list[Message]:
        events: list[Message] = []
        for some_id in ids:
            await self._run_dequeue(some_id)
            if event := await self._gone(some_id):
                events.append(event)
        return events

    async def sweep(self, now: float, gone_after: float, stale_after: float) -> list[Message]:
        queue_cutoff = repr(presence.silent_since(now, stale_after))
        with self._guard():
            waiting = await self._ids(self._key("queue"))
        for entry_id in waiting:
            await self._run_dequeue(entry_id, queue_cutoff)
        cutoff = presence.silent_since(now, gone_after)
        with self._guard():
            silent = as_texts(
                await self._redis.zrange(self._key("present"), "-inf", cutoff, byscore=True)
            )
        events = []
        for participant_id in silent:
            if event := await self._gone(participant_id, repr(cutoff)):
                events.append(event)
        return events
