"""The shared store: one Redis that several server instances use as if they were one.

Each multi-key operation is atomic in Redis itself. Where the logic is data only (appending
with the next sequence number, claiming past a read position, presence marks) it is a Lua
script; where a rule of `mcp_chat.rooms` or `mcp_chat.matching` decides, it is a WATCH/MULTI
transaction that reads, asks the rule in Python, writes, and starts again if another instance
changed what it read. Every change also publishes its key on `{prefix}:changes`, in the same
script or transaction, and one subscription per process turns those into wake-ups.

Keys, under the prefix P:
  P:room:ID           hash: capacity, created_at, last_seq, ended, invite_hash
  P:room:ID:log       sorted set: message payloads scored by seq
  P:room:ID:members   sorted set: participant ids in the room, scored by joining order
  P:room:ID:keys      hash: "participant_id message_key" -> seq (idempotent sends)
  P:p:ID              hash: a participant
  P:p:ID:sent         sorted set: the seqs of the participant's messages in its room's log
  P:secrets           hash: secret hash -> participant id
  P:rooms             sorted set: open public rooms, scored by creation time
  P:open              sorted set: every open room (public or private), by creation time
  P:all               sorted set: every room, open or ended, by creation time (retention)
  P:room:ID:everyone  set: every participant the room ever had (retention)
  P:present           sorted set: participants in open rooms not marked gone, by last_seen
  P:q:ID              hash: a queue entry (kept once matched, with its room_id)
  P:queue             sorted set: waiting entry ids, by entered_at
  P:qsecrets          hash: secret hash -> queue entry id
  P:readiness         string: written by each readiness check (/readyz), expires in a minute
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import re
import secrets
import time
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
)
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.typing import EncodableT

from mcp_chat import errors, matching, mentions, messages, rooms
from mcp_chat.errors import StartupError
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores.base import EVERYTHING, ChangeListener, Outage, Store, Unseated
from mcp_chat.types import (
    Appended,
    Claim,
    Counts,
    Draft,
    Joined,
    Kind,
    Left,
    Matched,
    Message,
    Participant,
    Pruned,
    QueueEntry,
    Room,
    RoomSummary,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PREFIX = "mcp-chat"
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAX_ATTEMPTS = 100
"""Optimistic transactions start again when another instance got there first; this many
losses in a row means something is wrong, and the caller gets a retryable error."""
_ROOM_CACHE_SIZE = 100_000
_PING_AFTER = 15.0
"""Seconds of quiet after which the change subscription checks that Redis still answers."""
_RETRY_FIRST = 0.1
_RETRY_MAX = 5.0
"""Seconds between attempts at subscribing again: the first pause, and where doubling stops."""
_READINESS_TTL_MS = 60_000
"""How long the key a readiness check writes stays."""
POOL_SIZE = 100
"""Connections to Redis per process, unless the URL says otherwise (`?max_connections=N`)."""
_SOCKET_TIMEOUT = 5.0
"""Seconds a command may take, and an operation may wait for a free connection."""
_UNAVAILABLE = (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, OSError)

# -- Lua ------------------------------------------------------------------------------------
# A log entry is a JSON array [message_id, sender_id, sender_name, kind, text, timestamp],
# and a seventh item, the list of ids it mentions, when it has any (entries written before
# mentions existed have six); its score in the room's log is its seq. Scripts read only the
# sender (item 2), and return a status word first.

_COUNT_UNREAD = """
-- Messages in `log` past `cursor` from anyone but `participant_id`: all past it, less the
-- participant's own (`sent`), two O(log n) counts. A participant stored before `sent` was kept
-- (no `indexed` flag) has its part of the log read instead.
local function count_unread(log, sent, cursor, participant_id, indexed)
  local past = '(' .. cursor
  if indexed == '1' then
    return redis.call('ZCOUNT', log, past, '+inf') - redis.call('ZCOUNT', sent, past, '+inf')
  end
  local n = 0
  for _, item in ipairs(redis.call('ZRANGE', log, past, '+inf', 'BYSCORE')) do
    if cjson.decode(item)[2] ~= participant_id then n = n + 1 end
  end
  return n
end
"""

_APPEND = (
    _COUNT_UNREAD
    + """
-- KEYS: participant, room, log, keys, present, participant's sent
-- ARGV: mode, payload, dedup field ('' for none), channel, notice, participant id,
--       silent-since cutoff ('' for none), the participant's room id as the caller knows it
-- mode 'text': a participant's message; the answer ends with the sender's unread count.
-- A sender marked gone holds no seat and gets 'gone' (it must come back first, see rooms.py).
-- 'gone': a presence event that also sets the participant's gone flag, and is skipped if it
-- no longer applies (the same conditions as MemoryStore._in_open_room and the gone checks in
-- its disconnect/sweep). Coming back is a transaction instead (RedisStore.come_back): whether
-- a seat is free is a rule of rooms.py.
local mode = ARGV[1]
local p = redis.call('HMGET', KEYS[1], 'left', 'gone', 'last_seen', 'cursor', 'indexed',
                     'room_id')
