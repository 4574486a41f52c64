"""The Redis store's retention: old messages and idle rooms removed, room by room."""

from __future__ import annotations

from redis import exceptions as rex

from mcp_chat.stores.redis.client import begin
from mcp_chat.stores.redis.codecs import as_scored, as_text_map, as_texts, message_of
from mcp_chat.stores.redis.writes import Writes
from mcp_chat.types import Pruned


class RetentionOps(Writes):
    """Retention (`Store.prune`)."""

    async def prune(self, messages_before: str | None, idle_before: str | None) -> Pruned:
        """Retention, room by room, over the index of every room (no keyspace scan)."""
        removed_messages = removed_rooms = 0
        with self._guard():
            room_ids = await self._ids(self._key("all"))
            idle: list[str] = []
            for room_id in room_ids:
                if messages_before is not None:
                    removed_messages += await self._prune_log(room_id, messages_before)
                if idle_before is not None and await self._newest(room_id) < idle_before:
                    idle.append(room_id)
            for room_id in idle:
                dropped = await self._drop_room(room_id)
                if dropped is not None:
                    removed_messages += dropped
                    removed_rooms += 1
        return Pruned(removed_messages, removed_rooms)

    async def _newest(self, room_id: str) -> str:
        """When the room was last active: its newest message, or its creation."""
        room_key, log_key, _, _ = self._room_keys(room_id)
        newest = as_scored(await self._redis.zrange(log_key, -1, -1, withscores=True))
        if newest:
            return message_of(room_id, newest[0][1], newest[0][0]).timestamp
        return (await self._field(room_key, "created_at")) or ""

    async def _prune_log(self, room_id: str, before: str) -> int:
        """Remove the room's messages older than `before`, except its newest. Messages are
        logged in time order, so the old ones are a prefix of the log."""
        _, log_key, _, keys_key = self._room_keys(room_id)
        oldest_kept: int | None = None
        start = 0
        while oldest_kept is None:
            chunk = as_scored(
                await self._redis.zrange(log_key, start, start + 199, withscores=True)
            )
            if not chunk:
                break
            for payload, seq in chunk:
                if message_of(room_id, seq, payload).timestamp >= before:
                    oldest_kept = int(seq)
                    break
            start += len(chunk)
        newest = as_scored(await self._redis.zrange(log_key, -1, -1, withscores=True))
        if not newest:
            return 0
        keep_from = min(oldest_kept or int(newest[0][1]), int(newest[0][1]))
        removed = int(await self._redis.zremrangebyscore(log_key, "-inf", f"({keep_from}"))
        if removed:
            # Keys of idempotent sends that point at removed messages go too.
            stale = [
                field
                for field, seq in as_text_map(await self._redis.hgetall(keys_key)).items()
                if int(seq) < keep_from
            ]
            if stale:
                await self._redis.hdel(keys_key, *stale)
            # So do their seqs among what each member sent.
            everyone = as_texts(await self._redis.smembers(self.keys.room_set(room_id)[-1]))
            async with self._redis.pipeline(transaction=False) as pipe:
                for participant_id in everyone:
                    sent = self.keys.sent(room_id, participant_id)
                    pipe.zremrangebyscore(sent, "-inf", f"({keep_from}")
                await pipe.execute()
        return removed

    async def _drop_room(self, room_id: str) -> int | None:
        """Remove a whole room: its keys, its participants (present or not) and the queue
        entries matched into them; the messages it had, or None if it was left.

        One room, in a transaction on its slot that watches the room: one that changed since
        it was found idle (a message, a join) is left for the next run. A room named in the
        index but not (or not yet) stored is left alone too: a join files a new room in the
        index just before it writes it."""
        room_keys = self.keys.room_set(room_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(*room_keys)
                if not await self._redis.exists(room_keys[0]):
                    return None
                participants, entries = await self._found_in(room_id)
                begin(pipe)
                pipe.zcard(room_keys[1])
                pipe.delete(*room_keys)
                for pid, _ in participants:
                    pipe.delete(self.keys.participant(room_id, pid), self.keys.sent(room_id, pid))
                removed, *_ = await pipe.execute()
            except rex.WatchError:
                return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in ("rooms", "open", "all"):
                pipe.zrem(self._key(index), room_id)
            for pid, entry in entries:
                pipe.delete(self.keys.entry(pid))
                pipe.hdel(self.keys.queue_secrets(), entry.get("secret_hash", ""))
            await pipe.execute()
        await self._unindex_participants(
            [(pid, fields.get("secret_hash", "")) for pid, fields in participants]
        )
        return int(removed)

    async def _found_in(
        self, room_id: str
    ) -> tuple[list[tuple[str, dict[str, str]]], list[tuple[str, dict[str, str]]]]:
        """The room's participants filed under its id (not those of a room set aside since),
        and the queue entries matched into it (an entry has the id of the participant it
        became)."""
        ids = as_texts(await self._redis.smembers(self.keys.room_set(room_id)[-1]))
        participants, entries = [], []
        for pid in ids:
            fields = as_text_map(await self._redis.hgetall(self.keys.participant(room_id, pid)))
            if fields.get("room_id") == room_id:
                participants.append((pid, fields))
            entry = as_text_map(await self._redis.hgetall(self.keys.entry(pid)))
            if entry.get("room_id") == room_id:
                entries.append((pid, entry))
        return participants, entries
