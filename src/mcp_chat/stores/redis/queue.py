"""The Redis store's random-pairing queue (`matching`'s steps in one transaction each)."""

from __future__ import annotations

import dataclasses

from redis import exceptions as rex
from redis.asyncio.client import Pipeline

from mcp_chat import matching
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores.redis.client import begin, tag_of
from mcp_chat.stores.redis.codecs import entry_of, fields_of
from mcp_chat.stores.redis.writes import Writes
from mcp_chat.types import Matched, QueueEntry


class QueueOps(Writes):
    """The queue of those waiting to be paired, and the pairs it makes.

    The queue's keys share one slot; a pair's room lives in its own. So pairing is two steps:
    the room is made with both in it (a transaction on the room's slot, under a fresh id that
    nobody knows yet), then the queue's transaction marks both entries matched into it. If the
    queue changed meanwhile, that transaction is dropped and the room is removed again.

    Racers pair the same entries into rooms of their own, and a participant's id is its
    entry's: so what files a participant by its id (`keys.located`) is written only by the
    winner, after the queue's transaction; until then a participant is found through its
    matched entry (`client._tag`). Its secret and presence name the same id whoever wins."""

    async def _waiting(self) -> list[QueueEntry]:
        ids = await self._ids(self.keys.queue())
        found = await self._hashes([self.keys.entry(entry_id) for entry_id in ids])
        return [entry_of(f) for f in found if f]

    async def _open_pair(self, waited: QueueEntry, seeker: QueueEntry, now: float) -> Matched:
        pair = matching.make_pair(waited, seeker, now)
        room = pair.room
        await self._index_room(room)
        async with self._redis.pipeline(transaction=True) as pipe:
            self._add_room(pipe, room)
            for member, event in zip((pair.first, pair.second), pair.events, strict=True):
                await self._index_participant(member, located=False)
                message = self._log(pipe, room.room_id, room.last_seq + 1, event)
                room = dataclasses.replace(room, last_seq=message.seq)
                self._add_participant(pipe, member, message.seq)
            await pipe.execute()
        return Matched(room, pair.first, pair.second)

    async def _close_pair(self, matched: Matched) -> None:
        """Undo `_open_pair` (the queue's transaction lost a race)."""
        room_id = matched.room.room_id
        pair = (matched.first, matched.second)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*self.keys.room_set(room_id))
            for p in pair:
                pipe.delete(
                    self.keys.participant(room_id, p.participant_id),
                    self.keys.sent(room_id, p.participant_id),
                )
            await pipe.execute()
        await self._unindex_room(room_id)
        await self._redis.zrem(self._key("all"), room_id)

    def _mark_matched(self, pipe: Pipeline, matched: Matched, entries: list[QueueEntry]) -> None:
        for entry in entries:
            matched_entry = dataclasses.replace(entry, room_id=matched.room.room_id)
            pipe.hset(self.keys.entry(entry.entry_id), mapping=fields_of(matched_entry))
            pipe.hset(self.keys.queue_secrets(), entry.secret_hash, entry.entry_id)
            pipe.zrem(self.keys.queue(), entry.entry_id)
            self._publish(pipe, f"queue:{entry.entry_id}")
        self._publish(pipe, matched.room.room_id)

    async def _settle(
        self, pipe: Pipeline, pair: tuple[QueueEntry, QueueEntry] | None, now: float
    ) -> Matched | None:
        """Make the pair's room (if there is a pair), then begin the queue's transaction with
        the entries marked matched into it; the caller queues the rest and `_commit`s."""
        matched = None if pair is None else await self._open_pair(*pair, now)
        begin(pipe)
        if matched is not None and pair is not None:
            self._mark_matched(pipe, matched, list(pair))
        return matched

    async def _commit(self, pipe: Pipeline, matched: Matched | None) -> None:
        try:
            await pipe.execute()
        except rex.WatchError:
            if matched is not None:
                await self._close_pair(matched)
            raise
        if matched is not None:
            pair = (matched.first, matched.second)
            async with self._redis.pipeline(transaction=False) as locate:
                for p in pair:
                    locate.set(self.keys.located(p.participant_id), tag_of(p.room_id))
                await locate.execute()
            ids = [p.participant_id for p in pair]
            await self._announce(*[f"queue:{i}" for i in ids], matched.room.room_id)

    async def enqueue(self, entry: QueueEntry, now: float, policy: MatchPolicy) -> Matched | None:
        async def body(pipe: Pipeline) -> Matched | None:
            pair = matching.on_entering(entry, await self._waiting(), now, policy)
            matched = await self._settle(pipe, pair, now)
            if matched is None:
                pipe.hset(self.keys.entry(entry.entry_id), mapping=fields_of(entry))
                pipe.hset(self.keys.queue_secrets(), entry.secret_hash, entry.entry_id)
                pipe.zadd(self.keys.queue(), {entry.entry_id: entry.entered_at})
            await self._commit(pipe, matched)
            return matched

        return await self._replicated_pair(await self._transact([self.keys.queue()], body))

    async def rematch(self, entry_id: str, now: float, policy: MatchPolicy) -> Matched | None:
        async def body(pipe: Pipeline) -> Matched | None:
            pair = matching.on_retry(entry_id, await self._waiting(), now, policy)
            if pair is None:
                return None
            matched = await self._settle(pipe, pair, now)
            await self._commit(pipe, matched)
            return matched

        return await self._replicated_pair(await self._transact([self.keys.queue()], body))

    async def _replicated_pair(self, matched: Matched | None) -> Matched | None:
        if matched is not None:
            await self._replicated(matched.room.room_id)
        await self._replicated()
        return matched

    async def queue_entry(self, secret_hash: str) -> QueueEntry | None:
        with self._guard():
            entry_id = await self._field(self.keys.queue_secrets(), secret_hash)
            if entry_id is None:
                return None
            fields = await self._hash(self.keys.entry(entry_id))
        return entry_of(fields) if fields else None

    async def queue_position(self, entry_id: str) -> int:
        with self._guard():
            rank = await self._redis.zrank(self.keys.queue(), entry_id)
        return 0 if rank is None else int(str(rank)) + 1

    async def leave_queue(self, entry_id: str) -> bool:
        return await self._run_dequeue(entry_id)