local function unread() return count_unread(KEYS[3], KEYS[6], p[4], ARGV[6], p[5]) end
if not p[1] then
  if mode == 'text' then return {'unknown'} end
  return {'skip'}
end
if p[6] ~= ARGV[8] then return {'moved'} end
if p[1] == '1' then
  if mode == 'text' then return {'left'} end
  return {'skip'}
end
if ARGV[3] ~= '' then
  local seq = redis.call('HGET', KEYS[4], ARGV[3])
  if seq then
    return {'duplicate', seq, redis.call('ZRANGE', KEYS[3], seq, seq, 'BYSCORE')[1], unread()}
  end
end
if redis.call('HGET', KEYS[2], 'ended') == '1' then
  if mode == 'text' then return {'ended'} end
  return {'skip'}
end
if mode == 'text' and p[2] == '1' then return {'gone'} end
if mode == 'gone' then
  if p[2] == '1' then return {'skip'} end
  if ARGV[7] ~= '' and tonumber(p[3]) > tonumber(ARGV[7]) then return {'skip'} end
  redis.call('HSET', KEYS[1], 'gone', '1')
  redis.call('ZREM', KEYS[5], ARGV[6])
end
local seq = redis.call('HINCRBY', KEYS[2], 'last_seq', 1)
redis.call('ZADD', KEYS[3], seq, ARGV[2])
redis.call('ZADD', KEYS[6], seq, seq)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], ARGV[3], seq) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
if mode == 'text' then return {'ok', seq, unread()} end
return {'ok', seq}
"""
)

_CLAIM = """
-- KEYS: participant, room, log.
-- ARGV: after ('' for the read position), limit, participant id, its room id as known,
--       through ('' for none), move ('1' to claim, '0' to peek)
-- The same reading as SQLiteStore.claim: the first `limit` messages from others past the
-- start (and not past `through`); the read position moves past them, or to the end (or to
-- `through`) when nothing more remains. A peek moves nothing and answers the read position.
-- A reader marked gone in an open room holds no seat: its claim gets 'gone' (see _APPEND).
local p = redis.call('HMGET', KEYS[1], 'left', 'cursor', 'room_id', 'gone')
if not p[1] then return {'unknown'} end
if p[3] ~= ARGV[4] then return {'moved'} end
if p[1] == '1' then return {'left'} end
local room = redis.call('HMGET', KEYS[2], 'last_seq', 'ended')
if ARGV[6] ~= '0' and p[4] == '1' and room[2] ~= '1' then return {'gone'} end
local last = tonumber(room[1])
local start = tonumber(p[2])
if ARGV[1] ~= '' then start = math.max(tonumber(ARGV[1]), 0) end
start = math.min(start, last)
local stop = last
if ARGV[5] ~= '' then stop = math.max(start, math.min(tonumber(ARGV[5]), last)) end
local limit = tonumber(ARGV[2])
local taken = {}
local count = 0
local more = 0
local from = start
while more == 0 do
  local chunk = redis.call('ZRANGE', KEYS[3], '(' .. from, stop, 'BYSCORE',
                           'LIMIT', 0, limit + 1, 'WITHSCORES')
  if #chunk == 0 then break end
  for i = 1, #chunk, 2 do
    if cjson.decode(chunk[i])[2] ~= ARGV[3] then
      if count == limit then more = 1 break end
      count = count + 1
      taken[#taken + 1] = chunk[i]
      taken[#taken + 1] = chunk[i + 1]
    end
    from = chunk[i + 1]
  end
end
local cursor = stop
if more == 1 then cursor = tonumber(taken[#taken]) end
if ARGV[6] == '0' then
  cursor = tonumber(p[2])
elseif cursor ~= tonumber(p[2]) then
  redis.call('HSET', KEYS[1], 'cursor', cursor)
end
return {'ok', cursor, more, room[2], unpack(taken)}
"""

_UNREAD = (
    _COUNT_UNREAD
    + """
-- KEYS: participant, log, participant's sent.  ARGV: participant id, its room id as known
local p = redis.call('HMGET', KEYS[1], 'left', 'cursor', 'indexed', 'room_id')
if not p[1] then return {'unknown'} end
if p[4] ~= ARGV[2] then return {'moved'} end
if p[1] == '1' then return {'left'} end
return {'ok', count_unread(KEYS[2], KEYS[3], p[2], ARGV[1], p[3])}
"""
)

_TOUCH = """
-- KEYS: participant, queue entry, present.  ARGV: when, id
-- Raises last_seen (never lowers it); returns the participant's gone flag ('' if none).
local when = tonumber(ARGV[1])
local gone = ''
if redis.call('EXISTS', KEYS[1]) == 1 then
  if when > tonumber(redis.call('HGET', KEYS[1], 'last_seen')) then
    redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
  end
  redis.call('ZADD', KEYS[3], 'XX', 'GT', ARGV[1], ARGV[2])
  gone = redis.call('HGET', KEYS[1], 'gone')
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if when > tonumber(redis.call('HGET', KEYS[2], 'last_seen')) then
    redis.call('HSET', KEYS[2], 'last_seen', ARGV[1])
  end
end
return gone
"""

_DEQUEUE = """
-- KEYS: queue entry, queue, qsecrets.  ARGV: entry id, silent-since cutoff ('' for none)
-- Removes a waiting entry (never a matched one); 1 if it did.
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
if ARGV[2] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'last_seen')) > tonumber(ARGV[2]) then
  return 0
end
local secret = redis.call('HGET', KEYS[1], 'secret_hash')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if secret then redis.call('HDEL', KEYS[3], secret) end
return 1
"""


# -- the URL ----------------------------------------------------------------------------------


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


# -- records to and from Redis ---------------------------------------------------------------


def _payload(draft: Draft) -> str:
    fields: list[Any] = [
        draft.message_id,
        draft.sender_id,
        draft.sender_name,
        draft.kind.value,
        draft.text,
        draft.timestamp,
    ]
    if draft.mentions:
        fields.append(list(draft.mentions))
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def _message(room_id: str, seq: int | float | str, payload: str) -> Message:
    # Six items, or seven with mentions (see the Lua section's note).
    message_id, sender_id, sender_name, kind, text, timestamp, *rest = json.loads(payload)
    return Message(
        room_id,
        int(float(seq)),
        message_id,
        sender_id,
        sender_name,
        Kind(kind),
        text,
        timestamp,
        tuple(rest[0]) if rest else (),
    )


def _fields(record: Room | Participant | QueueEntry) -> dict[EncodableT, EncodableT]:
    """A record as a Redis hash: None left out, flags as 0/1, floats exact, tuples as JSON."""
    fields: dict[EncodableT, EncodableT] = {}
    for name, value in dataclasses.asdict(record).items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, float):
            value = repr(value)
        elif isinstance(value, tuple):
            value = json.dumps(list(value))
        fields[name] = value
    return fields


def _room(fields: Mapping[str, str]) -> Room:
    return Room(
        room_id=fields["room_id"],
        capacity=int(fields["capacity"]),
        created_at=fields["created_at"],
        last_seq=int(fields["last_seq"]),
        ended=fields["ended"] == "1",
        invite_hash=fields.get("invite_hash"),
    )


def _participant(fields: Mapping[str, str]) -> Participant:
    return Participant(
        participant_id=fields["participant_id"],
        room_id=fields["room_id"],
        display_name=fields["display_name"],
        secret_hash=fields["secret_hash"],
        cursor=int(fields["cursor"]),
        joined_at=fields["joined_at"],
        left=fields["left"] == "1",
        last_seen=float(fields["last_seen"]),
        gone=fields["gone"] == "1",
    )


def _entry(fields: Mapping[str, str]) -> QueueEntry:
    return QueueEntry(
        entry_id=fields["entry_id"],
        secret_hash=fields["secret_hash"],
        display_name=fields["display_name"],
        interests=tuple(json.loads(fields["interests"])),
        entered_at=float(fields["entered_at"]),
        last_seen=float(fields["last_seen"]),
        room_id=fields.get("room_id"),
    )


def _scored(raw: Iterable[Any]) -> list[tuple[str, float]]:
    """A sorted-set range read WITHSCORES, as (member, score) pairs."""
    return [(str(member), float(score)) for member, score in raw]


def _texts(raw: Iterable[Any]) -> list[str]:
    """What the client returns (typed as bytes or str) as the strings it decoded."""
    return [str(item) for item in raw]


def _text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def _begin(pipe: Pipeline) -> None:
    """Switch a watching pipeline to buffering the writes of its transaction."""
    pipe.multi()  # type: ignore[no-untyped-call]


async def _close(pubsub: PubSub) -> None:
    # Through a typed name: some redis-py releases annotate aclose, some do not.
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    await close()


def _created_score(created_at: str) -> float:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()


def _unavailable(exc: BaseException) -> errors.ChatError:
    error = errors.ChatError(
        errors.Code.STORE_UNAVAILABLE,
        "The message store (Redis) is unreachable or busy right now. Try the same call again "
        "in a moment; a send retried with the same message_key is never stored twice.",
    )
    error.__cause__ = exc
    return error


class RedisStore(Store):
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
        self._append = self._redis.register_script(_APPEND)
        self._claim = self._redis.register_script(_CLAIM)
        self._unread = self._redis.register_script(_UNREAD)
        self._touch = self._redis.register_script(_TOUCH)
        self._dequeue = self._redis.register_script(_DEQUEUE)
        # participant id -> room id; changes only when an ended room is set aside (`_in_room`)
        self._room_of: dict[str, str] = {}
        self._listener: asyncio.Task[None] | None = None
        self._outage = Outage("Redis", log)
        self.channel = self._key("changes")
        self.ping_after = _PING_AFTER
        # The change listener's pauses and clock, which a test replaces to go through a long
        # outage at once and see every pause.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.clock: Callable[[], float] = time.monotonic

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
        except _UNAVAILABLE as exc:
            self._outage.failed(exc)
            raise _unavailable(exc) from exc
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
            raise _unavailable(RuntimeError("too much contention"))

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
        return _text_map(await self._redis.hgetall(key))

    async def _field(self, key: str, field: str) -> str | None:
        value = await self._redis.hget(key, field)
        return None if value is None else str(value)

    async def _ids(self, key: str, desc: bool = False, limit: int = -1) -> list[str]:
        """Members of a sorted set, lowest score first (or highest, with `desc`)."""
        return _texts(await self._redis.zrange(key, 0, limit - 1 if limit > 0 else -1, desc=desc))

    async def _hashes(self, keys: list[str]) -> list[dict[str, str]]:
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return [_text_map(found) for found in await pipe.execute()]

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, on_change: ChangeListener) -> None:
        subscriber = aioredis.Redis.from_url(
            self._url,
            decode_responses=True,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),  # a lost connection must surface: see _listen
        )
        pubsub: PubSub | None = None
        try:
            pubsub = await self._subscribe(subscriber)
        except _UNAVAILABLE as exc:
            log.warning(
                "Redis is not answering (%s); calls fail with store_unavailable until it does",
                type(exc).__name__,
            )
        self._listener = asyncio.create_task(self._listen(subscriber, pubsub, on_change))

    async def _subscribe(self, subscriber: aioredis.Redis) -> PubSub:
        # Every reply is seen (not only messages), so that a reply to a ping shows life.
        pubsub = subscriber.pubsub(ignore_subscribe_messages=False)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await _close(pubsub)
            raise
        return pubsub

    async def _listen(
        self, subscriber: aioredis.Redis, pubsub: PubSub | None, on_change: ChangeListener
    ) -> None:
        """One subscription for the whole process. After an outage it wakes every local wait:
        a notice published while it was away is lost, so they all re-read the store.

        While Redis is away, the pause between two attempts doubles from 0.1 s up to 5 s, and
        the log says once that notices are lost (start() said it, if Redis was away from the
        start), not once per attempt."""
        delay = _RETRY_FIRST
        # When the subscription in use was made; None while there is none.
        subscribed_at = None if pubsub is None else self.clock()
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = await self._subscribe(subscriber)
                        subscribed_at = self.clock()
                        log.info("Redis change notices: subscribed again")
                        on_change(EVERYTHING)
                    await self._relay(pubsub, on_change)
                except Exception as exc:
                    if subscribed_at is not None:  # it was up: an outage begins
                        # Pauses start over only after a subscription that held a while:
                        # one that drops as soon as it is made does not end the outage.
                        if self.clock() - subscribed_at >= self.ping_after:
                            delay = _RETRY_FIRST
                        subscribed_at = None
                        log.warning(
                            "Redis change notices lost (%s); subscribing again, with pauses "
                            "growing to %g s",
                            exc,
                            _RETRY_MAX,
                        )
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            await _close(pubsub)
                        pubsub = None
                    await self.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await _close(pubsub)
            with contextlib.suppress(Exception):
                await subscriber.aclose()

    async def _relay(self, pubsub: PubSub, on_change: ChangeListener) -> None:
        """Hand each notice from another process to `on_change`. A quiet connection is pinged:
        one that stays silent after a ping is taken as lost (a peer gone without a word)."""
        pinged = False
        while True:
            notice = await pubsub.get_message(timeout=self.ping_after)
            if notice is None:
                if pinged:
                    raise rex.ConnectionError(f"no answer to a ping in {self.ping_after:g} s")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if notice.get("type") != "message":
                continue
            origin, _, key = str(notice["data"]).partition(" ")
            if origin != self._origin:
                on_change(key)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._redis.aclose()

    # -- writes shared by join and pairing ----------------------------------------------------

    def _add_room(self, pipe: Pipeline, room: Room) -> None:
        key, *_ = self._room_keys(room.room_id)
        pipe.hset(key, mapping=_fields(room))
        pipe.zadd(self._key("open"), {room.room_id: _created_score(room.created_at)})
        pipe.zadd(self._key("all"), {room.room_id: _created_score(room.created_at)})
        if not room.private:
            pipe.zadd(self._key("rooms"), {room.room_id: _created_score(room.created_at)})

    def _log(self, pipe: Pipeline, room_id: str, seq: int, draft: Draft) -> Message:
        key, log_key, _, _ = self._room_keys(room_id)
        pipe.hset(key, "last_seq", seq)
        pipe.zadd(log_key, {_payload(draft): seq})
        pipe.zadd(self._key("p", draft.sender_id, "sent"), {str(seq): seq})
        return Message.from_draft(room_id, seq, draft)

    def _add_participant(self, pipe: Pipeline, p: Participant, order: int) -> None:
        _, _, members, _ = self._room_keys(p.room_id)
        # `indexed`: its sent messages are kept in P:p:ID:sent, for counting what it has not read.
        pipe.hset(self._key("p", p.participant_id), mapping={**_fields(p), "indexed": 1})
        pipe.hset(self._key("secrets"), p.secret_hash, p.participant_id)
        pipe.zadd(members, {p.participant_id: order})
        pipe.sadd(self._key("room", p.room_id, "everyone"), p.participant_id)
        pipe.zadd(self._key("present"), {p.participant_id: p.last_seen})

    # -- the interface ----------------------------------------------------------------------------

    async def join(
        self,
        room_id: str,
        capacity: int,
        participant: Participant,
        event: Draft,
        invite_hash: str | None = None,
    ) -> Joined:
        room_key, _, members_key, _ = self._room_keys(room_id)

        async def body(pipe: Pipeline) -> Joined:
            fields = await self._hash(room_key)
            set_aside: _SetAside | None = None
            if fields and rooms.starts_anew(_room(fields)):
                set_aside = await self._watch_to_set_aside(pipe, room_id)
                fields = {}
            member_ids = [] if set_aside else await self._ids(members_key)
            members = [
                _participant(f)
                for f in await self._hashes([self._key("p", pid) for pid in member_ids])
            ]
            created = not fields
            room = (
                Room(room_id, capacity, event.timestamp, 0, False, invite_hash)
                if created
                else _room(fields)
            )
            rooms.check_join(room, rooms.seated(members), invite_hash)
            # The newcomer's read position starts at the beginning: what was said before it
            # arrived is delivered too.
            stored = dataclasses.replace(participant, cursor=0)
            _begin(pipe)
            if set_aside:
                self._set_aside(pipe, room_id, set_aside)
            if created:
                self._add_room(pipe, room)
            message = self._log(pipe, room_id, room.last_seq + 1, event)
            self._add_participant(pipe, stored, message.seq)
            pipe.publish(self.channel, self._notice(room_id))
            await pipe.execute()
            room = dataclasses.replace(room, last_seq=message.seq)
            return Joined(stored, room, created, [*members, stored])

        return await self._transact([room_key, members_key], body)

    def _room_key_set(self, room_id: str) -> list[str]:
        return [*self._room_keys(room_id), self._key("room", room_id, "everyone")]

    async def _watch_to_set_aside(self, pipe: Pipeline, room_id: str) -> _SetAside:
        """Before `_set_aside`: watch what it moves, and read what it needs."""
        keys = self._room_key_set(room_id)
        await pipe.watch(*keys)
        return _SetAside(
            keys=[k for k in keys if await self._redis.exists(k)],  # RENAME needs them there
            everyone=_texts(await self._redis.smembers(keys[-1])),
            score=await self._redis.zscore(self._key("all"), room_id),
        )

    def _set_aside(self, pipe: Pipeline, room_id: str, found: _SetAside) -> None:
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

    async def participant(self, secret_hash: str) -> Participant | None:
        with self._guard():
            participant_id = await self._field(self._key("secrets"), secret_hash)
            if participant_id is None:
                return None
            fields = await self._hash(self._key("p", participant_id))
        return _participant(fields) if fields else None

    async def _in_room(
        self, participant_id: str, run: Callable[[str], Awaitable[T]]
    ) -> tuple[str, T]:
        """`run(room id)` with the participant's room as cached; once more with the stored one
        if it raises `_Moved` (another process set its ended room aside, see
        `rooms.starts_anew`, and the name it had now holds a new conversation)."""
        for _ in range(2):
            room_id = await self._participant_room(participant_id)
            try:
                return room_id, await run(room_id)
            except _Moved:
                self._room_of.pop(participant_id, None)
        raise errors.ChatError(
            errors.Code.STORE_UNAVAILABLE, "The room moved while you called; call again."
        )

    async def append(self, participant_id: str, draft: Draft) -> Appended:
        dedup = "" if draft.key is None else f"{participant_id} {draft.key}"

        async def run(room_id: str) -> list[Any]:
            return _unmoved(await self._run_append(room_id, participant_id, "text", draft, dedup))

        room_id, (status, *rest) = await self._in_room(participant_id, run)
        if status == "duplicate":
            return Appended(_message(room_id, rest[0], rest[1]), True, int(rest[2]))
        _raise_for(status, room_id)
        return Appended(Message.from_draft(room_id, int(rest[0]), draft), False, int(rest[1]))

    async def keyed(self, participant_id: str, key: str) -> Message | None:
        with self._guard():
            # Not the cached room: a rare call, and its room may have been set aside.
            room_id = await self._field(self._key("p", participant_id), "room_id")
            if room_id is None:
                raise errors.unknown_client()
            _, log_key, _, keys_key = self._room_keys(room_id)
            seq = await self._field(keys_key, f"{participant_id} {key}")
            if seq is None:
                return None
            found = _texts(await self._redis.zrange(log_key, seq, seq, byscore=True))
        # Retention may have removed the message since; its key then names nothing.
        return _message(room_id, seq, found[0]) if found else None

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
                    _payload(draft),
                    dedup,
                    self.channel,
                    self._notice(room_id),
                    participant_id,
                    cutoff,
                    room_id,
                ],
            )
        return list(result)

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
                return _unmoved(
                    await self._claim(
                        keys=[self._key("p", participant_id), room_key, log_key],
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
        _raise_for(status, room_id)
        cursor, more, ended, *taken = rest
        found = [_message(room_id, taken[i + 1], taken[i]) for i in range(0, len(taken), 2)]
        return Claim(found, int(cursor), more == 1, ended == "1", room_id)

    async def unread(self, participant_id: str) -> int:
        async def run(room_id: str) -> list[Any]:
            _, log_key, _, _ = self._room_keys(room_id)
            with self._guard():
                return _unmoved(
                    await self._unread(
                        keys=[
                            self._key("p", participant_id),
                            log_key,
                            self._key("p", participant_id, "sent"),
                        ],
                        args=[participant_id, room_id],
                    )
                )

        room_id, (status, *rest) = await self._in_room(participant_id, run)
        _raise_for(status, room_id)
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
        page = [_message(room_id, seq, str(payload)) for payload, seq in found]
        return page[::-1] if desc else page

    async def leave(self, participant_id: str, event: Draft) -> Left:
        async def run(room_id: str) -> Left:
            return await self._leave(participant_id, room_id, event)

        return (await self._in_room(participant_id, run))[1]

    async def _leave(self, participant_id: str, room_id: str, event: Draft) -> Left:
        room_key, _, members_key, _ = self._room_keys(room_id)
        p_key = self._key("p", participant_id)

        async def body(pipe: Pipeline) -> Left:
            fields = await self._hash(p_key)
            if not fields:
                raise errors.unknown_client()
            if fields["room_id"] != room_id:
                raise _Moved
            if fields["left"] == "1":
                raise errors.left_room(room_id)
            room = _room(await self._hash(room_key))
            others = [m for m in await self._ids(members_key) if m != participant_id]
            seated = rooms.seated(
                _participant(f) for f in await self._hashes([self._key("p", m) for m in others])
            )
            ended = room.ended or rooms.ends_after_leave(room, len(others), seated)
            _begin(pipe)
            message = self._log(
                pipe, room_id, room.last_seq + 1, mentions.left(event, others, ended)
            )
            pipe.hset(p_key, mapping={"left": 1, "cursor": message.seq})
            pipe.zrem(members_key, participant_id)
            pipe.zrem(self._key("present"), participant_id)
            if ended and not room.ended:
                pipe.hset(room_key, "ended", 1)
                pipe.zrem(self._key("rooms"), room_id)
                pipe.zrem(self._key("open"), room_id)
                if others:
                    # Nobody in an ended room is watched for silence any more.
                    pipe.zrem(self._key("present"), *others)
            pipe.publish(self.channel, self._notice(room_id))
            await pipe.execute()
            return Left(message, ended)

        return await self._transact([p_key, room_key, members_key], body)

    async def room(self, room_id: str) -> Room | None:
        with self._guard():
            fields = await self._hash(self._room_keys(room_id)[0])
        return _room(fields) if fields else None

    async def check_writable(self) -> None:
        # A read says nothing of writes: a replica (a URL left on the old primary after a
        # failover) answers reads and refuses every write. One key of its own, which expires.
        with self._guard():
            await self._redis.set(self._key("readiness"), self._origin, px=_READINESS_TTL_MS)

    async def members(self, room_id: str) -> list[Participant]:
        with self._guard():
            ids = await self._ids(self._room_keys(room_id)[2])
            found = await self._hashes([self._key("p", pid) for pid in ids])
        return [_participant(f) for f in found if f]

    async def rooms(self, limit: int) -> list[RoomSummary]:
        """Open public rooms newest first, a page at a time, until `limit` of them are
        listed (`rooms.listed`: one whose members are all gone is passed over)."""
        summaries: list[RoomSummary] = []
        start = 0
        with self._guard():
            while len(summaries) < limit:
                ids = _texts(
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
            for participant_id in _texts(member_ids):
                pipe.hget(self._key("p", participant_id), "gone")
            flags = await pipe.execute()
        return _room(_text_map(fields)), sum(
            1 for flag in flags if flag is not None and flag != "1"
        )

    async def counts(self) -> Counts:
        with self._guard():
            open_ids = await self._ids(self._key("open"))
            async with self._redis.pipeline(transaction=False) as pipe:
                for room_id in open_ids:
                    pipe.zcard(self._room_keys(room_id)[2])
                sizes = await pipe.execute()
        return Counts(len(open_ids), sum(int(n) for n in sizes))

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
            if idle:
                removed_messages += await self._drop_rooms(idle)
                removed_rooms = len(idle)
        return Pruned(removed_messages, removed_rooms)

    async def _newest(self, room_id: str) -> str:
        """When the room was last active: its newest message, or its creation."""
        room_key, log_key, _, _ = self._room_keys(room_id)
        newest = _scored(await self._redis.zrange(log_key, -1, -1, withscores=True))
        if newest:
            return _message(room_id, newest[0][1], newest[0][0]).timestamp
        return (await self._field(room_key, "created_at")) or ""

    async def _prune_log(self, room_id: str, before: str) -> int:
        """Remove the room's messages older than `before`, except its newest. Messages are
        logged in time order, so the old ones are a prefix of the log."""
        _, log_key, _, keys_key = self._room_keys(room_id)
        oldest_kept: int | None = None
        start = 0
        while oldest_kept is None:
            chunk = _scored(await self._redis.zrange(log_key, start, start + 199, withscores=True))
            if not chunk:
                break
            for payload, seq in chunk:
                if _message(room_id, seq, payload).timestamp >= before:
                    oldest_kept = int(seq)
                    break
            start += len(chunk)
        newest = _scored(await self._redis.zrange(log_key, -1, -1, withscores=True))
        if not newest:
            return 0
        keep_from = min(oldest_kept or int(newest[0][1]), int(newest[0][1]))
        removed = int(await self._redis.zremrangebyscore(log_key, "-inf", f"({keep_from}"))
        if removed:
            # Keys of idempotent sends that point at removed messages go too.
            stale = [
                field
                for field, seq in _text_map(await self._redis.hgetall(keys_key)).items()
                if int(seq) < keep_from
            ]
            if stale:
                await self._redis.hdel(keys_key, *stale)
            # So do their seqs among what each member sent.
            everyone = _texts(await self._redis.smembers(self._key("room", room_id, "everyone")))
            async with self._redis.pipeline(transaction=False) as pipe:
                for participant_id in everyone:
                    sent = self._key("p", participant_id, "sent")
                    pipe.zremrangebyscore(sent, "-inf", f"({keep_from}")
                await pipe.execute()
        return removed

    async def _drop_rooms(self, room_ids: list[str]) -> int:
        """Remove whole rooms: their keys, their participants (present or not) and the queue
        entries matched into them."""
        doomed = set(room_ids)
        removed = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.zcard(self._room_keys(room_id)[1])
            removed = sum(int(n) for n in await pipe.execute())
        ids = [
            participant_id
            for room_id in room_ids
            for participant_id in _texts(
                await self._redis.smembers(self._key("room", room_id, "everyone"))
            )
        ]
        # A matched queue entry has the id of the participant it became.
        participants = [
            (key, fields)
            for key in [self._key("p", pid) for pid in ids]
            if (fields := _text_map(await self._redis.hgetall(key))).get("room_id") in doomed
        ]
        entries = [
            (key, fields)
            for key in [self._key("q", pid) for pid in ids]
            if (fields := _text_map(await self._redis.hgetall(key))).get("room_id") in doomed
        ]
        async with self._redis.pipeline(transaction=True) as pipe:
            for room_id in room_ids:
                pipe.delete(*self._room_keys(room_id), self._key("room", room_id, "everyone"))
                for index in ("rooms", "open", "all"):
                    pipe.zrem(self._key(index), room_id)
            for key, fields in participants:
                pipe.delete(key, f"{key}:sent")
                pipe.hdel(self._key("secrets"), fields.get("secret_hash", ""))
                pipe.zrem(self._key("present"), key.rsplit(":", 1)[-1])
            for key, fields in entries:
                pipe.delete(key)
                pipe.hdel(self._key("qsecrets"), fields.get("secret_hash", ""))
            await pipe.execute()
        for participant_id in [key.rsplit(":", 1)[-1] for key, _ in participants]:
            self._room_of.pop(participant_id, None)
        return removed

    # -- the random-pairing queue -------------------------------------------------------------

    async def _waiting(self) -> list[QueueEntry]:
        ids = await self._ids(self._key("queue"))
        found = await self._hashes([self._key("q", entry_id) for entry_id in ids])
        return [_entry(f) for f in found if f]

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
            pipe.hset(self._key("q", entry.entry_id), mapping=_fields(matched_entry))
            pipe.hset(self._key("qsecrets"), entry.secret_hash, entry.entry_id)
            pipe.zrem(self._key("queue"), entry.entry_id)
            pipe.publish(self.channel, self._notice(f"queue:{entry.entry_id}"))
        pipe.publish(self.channel, self._notice(room.room_id))
        return Matched(room, pair.first, pair.second)

    async def enqueue(self, entry: QueueEntry, now: float, policy: MatchPolicy) -> Matched | None:
        async def body(pipe: Pipeline) -> Matched | None:
            pair = matching.on_entering(entry, await self._waiting(), now, policy)
            _begin(pipe)
            if pair is None:
                pipe.hset(self._key("q", entry.entry_id), mapping=_fields(entry))
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
            _begin(pipe)
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
        return _entry(fields) if fields else None

    async def queue_position(self, entry_id: str) -> int:
        with self._guard():
            rank = await self._redis.zrank(self._key("queue"), entry_id)
        return 0 if rank is None else int(str(rank)) + 1

    async def leave_queue(self, entry_id: str) -> bool:
        return await self._run_dequeue(entry_id)

    async def _run_dequeue(self, entry_id: str, cutoff: str = "") -> bool:
        with self._guard():
            removed = await self._dequeue(
                keys=[self._key("q", entry_id), self._key("queue"), self._key("qsecrets")],
                args=[entry_id, cutoff],
            )
        return bool(removed)

    # -- presence --------------------------------------------------------------------------------
    # Each participant's mark is atomic on its own (one script); a batch of them is not one
    # transaction, and needs not be: every mark re-checks its conditions when it runs.

    async def _gone(self, participant_id: str, cutoff: str = "") -> Message | None:
        """Log that the participant is gone and set its gone flag, if that still applies when
        the script runs (another instance may have done it first)."""
        with self._guard():
            fields = await self._hash(self._key("p", participant_id))
        if not fields:
            return None
        participant = _participant(fields)
        draft = messages.event_draft(Kind.DISCONNECTED, participant)
        status, *rest = await self._run_append(
            participant.room_id, participant_id, "gone", draft, cutoff=cutoff
        )
        if status != "ok":
            return None
        return Message.from_draft(participant.room_id, int(rest[0]), draft)

    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        # One round trip for the whole heartbeat: each script in the pipeline is atomic alone.
        with self._guard():
            async with self._redis.pipeline(transaction=False) as pipe:
                for some_id, when in seen.items():
                    await self._touch(
                        keys=[
                            self._key("p", some_id),
                            self._key("q", some_id),
                            self._key("present"),
                        ],
                        args=[repr(when), some_id],
                        client=pipe,
                    )
                flags = await pipe.execute()
        events: list[Message] = []
        for some_id, gone in zip(seen, flags, strict=True):
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
        p_key = self._key("p", participant_id)

        async def body(pipe: Pipeline) -> Message | None:
            fields = await self._hash(p_key)
            if not fields:
                raise errors.unknown_client()
            if fields["room_id"] != room_id:
                raise _Moved
            participant = _participant(fields)
            if participant.left:
                raise errors.left_room(room_id)
            room = _room(await self._hash(room_key))
            if not rooms.may_come_back(room, participant):
                return None
            others = [m for m in await self._ids(members_key) if m != participant_id]
            members = await self._hashes([self._key("p", m) for m in others])
            rooms.check_return(room, rooms.seated(_participant(f) for f in members if f))
            draft = messages.event_draft(Kind.RETURNED, participant)
            _begin(pipe)
            message = self._log(pipe, room_id, room.last_seq + 1, draft)
            pipe.hset(p_key, "gone", 0)
            pipe.zadd(self._key("present"), {participant_id: participant.last_seen})
            pipe.publish(self.channel, self._notice(room_id))
            await pipe.execute()
            return message

        # The room's hash changes with every seat taken or given up (each logs an event), so
        # watching it sees a newcomer or another returner get there first.
        return await self._transact([p_key, room_key, members_key], body)

    async def disconnect(self, ids: Collection[str]) -> list[Message]:
        events: list[Message] = []
        for some_id in ids:
            await self._run_dequeue(some_id)
            if event := await self._gone(some_id):
                events.append(event)
        return events

    async def sweep(self, now: float, gone_after: float, stale_after: float) -> list[Message]:
        queue_cutoff = repr(now - stale_after)
        with self._guard():
            waiting = await self._ids(self._key("queue"))
        for entry_id in waiting:
            await self._run_dequeue(entry_id, queue_cutoff)
        cutoff = now - gone_after
        with self._guard():
            silent = _texts(
                await self._redis.zrange(self._key("present"), "-inf", cutoff, byscore=True)
            )
        events = []
        for participant_id in silent:
            if event := await self._gone(participant_id, repr(cutoff)):
                events.append(event)
        return events


@dataclasses.dataclass(frozen=True, slots=True)
class _SetAside:
    """What setting an ended room aside moves: its keys that exist, its participants, and
    its score in the retention index."""

    keys: list[str]
    everyone: list[str]
    score: float | None


class _Moved(Exception):
    """The participant's room is no longer filed under the id this process had cached."""


def _unmoved(answer: Any) -> list[Any]:
    """A script's answer, unless it says the participant's room was set aside."""
    found = list(answer)
    if found[0] == "moved":
        raise _Moved
    return found


def _raise_for(status: str, room_id: str) -> None:
    if status == "unknown":
        raise errors.unknown_client()
    if status == "left":
        raise errors.left_room(room_id)
    if status == "ended":
        raise errors.chat_ended(room_id)
    if status == "gone":
        raise Unseated
