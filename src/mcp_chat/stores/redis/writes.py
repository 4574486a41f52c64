"""Writes that several of the Redis store's operations share: a room, a message, a
participant, an ended room set aside, and the append and dequeue scripts run."""

from __future__ import annotations

import dataclasses
from typing import Any

from redis.asyncio.client import Pipeline

from mcp_chat import rooms
from mcp_chat.stores.redis.client import Client
from mcp_chat.stores.redis.codecs import as_texts, created_score, fields_of, payload_of
from mcp_chat.types import Draft, Message, Participant, Room


class Writes(Client):
    """Writes queued in a transaction's pipeline, and the append script."""

    def _add_room(self, pipe: Pipeline, room: Room) -> None:
        key, *_ = self._room_keys(room.room_id)
        pipe.hset(key, mapping=fields_of(room))
        pipe.zadd(self._key("open"), {room.room_id: created_score(room.created_at)})
        pipe.zadd(self._key("all"), {room.room_id: created_score(room.created_at)})
        if not room.private:
            pipe.zadd(self._key("rooms"), {room.room_id: created_score(room.created_at)})

    def _log(self, pipe: Pipeline, room_id: str, seq: int, draft: Draft) -> Message:
        key, log_key, _, _ = self._room_keys(room_id)
        pipe.hset(key, "last_seq", seq)
        pipe.zadd(log_key, {payload_of(draft): seq})
        pipe.zadd(self._key("p", draft.sender_id, "sent"), {str(seq): seq})
        return Message.from_draft(room_id, seq, draft)

    def _add_participant(self, pipe: Pipeline, p: Participant, order: int) -> None:
        _, _, members, _ = self._room_keys(p.room_id)
        # `indexed`: its sent messages are kept in P:p:ID:sent, for counting what it has not read.
        pipe.hset(self._key("p", p.participant_id), mapping={**fields_of(p), "indexed": 1})
        pipe.hset(self._key("secrets"), p.secret_hash, p.participant_id)
        pipe.zadd(members, {p.participant_id: order})
        pipe.sadd(self._key("room", p.room_id, "everyone"), p.participant_id)
        pipe.zadd(self._key("present"), {p.participant_id: p.last_seen})

    def _room_key_set(self, room_id: str) -> list[str]:
        return [*self._room_keys(room_id), self._key("room", room_id, "everyone")]

    async def _watch_to_set_aside(self, pipe: Pipeline, room_id: str) -> SetAside:
        """Before `_set_aside`: watch what it moves, and read what it needs."""
        keys = self._room_key_set(room_id)
        await pipe.watch(*keys)
        return SetAside(
            keys=[k for k in keys if await self._redis.exists(k)],  # RENAME needs them there
            everyone=as_texts(await self._redis.smembers(keys[-1])),
            score=await self._redis.zscore(self._key("all"), room_id),
        )

    def _set_aside(self, pipe: Pipeline, room_id: str, found: SetAside) -> None:
        """Keep an ended conversation, with everyone who was in it, under `rooms.archive_id`
        (queued in `pipe`'s transaction). Other processes that cached a participant's room
        learn of the move from the scripts' 'moved' answer (see `_in_room`)."""
        archive = rooms.archive_id(room_id)
        renamed = dict(zip(self._room_key_set(room_id), self._room_key_set(archive), strict=True))
        for key in found.keys:
            pipe.rename(key, renamed[key])
        for participant_id in found.everyone:
            pipe.hset(self._key("p", participant_id), "room_id", archive)
            self._room_of.pop(participant_id, None)
        pipe.zrem(self._key("all"), room_id)
        if found.score is not None:
            pipe.zadd(self._key("all"), {archive: found.score})

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
            result = await self._append(
                keys=[
                    self._key("p", participant_id),
                    room_key,
                    log_key,
                    keys_key,
                    self._key("present"),
                    self._key("p", participant_id, "sent"),
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
        return list(result)

    async def _run_dequeue(self, entry_id: str, cutoff: str = "") -> bool:
        """Remove a waiting entry (never a matched one); with `cutoff`, only if silent since."""
        with self._guard():
            removed = await self._dequeue(
                keys=[self._key("q", entry_id), self._key("queue"), self._key("qsecrets")],
                args=[entry_id, cutoff],
            )
        return bool(removed)


@dataclasses.dataclass(frozen=True, slots=True)
class SetAside:
    """What setting an ended room aside moves: its keys that exist, its participants, and
    its score in the retention index."""

    keys: list[str]
    everyone: list[str]
    score: float | None
