"""The Redis store's presence: signs of life, and the marks of `presence` and `rooms`."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping

from redis.asyncio.client import Pipeline

from mcp_chat import errors, presence, rooms
from mcp_chat.stores.redis import lua
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
            fields = await self._participant_fields(participant_id)
        if not fields:
            with self._guard():  # filed in `present` by a join that did not happen
                await self._redis.zrem(self._key("present"), participant_id)
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
        # One round trip for the whole heartbeat (after the lookup of participants this
        # process has not filed yet): each script in the pipeline is atomic alone. An id is a
        # participant's, a queue entry's, or both (a matched entry becomes a participant).
        with self._guard():
            tags = {some_id: await self._tag(some_id) for some_id in seen}
            async with self._redis.pipeline(transaction=False) as pipe:
                for some_id, when in seen.items():
                    tag = tags[some_id]
                    if tag is not None:
                        pipe.eval(lua.TOUCH, 1, self.keys.participant(tag, some_id), repr(when))
                        pipe.zadd(self._key("present"), {some_id: when}, xx=True, gt=True)
                    pipe.eval(lua.TOUCH, 1, self.keys.entry(some_id), repr(when))
                replies = iter(await pipe.execute())
        events: list[Message] = []
        for some_id in seen:
            gone = next(replies) if tags[some_id] is not None else ""
            if tags[some_id] is not None:
                next(replies)  # present
            next(replies)  # the queue entry
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
        p_key = self.keys.participant(room_id, participant_id)

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
            members = await self._hashes([self.keys.participant(room_id, m) for m in others])
            rooms.check_return(room, rooms.seated(participant_of(f) for f in members if f))
            draft, _ = presence.mark(participant, Kind.RETURNED)  # the flag: below
            begin(pipe)
            message = self._log(pipe, room_id, room.last_seq + 1, draft)
            pipe.hset(p_key, "gone", 0)
            self._publish(pipe, room_id)
            await pipe.execute()
            await self._redis.zadd(self._key("present"), {participant_id: participant.last_seen})
            await self._announce(room_id)
            return message

        # The room's hash changes with every seat taken or given up (each logs an event), so
        # watching it sees a newcomer or another returner get there first.
        message = await self._transact([p_key, room_key, members_key], body)
        if message is not None:
            await self._replicated(room_id)
        return message

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
            waiting = await self._ids(self.keys.queue())
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
