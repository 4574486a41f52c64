"""The Redis store's rooms: joining, leaving, members, the listing and the counts."""

from __future__ import annotations

import dataclasses

from redis.asyncio.client import Pipeline

from mcp_chat import errors, mentions, rooms
from mcp_chat.stores.redis.client import Moved, begin
from mcp_chat.stores.redis.codecs import as_text_map, as_texts, participant_of, room_of
from mcp_chat.stores.redis.writes import SetAside, Writes
from mcp_chat.types import Counts, Draft, Joined, Left, Participant, Room, RoomSummary

_READINESS_TTL_MS = 60_000
"""How long the key a readiness check writes stays."""


class RoomOps(Writes):
    """Rooms and who is in them."""

    async def join(
        self,
        room_id: str,
        capacity: int,
        participant: Participant,
        event: Draft,
        invite_hash: str | None = None,
    ) -> Joined:
        room_key, _, members_key, _ = self._room_keys(room_id)
        indexed = False

        async def body(pipe: Pipeline) -> Joined:
            nonlocal indexed
            fields = await self._hash(room_key)
            set_aside: SetAside | None = None
            if fields and rooms.starts_anew(room_of(fields)):
                set_aside = await self._watch_to_set_aside(pipe, room_id)
                fields = {}
            member_ids = [] if set_aside else await self._ids(members_key)
            members = [
                participant_of(f)
                for f in await self._hashes(
                    [self.keys.participant(room_id, pid) for pid in member_ids]
                )
            ]
            created = not fields
            room = (
                Room(room_id, capacity, event.timestamp, 0, False, invite_hash)
                if created
                else room_of(fields)
            )
            rooms.check_join(room, rooms.seated(members), invite_hash)
            # The newcomer's read position starts at the beginning: what was said before it
            # arrived is delivered too.
            stored = dataclasses.replace(participant, cursor=0)
            if created:
                await self._index_room(room)
            await self._index_participant(stored)
            indexed = True
            begin(pipe)
            if set_aside:
                self._set_aside(pipe, room_id, set_aside)
            if created:
                self._add_room(pipe, room)
            message = self._log(pipe, room_id, room.last_seq + 1, event)
            self._add_participant(pipe, stored, message.seq)
            self._publish(pipe, room_id)
            await pipe.execute()
            await self._announce(room_id)
            room = dataclasses.replace(room, last_seq=message.seq)
            return Joined(stored, room, created, [*members, stored])

        try:
            joined = await self._transact([room_key, members_key], body)
        except errors.ChatError:
            if indexed:  # filed by a try that lost a race, then refused (the room filled up)
                with self._guard():
                    await self._unindex_participants(
                        [(participant.participant_id, participant.secret_hash)]
                    )
            raise
        await self._replicated(room_id)
        return joined

    async def participant(self, secret_hash: str) -> Participant | None:
        with self._guard():
            participant_id = await self._redis.get(self.keys.secret(secret_hash))
            if participant_id is None:
                return None
            fields = await self._participant_fields(str(participant_id))
        return participant_of(fields) if fields else None

    async def leave(self, participant_id: str, event: Draft) -> Left:
        async def run(room_id: str) -> Left:
            return await self._leave(participant_id, room_id, event)

        return (await self._in_room(participant_id, run))[1]

    async def _leave(self, participant_id: str, room_id: str, event: Draft) -> Left:
        room_key, _, members_key, _ = self._room_keys(room_id)
        p_key = self.keys.participant(room_id, participant_id)

        async def body(pipe: Pipeline) -> Left:
            fields = await self._hash(p_key)
            if not fields:
                raise errors.unknown_client()
            if fields["room_id"] != room_id:
                raise Moved
            if fields["left"] == "1":
                raise errors.left_room(room_id)
            room = room_of(await self._hash(room_key))
            others = [m for m in await self._ids(members_key) if m != participant_id]
            seated = rooms.seated(
                participant_of(f)
                for f in await self._hashes([self.keys.participant(room_id, m) for m in others])
            )
            ended = room.ended or rooms.ends_after_leave(room, len(others), seated)
            begin(pipe)
            message = self._log(
                pipe, room_id, room.last_seq + 1, mentions.left(event, others, ended)
            )
            pipe.hset(p_key, mapping={"left": 1, "cursor": message.seq})
            pipe.zrem(members_key, participant_id)
            ending = ended and not room.ended
            if ending:
                pipe.hset(room_key, "ended", 1)
            self._publish(pipe, room_id)
            await pipe.execute()
            await self._announce(room_id)
            if ending:
                # Nobody in an ended room is watched for silence any more.
                await self._unindex_room(room_id, participant_id, *others)
            else:
                await self._redis.zrem(self._key("present"), participant_id)
            return Left(message, ended)

        left = await self._transact([p_key, room_key, members_key], body)
        await self._replicated(room_id)
        return left

    async def room(self, room_id: str) -> Room | None:
        with self._guard():
            fields = await self._hash(self._room_keys(room_id)[0])
        return room_of(fields) if fields else None

    async def check_writable(self) -> None:
        # A read says nothing of writes: a replica (a URL left on the old primary after a
        # failover) answers reads and refuses every write. One key of its own, which expires.
        with self._guard():
            await self._redis.set(self._key("readiness"), self._origin, px=_READINESS_TTL_MS)

    async def members(self, room_id: str) -> list[Participant]:
        with self._guard():
            ids = await self._ids(self._room_keys(room_id)[2])
            found = await self._hashes([self.keys.participant(room_id, pid) for pid in ids])
        return [participant_of(f) for f in found if f]

    async def rooms(self, limit: int) -> list[RoomSummary]:
        """Open public rooms newest first, a page at a time, until `limit` of them are
        listed (`rooms.listed`: one whose members are all gone is passed over)."""
        summaries: list[RoomSummary] = []
        start = 0
        with self._guard():
            while len(summaries) < limit:
                ids = as_texts(
                    await self._redis.zrange(
                        self._key("rooms"), start, start + limit - 1, desc=True
                    )
                )
                start += limit
                for room_id in ids:
                    room, seated = await self._seats(room_id)
                    if room is not None and rooms.listed(room, seated):
                        summaries.append(
                            RoomSummary(room_id, room.capacity, seated, False, room.created_at)
                        )
                if len(ids) < limit:
                    break
        return summaries[:limit]

    async def _seats(self, room_id: str) -> tuple[Room | None, int]:
        """The room, and how many of its members hold a seat (`rooms.seated`)."""
        room_key, _, members_key, _ = self._room_keys(room_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(room_key)
            pipe.zrange(members_key, 0, -1)
            fields, member_ids = await pipe.execute()
        if not fields:
            return None, 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for participant_id in as_texts(member_ids):
                pipe.hget(self.keys.participant(room_id, participant_id), "gone")
            flags = await pipe.execute()
        return room_of(as_text_map(fields)), sum(
            1 for flag in flags if flag is not None and flag != "1"
        )

    async def counts(self) -> Counts:
        with self._guard():
            open_ids = await self._ids(self._key("open"))
            async with self._redis.pipeline(transaction=False) as pipe:
                for room_id in open_ids:
                    room_key, _, members_key, _ = self._room_keys(room_id)
                    pipe.hget(room_key, "ended")
                    pipe.zcard(members_key)
                found = await pipe.execute()
        # The index may name a room about to be stored, or one just ended (see writes.py).
        sizes = [int(n) for ended, n in zip(found[::2], found[1::2], strict=True) if ended == "0"]
        return Counts(len(sizes), sum(sizes))
