"""Writes that several of the Redis store's operations share: a room, a message, a
participant, an ended room set aside, and the append and dequeue scripts run."""

from __future__ import annotations

import dataclasses
from typing import Any

from redis.asyncio.client import Pipeline

from mcp_chat import rooms
from mcp_chat.stores.redis.client import Client, tag_of
from mcp_chat.stores.redis.codecs import as_texts, created_score, fields_of, payload_of
from mcp_chat.types import Draft, Message, Participant, Room


class Writes(Client):
    """Writes queued in a transaction's pipeline, the indexes written apart from it, and the
    append and dequeue scripts.

    A room's transaction touches only the room's slot. The keys that span rooms (the room
    indexes, `present`, where each participant is filed and its secret) are written apart:
    additions before the room's write (an index may name a room or a participant that is not
    there yet, or no longer: readers check), removals after it."""

    async def _index_room(self, room: Room) -> None:
        """Before a room is created: file it in the indexes of open (and public) rooms."""
        score = created_score(room.created_at)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key("open"), {room.room_id: score})
            pipe.zadd(self._key("all"), {room.room_id: score})
            if not room.private:
                pipe.zadd(self._key("rooms"), {room.room_id: score})
            await pipe.execute()

    async def _index_participant(self, p: Participant, located: bool = True) -> None:
        """Before a participant is stored: its secret, its presence, and (unless `located` is
        False: see queue.py) where it is filed."""
        async with self._redis.pipeline(transaction=False) as pipe:
            if located:
                pipe.set(self.keys.located(p.participant_id), tag_of(p.room_id))
            pipe.set(self.keys.secret(p.secret_hash), p.participant_id)
            pipe.zadd(self._key("present"), {p.participant_id: p.last_seen})
            await pipe.execute()
        if located:
            self._tag_of[p.participant_id] = tag_of(p.room_id)

    async def _unindex_participants(self, ps: list[tuple[str, str]]) -> None:
        """Forget (participant id, secret hash) pairs: never stored, or removed."""
        if not ps:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for participant_id, secret_hash in ps:
                pipe.delete(self.keys.located(participant_id))
                pipe.delete(self.keys.secret(secret_hash))
                pipe.zrem(self._key("present"), participant_id)
            await pipe.execute()
        for participant_id, _ in ps:
            self._tag_of.pop(participant_id, None)
            self._room_of.pop(participant_id, None)

    async def _unindex_room(self, room_id: str, *absent: str) -> None:
        """After a room ended: out of the indexes of open rooms; `absent` out of `present`."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._key("rooms"), room_id)
            pipe.zrem(self._key("open"), room_id)
            if absent:
                pipe.zrem(self._key("present"), *absent)
            await pipe.execute()

    def _add_room(self, pipe: Pipeline, room: Room) -> None:
        key, *_ = self._room_keys(room.room_id)
        pipe.hset(key, mapping=fields_of(room))

    def _log(self, pipe: Pipeline, room_id: str, seq: int, draft: Draft) -> Message:
        key, log_key, _, _ = self._room_keys(room_id)
        pipe.hset(key, "last_seq", seq)
        pipe.zadd(log_key, {payload_of(draft): seq})
        pipe.zadd(self.keys.sent(room_id, draft.sender_id), {str(seq): seq})
        return Message.from_draft(room_id, seq, draft)

    def _add_participant(self, pipe: Pipeline, p: Participant, order: int) -> None:
        _, _, members, _ = self._room_keys(p.room_id)
        # `indexed`: its sent messages are kept in its `sent` key, for counting what it has
        # not read.
        pipe.hset(
            self.keys.participant(p.room_id, p.participant_id),
            mapping={**fields_of(p), "indexed": 1},
        )
        pipe.zadd(members, {p.participant_id: order})
        pipe.sadd(self.keys.room_set(p.room_id)[-1], p.participant_id)

    def _room_key_set(self, room_id: str) -> list[str]:
        return self.keys.room_set(room_id)

    async def _watch_to_set_aside(self, pipe: Pipeline, room_id: str) -> SetAside:
        """Before `_set_aside`: watch what it moves, read what it needs, and file the archive
        in the retention index (an index may name a room not there yet)."""
        keys = self._room_key_set(room_id)
        await pipe.watch(*keys)
        found = SetAside(
            archive=rooms.archive_id(room_id),
            keys=[k for k in keys if await self._redis.exists(k)],  # RENAME needs them there
            everyone=as_texts(await self._redis.smembers(keys[-1])),
            score=await self._redis.zscore(self._key("all"), room_id),
        )
        if found.score is not None:
            await self._redis.zadd(self._key("all"), {found.archive: found.score})
        return found

    def _set_aside(self, pipe: Pipeline, room_id: str, found: SetAside) -> None:
        """Keep an ended conversation, with everyone who was in it, under `found.archive`
        (queued in `pipe`'s transaction: the archive's keys share the room's slot). Other
        processes that cached a participant's room learn of the move from the scripts'
        'moved' answer (see `_in_room`). The room's own entry in the retention index stays,
        for the room that takes its name."""
        renamed = dict(
            zip(self._room_key_set(room_id), self._room_key_set(found.archive), strict=True)
        )
        for key in found.keys:
            # As a command: redis-py's cluster pipeline blocks its `rename` method (keys may
            # lie in two slots), and these share one.
            pipe.execute_command("RENAME", key, renamed[key])
        for participant_id in found.everyone:
            pipe.hset(self.keys.participant(room_id, participant_id), "room_id", found.archive)
            self._room_of.pop(participant_id, None)

    async def _run_append(
        self,
        room_id: str,
        participant_id: str,
        mode: str,
        draft: Draft,
        dedup: str = "",
        cutoff: str = "",
    ) -> list[Any]:
        room_key, log_key, _, keys_key = self._room_keys(room_id)
        with self._guard():
            result = list(
                await self._append(
                    keys=[
                        self.keys.participant(room_id, participant_id),
                        room_key,
                        log_key,
                        keys_key,
                        self.keys.sent(room_id, participant_id),
                    ],
                    args=[
                        mode,
                        payload_of(draft),
                        dedup,
                        self.channel,
                        self._notice(room_id),
                        participant_id,
                        cutoff,
                        room_id,
                    ],
                )
            )
            if result[0] == "ok":
                await self._announce(room_id)
                if mode == "gone":
                    await self._redis.zrem(self._key("present"), participant_id)
        return result

    async def _run_dequeue(self, entry_id: str, cutoff: str = "") -> bool:
        """Remove a waiting entry (never a matched one); with `cutoff`, only if silent since."""
        with self._guard():
            removed = await self._dequeue(
                keys=[self.keys.entry(entry_id), self.keys.queue(), self.keys.queue_secrets()],
                args=[entry_id, cutoff],
            )
        return bool(removed)


@dataclasses.dataclass(frozen=True, slots=True)
class SetAside:
    """What setting an ended room aside moves: the id it is kept under, its keys that exist,
    its participants, and its score in the retention index."""

    archive: str
    keys: list[str]
    everyone: list[str]
    score: float | None
