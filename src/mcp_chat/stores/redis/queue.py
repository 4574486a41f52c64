"""The Redis store's random-pairing queue (`matching`'s steps in one transaction each)."""

from __future__ import annotations

import dataclasses

from redis.asyncio.client import Pipeline

from mcp_chat import matching
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores.redis.client import begin
from mcp_chat.stores.redis.codecs import entry_of, fields_of
from mcp_chat.stores.redis.writes import Writes
from mcp_chat.types import Matched, QueueEntry


class QueueOps(Writes):
    """The queue of those waiting to be paired, and the pairs it makes."""

    async def _waiting(self) -> list[QueueEntry]:
        ids = await self._ids(self._key("queue"))
        found = await self._hashes([self._key("q", entry_id) for entry_id in ids])
        return [entry_of(f) for f in found if f]

    def _pair(self, pipe: Pipeline, waited: QueueEntry, seeker: QueueEntry, now: float) -> Matched:
        pair = matching.make_pair(waited, seeker, now)
        room = pair.room
        self._add_room(pipe, room)
        for member, event in zip((pair.first, pair.second), pair.events, strict=True):
            message = self._log(pipe, room.room_id, room.last_seq + 1, event)
            room = dataclasses.replace(room, last_seq=message.seq)
            self._add_participant(pipe, member, message.seq)
        for entry in (waited, seeker):
            matched_entry = dataclasses.replace(entry, room_id=room.room_id)
            pipe.hset(self._key("q", entry.entry_id), mapping=fields_of(matched_entry))
            pipe.hset(self._key("qsecrets"), entry.secret_hash, entry.entry_id)
            pipe.zrem(self._key("queue"), entry.entry_id)
            pipe.publish(self.channel, self._notice(f"queue:{entry.entry_id}"))
        pipe.publish(self.channel, self._notice(room.room_id))
        return Matched(room, pair.first, pair.second)

    async def enqueue(self, entry: QueueEntry, now: float, policy: MatchPolicy) -> Matched | None:
        async def body(pipe: Pipeline) -> Matched | None:
            pair = matching.on_entering(entry, await self._waiting(), now, policy)
            begin(pipe)
            if pair is None:
                pipe.hset(self._key("q", entry.entry_id), mapping=fields_of(entry))
                pipe.hset(self._key("qsecrets"), entry.secret_hash, entry.entry_id)
                pipe.zadd(self._key("queue"), {entry.entry_id: entry.entered_at})
                matched = None
            else:
                matched = self._pair(pipe, *pair, now)
            await pipe.execute()
            return matched

        return await self._transact([self._key("queue")], body)

    async def rematch(self, entry_id: str, now: float, policy: MatchPolicy) -> Matched | None:
        async def body(pipe: Pipeline) -> Matched | None:
            pair = matching.on_retry(entry_id, await self._waiting(), now, policy)
            if pair is None:
                return None
            begin(pipe)
            matched = self._pair(pipe, *pair, now)
            await pipe.execute()
            return matched

        return await self._transact([self._key("queue")], body)

    async def queue_entry(self, secret_hash: str) -> QueueEntry | None:
        with self._guard():
            entry_id = await self._field(self._key("qsecrets"), secret_hash)
            if entry_id is None:
                return None
            fields = await self._hash(self._key("q", entry_id))
        return entry_of(fields) if fields else None

    async def queue_position(self, entry_id: str) -> int:
        with self._guard():
            rank = await self._redis.zrank(self._key("queue"), entry_id)
        return 0 if rank is None else int(str(rank)) + 1

    async def leave_queue(self, entry_id: str) -> bool:
        return await self._run_dequeue(entry_id)
