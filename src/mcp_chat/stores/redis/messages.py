"""The Redis store's messages: appending, claiming, peeking, counting what is unread, history."""

from __future__ import annotations

import contextlib
from typing import Any

from redis.asyncio.client import Pipeline

from mcp_chat import errors
from mcp_chat.stores.redis.client import begin, raise_for, unmoved
from mcp_chat.stores.redis.codecs import as_texts, message_of
from mcp_chat.stores.redis.writes import Writes
from mcp_chat.types import Appended, Claim, Draft, Message


class MessageOps(Writes):
    """The log of each room, and each participant's read position in it (`reading`, in Lua)."""

    async def append(self, participant_id: str, draft: Draft) -> Appended:
        dedup = "" if draft.key is None else f"{participant_id} {draft.key}"

        async def run(room_id: str) -> list[Any]:
            return unmoved(await self._run_append(room_id, participant_id, "text", draft, dedup))

        room_id, (status, *rest) = await self._in_room(participant_id, run)
        if status == "duplicate":
            # Stored by an earlier try, whose answer may have been store_unavailable for want
            # of replicas: acknowledged only once they have it.
            await self._replicated(room_id)
            return Appended(message_of(room_id, rest[0], rest[1]), True, int(rest[2]))
        raise_for(status, room_id)
        await self._replicated(room_id)
        return Appended(Message.from_draft(room_id, int(rest[0]), draft), False, int(rest[1]))

    async def keyed(self, participant_id: str, key: str) -> Message | None:
        # Not the cached room: a rare call, and its room may have been set aside.
        room_id = await self._stored_room(participant_id)
        with self._guard():
            _, log_key, _, keys_key = self._room_keys(room_id)
            seq = await self._field(keys_key, f"{participant_id} {key}")
            if seq is None:
                return None
            found = as_texts(await self._redis.zrange(log_key, seq, seq, byscore=True))
        # Retention may have removed the message since; its key then names nothing.
        return message_of(room_id, seq, found[0]) if found else None

    async def claim(
        self, participant_id: str, after: int | None, limit: int, through: int | None = None
    ) -> Claim:
        return await self._run_claim(participant_id, after, limit, through, move=True)

    async def peek(self, participant_id: str, after: int | None, limit: int) -> Claim:
        return await self._run_claim(participant_id, after, limit, None, move=False)

    async def _run_claim(
        self, participant_id: str, after: int | None, limit: int, through: int | None, move: bool
    ) -> Claim:
        async def run(room_id: str) -> list[Any]:
            room_key, log_key, _, _ = self._room_keys(room_id)
            with self._guard():
                return unmoved(
                    await self._claim(
                        keys=[self.keys.participant(room_id, participant_id), room_key, log_key],
                        args=[
                            "" if after is None else after,
                            limit,
                            participant_id,
                            room_id,
                            "" if through is None else through,
                            "1" if move else "0",
                        ],
                    )
                )

        room_id, (status, *rest) = await self._in_room(participant_id, run)
        raise_for(status, room_id)
        cursor, before, more, ended, *taken = rest
        if move:
            await self._replicated_read(room_id, participant_id, int(cursor), int(before))
        found = [message_of(room_id, taken[i + 1], taken[i]) for i in range(0, len(taken), 2)]
        return Claim(found, int(cursor), more == 1, ended == "1", room_id)

    async def _replicated_read(
        self, room_id: str, participant_id: str, cursor: int, before: int
    ) -> None:
        """With `min_replicas`: a read position lost in a failover would deliver its messages
        again, so a claim is answered once replicas have it. If they do not, the position goes
        back (unless it moved on since) before the call answers store_unavailable: the same
        call again gets the same messages. (Should the node die in that instant, a replica may
        keep the moved position: what it skipped is in the history, and `after` reads it.)"""
        if cursor == before:
            return
        try:
            await self._replicated(room_id)
        except errors.ChatError:
            p_key = self.keys.participant(room_id, participant_id)

            async def body(pipe: Pipeline) -> None:
                if await self._field(p_key, "cursor") == str(cursor):
                    begin(pipe)
                    pipe.hset(p_key, "cursor", before)
                    await pipe.execute()

            with contextlib.suppress(errors.ChatError):
                await self._transact([p_key], body)
            raise

    async def unread(self, participant_id: str) -> int:
        async def run(room_id: str) -> list[Any]:
            _, log_key, _, _ = self._room_keys(room_id)
            with self._guard():
                return unmoved(
                    await self._unread(
                        keys=[
                            self.keys.participant(room_id, participant_id),
                            log_key,
                            self.keys.sent(room_id, participant_id),
                        ],
                        args=[participant_id, room_id],
                    )
                )

        room_id, (status, *rest) = await self._in_room(participant_id, run)
        raise_for(status, room_id)
        return int(rest[0])

    async def history(
        self, room_id: str, after: int | None, before: int | None, limit: int
    ) -> list[Message]:
        _, log_key, _, _ = self._room_keys(room_id)
        if after is not None:
            low, high, desc = f"({after}", "+inf", False
        else:
            low, high, desc = "+inf" if before is None else f"({before}", "-inf", True
        with self._guard():
            found: list[Any] = await self._redis.zrange(
                log_key, low, high, desc=desc, byscore=True, offset=0, num=limit, withscores=True
            )
        page = [message_of(room_id, seq, str(payload)) for payload, seq in found]
        return page[::-1] if desc else page
