"""The Redis store's connection: the URL, the pool, the scripts, keys, the guard that turns an
outage into store_unavailable, and optimistic transactions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from redis import exceptions as rex
from redis.asyncio.client import Pipeline

from mcp_chat import errors, rooms
from mcp_chat.stores.base import Outage, Store, Unseated
from mcp_chat.stores.redis import lua
from mcp_chat.stores.redis.codecs import as_text_map, as_texts
from mcp_chat.stores.redis.connect import open_client, target_of
from mcp_chat.stores.redis.keys import Keys
from mcp_chat.stores.redis.replicas import Replicas

log = logging.getLogger("mcp_chat.stores.redis")

T = TypeVar("T")

_MAX_ATTEMPTS = 100
"""Optimistic transactions start again when another instance got there first; this many
losses in a row means something is wrong, and the caller gets a retryable error."""
_ROOM_CACHE_SIZE = 100_000
UNAVAILABLE = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ReadOnlyError,
    rex.ClusterError,  # a cluster failing over: CLUSTERDOWN, MASTERDOWN
    rex.RedisClusterException,  # no node reachable, a slot not covered
    rex.MovedError,  # a slot moved while a transaction watched it
    rex.TryAgainError,
    OSError,
)


class Client(Store):
    """What every operation of the Redis store stands on."""

    def __init__(self, url: str) -> None:
        self.target = target_of(url)
        self._url, self.prefix = self.target.url, self.target.prefix
        self.cluster = self.target.cluster
        self.keys = Keys(self.prefix)
        self._origin = secrets.token_hex(6)  # this process, in the notices it publishes
        self._redis, self._cluster = open_client(self.target)
        self._replicas = Replicas(self._redis, self._cluster, self.target)
        self._append = self._redis.register_script(lua.APPEND)
        self._claim = self._redis.register_script(lua.CLAIM)
        self._unread = self._redis.register_script(lua.UNREAD)
        self._dequeue = self._redis.register_script(lua.DEQUEUE)
        # participant id -> room id; changes only when an ended room is set aside (`_in_room`)
        self._room_of: dict[str, str] = {}
        # participant id -> the public id of its room, which never changes (see keys.py)
        self._tag_of: dict[str, str] = {}
        self._outage = Outage("Redis", log)
        # One Redis: notices go out on one channel, inside each script and transaction. A
        # cluster: on the sharded channel of the room's bucket, once the write is done.
        self.channel = "" if self.cluster else self._key("changes")

    # -- keys and plumbing -------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Redis being down, restarting or read-only becomes a clear, retryable ChatError. The
        log says why once when calls start failing, and once when Redis answers again."""
        try:
            yield
        except rex.AuthenticationError as exc:
            raise errors.ChatError(
                errors.Code.STORE_UNAVAILABLE,
                "The message store (Redis) refused this server's credentials; nothing was "
                "changed. The server's operator must fix the store URL; retrying will not help "
                "until then.",
            ) from exc
        except UNAVAILABLE as exc:
            self._outage.failed(exc)
            raise unavailable(exc) from exc
        self._outage.passed(None)

    def _key(self, *parts: str) -> str:
        return self.keys.key(*parts)

    def _room_keys(self, room_id: str) -> tuple[str, str, str, str]:
        """The room's hash, log, members and message keys."""
        return self.keys.room(room_id)

    def _notice(self, key: str) -> str:
        return f"{self._origin} {key}"

    def _publish(self, pipe: Pipeline, key: str) -> None:
        """Announce a change to `key` in `pipe`'s transaction (one Redis); on a cluster,
        `_announce` does it once the transaction is done."""
        if not self.cluster:
            pipe.publish(self.channel, self._notice(key))

    async def _announce(self, *keys: str) -> None:
        """On a cluster, publish change notices on their sharded channels. The write they
        announce is done: a notice that cannot go out is logged, not raised (a retried write
        would be written twice); waits it would have woken wake at their timeout, or when the
        change feed finds the node gone and wakes every wait."""
        if not self.cluster:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.spublish(self.keys.channel(key), self._notice(key))
                await pipe.execute()
        except UNAVAILABLE as exc:
            log.warning("a change notice was not published (%s)", type(exc).__name__)

    async def _replicated(self, room_id: str | None = None) -> None:
        """With `min_replicas=N`: return once N replicas have every write made so far to the
        node of `room_id`'s slot (or the queue's), else raise store_unavailable."""
        with self._guard():
            key = self.keys.queue() if room_id is None else self.keys.room(room_id)[0]
            await self._replicas.confirm(key)

    async def _transact(self, keys: list[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run `body` under WATCH of `keys`; it reads, decides, then writes after `multi()`.
        If another client changed a watched key meanwhile, the write is dropped and it runs
        again on fresh data."""
        with self._guard():
            for attempt in range(_MAX_ATTEMPTS):
                async with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(*keys)
                        return await body(pipe)
                    except rex.WatchError:
                        pass
                # Lost a race: step back a random moment, so that many racers do not all
                # collide again on the next round.
                await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 10)))
            raise unavailable(RuntimeError("too much contention"))

    async def _participant_room(self, participant_id: str) -> str:
        room_id = self._room_of.get(participant_id)
        if room_id is None:
            room_id = await self._stored_room(participant_id)
            if len(self._room_of) >= _ROOM_CACHE_SIZE:
                self._room_of.clear()
            self._room_of[participant_id] = room_id
        return room_id

    async def _stored_room(self, participant_id: str) -> str:
        """The participant's room as stored now (not as cached)."""
        with self._guard():
            tag = await self._tag(participant_id)
            room_id = (
                None
                if tag is None
                else await self._field(self.keys.participant(tag, participant_id), "room_id")
            )
        if room_id is None:
            raise errors.unknown_client()
        return room_id

    async def _tag(self, participant_id: str) -> str | None:
        """The public id of the participant's room (None for no such participant)."""
        tag = self._tag_of.get(participant_id)
        if tag is None:
            found = await self._redis.get(self.keys.located(participant_id))
            if found is None:  # one just paired by the queue? (see queue.py)
                found = await self._field(self.keys.entry(participant_id), "room_id")
            if found is None:
                return None
            found = tag_of(str(found))
            if len(self._tag_of) >= _ROOM_CACHE_SIZE:
                self._tag_of.clear()
            self._tag_of[participant_id] = tag = str(found)
        return tag

    async def _participant_fields(self, participant_id: str) -> dict[str, str]:
        """The participant's hash, or {} if there is no such participant."""
        tag = await self._tag(participant_id)
        return {} if tag is None else await self._hash(self.keys.participant(tag, participant_id))

    async def _hash(self, key: str) -> dict[str, str]:
        return as_text_map(await self._redis.hgetall(key))

    async def _field(self, key: str, field: str) -> str | None:
        value = await self._redis.hget(key, field)
        return None if value is None else str(value)

    async def _ids(self, key: str, desc: bool = False, limit: int = -1) -> list[str]:
        """Members of a sorted set, lowest score first (or highest, with `desc`)."""
        return as_texts(await self._redis.zrange(key, 0, limit - 1 if limit > 0 else -1, desc=desc))

    async def _hashes(self, keys: list[str]) -> list[dict[str, str]]:
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return [as_text_map(found) for found in await pipe.execute()]

    async def _in_room(
        self, participant_id: str, run: Callable[[str], Awaitable[T]]
    ) -> tuple[str, T]:
        """`run(room id)` with the participant's room as cached; once more with the stored one
        if it raises `Moved` (another process set its ended room aside, see
        `rooms.starts_anew`, and the name it had now holds a new conversation)."""
        for _ in range(2):
            room_id = await self._participant_room(participant_id)
            try:
                return room_id, await run(room_id)
            except Moved:
                self._room_of.pop(participant_id, None)
        raise errors.ChatError(
            errors.Code.STORE_UNAVAILABLE, "The room moved while you called; call again."
        )

    async def close(self) -> None:
        await self._replicas.close()
        await self._redis.aclose()


def begin(pipe: Pipeline) -> None:
    """Switch a watching pipeline to buffering the writes of its transaction."""
    pipe.multi()  # type: ignore[no-untyped-call]


def tag_of(room_id: str) -> str:
    return rooms.public_id(room_id)


def unavailable(exc: BaseException) -> errors.ChatError:
    error = errors.ChatError(
        errors.Code.STORE_UNAVAILABLE,
        "The message store (Redis) is unreachable or busy right now. Try the same call again "
        "in a moment; a send retried with the same message_key is never stored twice.",
    )
    error.__cause__ = exc
    return error


class Moved(Exception):
    """The participant's room is no longer filed under the id this process had cached."""


def unmoved(answer: Any) -> list[Any]:
    """A script's answer, unless it says the participant's room was set aside."""
    found = list(answer)
    if found[0] == "moved":
        raise Moved
    return found


def raise_for(status: str, room_id: str) -> None:
    if status == "unknown":
        raise errors.unknown_client()
    if status == "left":
        raise errors.left_room(room_id)
    if status == "ended":
        raise errors.chat_ended(room_id)
    if status == "gone":
        raise Unseated
