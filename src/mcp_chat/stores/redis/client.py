"""The Redis store's connection: the URL, the pool, the scripts, keys, the guard that turns an
outage into store_unavailable, and optimistic transactions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from mcp_chat import errors
from mcp_chat.errors import StartupError
from mcp_chat.stores.base import Outage, Store, Unseated
from mcp_chat.stores.redis import lua
from mcp_chat.stores.redis.codecs import as_text_map, as_texts

log = logging.getLogger("mcp_chat.stores.redis")

T = TypeVar("T")

DEFAULT_PREFIX = "mcp-chat"
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAX_ATTEMPTS = 100
"""Optimistic transactions start again when another instance got there first; this many
losses in a row means something is wrong, and the caller gets a retryable error."""
_ROOM_CACHE_SIZE = 100_000
POOL_SIZE = 100
"""Connections to Redis per process, unless the URL says otherwise (`?max_connections=N`)."""
_SOCKET_TIMEOUT = 5.0
"""Seconds a command may take, and an operation may wait for a free connection."""
UNAVAILABLE = (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, OSError)


def parse_url(url: str) -> tuple[str, str]:
    """`redis://host:port/db?prefix=name` -> (the URL redis-py reads, the key prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not _PREFIX.fullmatch(prefix):
        raise StartupError(
            f"invalid key prefix {prefix!r} in the Redis store URL: use 1 to 64 letters, "
            "digits, '.', '_', ':' or '-', starting with a letter or digit."
        )
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class Client(Store):
    """What every operation of the Redis store stands on."""

    def __init__(self, url: str) -> None:
        self._url, self.prefix = parse_url(url)
        self._origin = secrets.token_hex(6)  # this process, in the notices it publishes
        # More operations at once than the pool has connections wait their turn for one
        # (redis-py's plain pool refuses them at once, which callers would see as an outage);
        # `?max_connections=N` in the URL sizes the pool.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=POOL_SIZE,
            timeout=_SOCKET_TIMEOUT,
            decode_responses=True,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=2,
            # One quick retry hides a stale pooled connection after a restart; a longer outage
            # is reported to the caller at once rather than held up.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
        )
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._append = self._redis.register_script(lua.APPEND)
        self._claim = self._redis.register_script(lua.CLAIM)
        self._unread = self._redis.register_script(lua.UNREAD)
        self._touch = self._redis.register_script(lua.TOUCH)
        self._dequeue = self._redis.register_script(lua.DEQUEUE)
        # participant id -> room id; changes only when an ended room is set aside (`_in_room`)
        self._room_of: dict[str, str] = {}
        self._outage = Outage("Redis", log)
        self.channel = self._key("changes")

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
        return ":".join((self.prefix, *parts))

    def _room_keys(self, room_id: str) -> tuple[str, str, str, str]:
        """The room's hash, log, members and message keys."""
        base = self._key("room", room_id)
        return base, f"{base}:log", f"{base}:members", f"{base}:keys"

    def _notice(self, key: str) -> str:
        return f"{self._origin} {key}"

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
            with self._guard():
                room_id = await self._field(self._key("p", participant_id), "room_id")
            if room_id is None:
                raise errors.unknown_client()
            if len(self._room_of) >= _ROOM_CACHE_SIZE:
                self._room_of.clear()
            self._room_of[participant_id] = room_id
        return room_id

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
        await self._redis.aclose()


def begin(pipe: Pipeline) -> None:
    """Switch a watching pipeline to buffering the writes of its transaction."""
    pipe.multi()  # type: ignore[no-untyped-call]


async def close_pubsub(pubsub: PubSub) -> None:
    # Through a typed name: some redis-py releases annotate aclose, some do not.
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    await close()


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
