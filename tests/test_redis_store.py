"""What only the Redis store has: a key prefix, wake-ups between instances, and outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from mcp_chat import messages
from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.stores import open_store
from mcp_chat.stores.base import EVERYTHING
from mcp_chat.stores.redis import DEFAULT_PREFIX, POOL_SIZE, RedisStore, parse_url
from mcp_chat.types import Pruned, WaitResult
from tests.conftest import REDIS, blocked, prefixed_redis_url
from tests.stores_support import enter, text

pytestmark = pytest.mark.anyio


def test_the_prefix_comes_from_the_url_and_the_rest_goes_to_redis() -> None:
    assert parse_url("redis://h:1/2?prefix=team-a&socket_timeout=3") == (
        "redis://h:1/2?socket_timeout=3",
        "team-a",
    )
    assert parse_url("redis://h:1/0") == ("redis://h:1/0", DEFAULT_PREFIX)
    for bad in ("", "has space", "a*b", "x" * 65):
        with pytest.raises(ValueError, match="prefix"):
            parse_url(f"redis://h:1/0?prefix={bad}")


@pytest.fixture
def other_redis_url() -> Iterator[str]:
    yield from prefixed_redis_url()


async def test_deployments_with_different_prefixes_do_not_see_each_other(
    redis_url: str, other_redis_url: str
) -> None:
    first, second = open_store(redis_url), open_store(other_redis_url)
    for s in (first, second):
        await s.start(lambda _: None)
    try:
        await enter(first, "same-name", "A")
        assert await second.room("same-name") is None
        assert await second.rooms(10) == []
        await enter(second, "same-name", "B")
        assert len(await first.members("same-name")) == 1
    finally:
        for s in (first, second):
            await s.close()


async def test_a_change_on_one_instance_is_announced_to_the_other(redis_url: str) -> None:
    changed: asyncio.Queue[str] = asyncio.Queue()
    listener, writer = open_store(redis_url), open_store(redis_url)
    await listener.start(changed.put_nowait)
    own: list[str] = []
    await writer.start(own.append)
    try:
        a = await enter(writer, "shared-room", "A")
        assert await changed.get() == "shared-room"
        await writer.append(a.participant_id, text(a, "hello"))
        assert await changed.get() == "shared-room"
        assert own == []  # an instance is not told of its own changes (it knows already)
    finally:
        await writer.close()
        await listener.close()


@asynccontextmanager
async def blocked_across(
    a_url: str, b_url: str
) -> AsyncIterator[tuple[ChatService, ChatService, str, asyncio.Task[WaitResult]]]:
    """Two instances: Alice's wait is blocked on A (whose store is at `a_url`); yields both,
    Bob's client_id (he is on B) and Alice's pending wait."""
    a_side, b_side = ChatService(open_store(a_url)), ChatService(open_store(b_url))
    await a_side.start()
    await b_side.start()
    try:
        alice = await a_side.join("r", "Alice")
        bob = await b_side.join("r", "Bob")
        await a_side.wait("r", alice.client_id, timeout=1)  # Bob's 'joined'
        waiting = asyncio.create_task(a_side.wait("r", alice.client_id, timeout=60))
        await blocked(a_side)
        yield a_side, b_side, bob.client_id, waiting
    finally:
        await a_side.close()
        await b_side.close()


async def test_a_wait_on_one_instance_wakes_on_a_send_through_another(redis_url: str) -> None:
    async with blocked_across(redis_url, redis_url) as (_, b_side, bob, waiting):
        await b_side.send("r", bob, "across")
        got = await waiting
        assert [m.text for m in got.messages] == ["across"] and not got.timed_out


class Proxy:
    """A TCP relay to the test Redis that the test can cut and restore, so an outage is
    real for one store without touching the Redis server the other tests share."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    def url_for(self, url: str) -> str:
        """`url` (a store URL on the test Redis) through this relay."""
        return _through(url, self.port)

    async def open(self) -> None:
        host, port = "127.0.0.1", int(REDIS.rsplit(":", 1)[1].split("/")[0])

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            self._links |= {writer, up_writer}

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        await self.flowing.wait()
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

        self._server = await asyncio.start_server(relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in self._links:
            link.close()
        self._links.clear()
        await self._server.wait_closed()


def _through(url: str, port: int) -> str:
    """`url` with its port replaced (not a text replace: a random key prefix may hold the
    old port's digits)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    relay = Proxy()
    await relay.open()
    yield relay
    with contextlib.suppress(Exception):
        await relay.cut()


async def test_an_outage_gives_a_clear_retryable_error_and_the_store_recovers(
    redis_url: str, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_chat.stores.redis")
    through_proxy = proxy.url_for(redis_url)
    changed: asyncio.Queue[str] = asyncio.Queue()
    store = RedisStore(through_proxy)
    await store.start(changed.put_nowait)
    direct = open_store(redis_url)
    await direct.start(lambda _: None)
    try:
        a = await enter(store, "r", "A")
        await proxy.cut()
        with pytest.raises(ChatError) as down:
            await store.append(a.participant_id, text(a, "into the void"))
        assert down.value.code is Code.STORE_UNAVAILABLE
        assert "again" in down.value.message
        with pytest.raises(ChatError) as still_down:
            await store.claim(a.participant_id, None, 10)
        assert still_down.value.code is Code.STORE_UNAVAILABLE
        # The log says why, once for the outage rather than once per call.
        failing = [r for r in caplog.records if r.getMessage().startswith("Redis calls failing")]
        assert len(failing) == 1 and failing[0].levelno == logging.WARNING
        assert "ConnectionError" in failing[0].getMessage()

        # Meanwhile another instance changes the room; its notice cannot reach this one.
        b = await enter(direct, "r", "B")
        await proxy.open()  # Redis is back, on the same address
        # The subscription comes back by itself and wakes every local wait to re-read.
        async with asyncio.timeout(30):
            while (key := await changed.get()) != EVERYTHING:
                pass
        assert key == EVERYTHING
        sent = await store.append(a.participant_id, text(a, "back again"))
        assert not sent.duplicate
        assert [r.getMessage() for r in caplog.records].count("Redis calls succeed again") == 1
        got = await direct.claim(b.participant_id, None, 10)
        assert [m.text for m in got.messages][-1] == "back again"
        assert [m.seq for m in await store.history("r", 0, None, 10)] == [1, 2, 3]
    finally:
        await direct.close()
        await store.close()


async def test_a_store_started_while_redis_is_down_serves_once_it_is_up(
    redis_url: str, proxy: Proxy
) -> None:
    through_proxy = proxy.url_for(redis_url)
    await proxy.cut()
    store = RedisStore(through_proxy)
    await store.start(lambda _: None)  # no crash: the subscription keeps trying
    try:
        with pytest.raises(ChatError) as down:
            await store.rooms(10)
        assert down.value.code is Code.STORE_UNAVAILABLE
        await proxy.open()
        assert await store.rooms(10) == []
    finally:
        await store.close()


async def test_a_subscription_that_goes_silent_is_replaced(redis_url: str, proxy: Proxy) -> None:
    """A connection that stays open but carries nothing (a peer gone without a word) is
    found out by a ping that gets no answer, and replaced."""
    changed: asyncio.Queue[str] = asyncio.Queue()
    store = RedisStore(proxy.url_for(redis_url))
    store.ping_after = 0.2
    noticed = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "notices lost" in record.getMessage():
                noticed.set()

    watch = Watch()
    logging.getLogger("mcp_chat.stores.redis").addHandler(watch)
    await store.start(changed.put_nowait)
    try:
        proxy.flowing.clear()  # bytes are held, connections stay open
        async with asyncio.timeout(30):
            await noticed.wait()
        assert changed.empty()
        proxy.flowing.set()
        async with asyncio.timeout(30):
            assert await changed.get() == EVERYTHING
    finally:
        logging.getLogger("mcp_chat.stores.redis").removeHandler(watch)
        await store.close()


class Pauses:
    """Stands in for the change listener's sleep and clock: a pause is recorded and moves the
    clock on at once, so that a long outage is gone through in no time; the `count`th pause
    holds until `resume` is set."""

    def __init__(self, count: int) -> None:
        self.now = 0.0
        self.taken: list[float] = []
        self.count = count
        self.enough = asyncio.Event()
        self.resume = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.taken.append(seconds)
        self.now += seconds
        if len(self.taken) == self.count:
            self.enough.set()
            await self.resume.wait()

    def clock(self) -> float:
        return self.now

    async def outage(self, proxy: Proxy) -> list[float]:
        """Cut Redis off; the pauses taken until the `count`th."""
        self.taken.clear()
        self.enough.clear()
        self.resume.clear()
        await proxy.cut()
        async with asyncio.timeout(30):
            await self.enough.wait()
        return list(self.taken)


async def test_the_change_feed_retries_with_growing_pauses_and_warns_once_per_outage(
    redis_url: str, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    """However long Redis stays away, the pause between two attempts at subscribing again
    doubles up to 5 s and stays there, and the log says once that notices are lost. Once a
    subscription has held a while, the next outage starts over from the shortest pause."""
    caplog.set_level(logging.INFO, logger="mcp_chat.stores.redis")
    store = RedisStore(proxy.url_for(redis_url))
    pauses = Pauses(count=16)
    store.sleep, store.clock = pauses.sleep, pauses.clock
    changed: asyncio.Queue[str] = asyncio.Queue()

    def lost() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "notices lost" in r.getMessage()]

    await store.start(changed.put_nowait)
    try:
        # 16 attempts: 56 s of outage on the store's clock, beyond every interval it keeps.
        assert await pauses.outage(proxy) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2] + [5.0] * 10
        assert len(lost()) == 1 and lost()[0].levelno == logging.WARNING

        await proxy.open()
        pauses.resume.set()
        async with asyncio.timeout(30):  # back: every local wait is told to read again
            while await changed.get() != EVERYTHING:
                pass

        pauses.now += 60  # the subscription holds a minute
        assert (await pauses.outage(proxy))[:3] == [0.1, 0.2, 0.4]
        assert len(lost()) == 2
    finally:
        await store.close()


async def test_a_wait_blocked_through_an_outage_gets_what_it_missed(
    redis_url: str, proxy: Proxy
) -> None:
    """A send on another instance while this one's subscription is cut announces nothing
    here; when Redis is reachable again, every blocked wait re-reads and finds it."""
    through_proxy = proxy.url_for(redis_url)
    async with blocked_across(through_proxy, redis_url) as (a_side, b_side, bob, waiting):
        heard: list[str] = []
        a_side.signals.add_listener(heard.append)
        await proxy.cut()
        await b_side.send("r", bob, "while you were away")
        await proxy.open()
        got = await waiting
        assert [m.text for m in got.messages] == ["while you were away"]
        assert EVERYTHING in heard  # resource subscriptions are told to refresh too


async def test_more_operations_at_once_than_the_pool_has_connections_wait_for_one(
    redis_url: str,
) -> None:
    """redis-py's plain pool refused the 101st concurrent command, which callers saw as
    store_unavailable under a burst of requests; now they wait their turn."""
    store = open_store(redis_url)
    await store.start(lambda _: None)
    try:
        await enter(store, "busy", "A")
        found = await asyncio.gather(*(store.room("busy") for _ in range(3 * POOL_SIZE)))
        assert all(room is not None and room.room_id == "busy" for room in found)
    finally:
        await store.close()


@pytest.fixture
async def keys(redis_url: str) -> AsyncIterator[tuple[RedisStore, str, redis.Redis]]:
    """A started store, its key prefix, and a plain client to look at its keys."""
    store = open_store(redis_url)
    assert isinstance(store, RedisStore)
    await store.start(lambda _: None)
    try:
        with redis.Redis.from_url(REDIS, decode_responses=True) as client:
            yield store, parse_url(redis_url)[1], client
    finally:
        await store.close()


async def test_a_participant_stored_before_sent_messages_were_indexed_is_counted_right(
    keys: tuple[RedisStore, str, redis.Redis],
) -> None:
    """Participants written by 0.1.0 have no `sent` key; their unread is read off the log."""
    store, _, client = keys
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(3):
        await store.append(a.participant_id, text(a, f"a{i}"))
        await store.append(b.participant_id, text(b, f"b{i}"))
    client.hdel(store.keys.participant("r", b.participant_id), "indexed")
    client.delete(store.keys.sent("r", b.participant_id))
    assert await store.unread(b.participant_id) == 4  # A's arrival and a0..a2
    assert (await store.append(b.participant_id, text(b, "b3"))).unread == 4


async def test_log_entries_written_before_mentions_existed_read_as_mentioning_nobody(
    keys: tuple[RedisStore, str, redis.Redis],
) -> None:
    """Entries of six items (no mentions) from before; ones with mentions carry a seventh."""
    store, _, client = keys
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    to_b = messages.text_draft(a, "@B now", None, (b.participant_id,))
    await store.append(a.participant_id, to_b)
    old = json.dumps(["m_old", a.participant_id, "A", "message", "@B before", "2026-01-01T00:00Z"])
    room_key, log_key, _, _ = store.keys.room("r")
    client.zadd(log_key, {old: 4})
    client.hset(room_key, "last_seq", 4)
    stored = client.zrange(log_key, 3, 3, byscore=True)
    assert json.loads(str(stored[0]))[6] == [b.participant_id]
    claimed = await store.claim(b.participant_id, None, 10)
    assert [(m.text, m.mentions) for m in claimed.messages][-2:] == [
        ("@B now", (b.participant_id,)),
        ("@B before", ()),
    ]
    history = await store.history("r", after=0, before=None, limit=10)
    assert [m.mentions for m in history] == [(), (), (b.participant_id,), ()]


async def test_retention_leaves_no_keys_behind_for_the_rooms_it_removes(
    keys: tuple[RedisStore, str, redis.Redis],
) -> None:
    store, prefix, client = keys
    talked = [await enter(store, "r", name) for name in "AB"]
    for who in talked:
        await store.append(who.participant_id, text(who, f"{who.display_name} was here"))
    await store.claim(talked[1].participant_id, None, 10)
    assert await store.prune(messages_before=None, idle_before="9999") == Pruned(4, 1)
    # Redis drops emptied sets and hashes itself, so nothing at all is left.
    assert list(client.scan_iter(match=f"{prefix}:*")) == []


async def test_an_instance_that_cached_an_old_members_room_never_posts_into_the_new_one(
    redis_url: str,
) -> None:
    """Instance 1 knows Alice's room as 'lobby'; instance 2 sets the ended conversation aside
    and starts a new one there. Alice's calls through instance 1 stay in her conversation."""
    one, two = ChatService(open_store(redis_url)), ChatService(open_store(redis_url))
    await one.start()
    await two.start()
    try:
        alice = await one.join("lobby", "Alice")
        bob = await one.join("lobby", "Bob")
        await one.send("lobby", alice.client_id, "old news")  # instance 1 caches her room
        await one.leave("lobby", bob.client_id)
        carol = await two.join("lobby", "Carol", capacity=3)
        assert carol.created

        with pytest.raises(ChatError) as err:
            await one.send("lobby", alice.client_id, "into the new room?")
        assert err.value.code is Code.CHAT_ENDED
        got = await one.wait("lobby", alice.client_id, timeout=1)
        assert "Carol" not in {m.sender_name for m in got.messages}
        assert await one.unread("lobby", alice.client_id) == 0
        await one.leave("lobby", alice.client_id)

        new = await two.history("lobby", carol.client_id)
        assert [(m.seq, m.sender_name) for m in new.messages] == [(1, "Carol")]
        assert [m.participant.display_name for m in await two.room_members("lobby")] == ["Carol"]
    finally:
        await one.close()
        await two.close()
