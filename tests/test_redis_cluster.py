"""The Redis Cluster URL, and `min_replicas=N` on one Redis and on a cluster: a write that
replicas did not get answers store_unavailable, and the same send again is stored once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from mcp_chat import errors
from mcp_chat.errors import StartupError
from mcp_chat.stores import Store, open_store
from mcp_chat.stores.redis.connect import Target, target_of
from mcp_chat.stores.redis.keys import Keys, slot
from mcp_chat.types import Kind
from tests.cluster_support import LocalCluster, await_condition, local_cluster
from tests.conftest import PrivateRedis
from tests.stores_support import enter, text

pytestmark = pytest.mark.anyio


def test_a_cluster_url_names_its_seeds_and_keeps_the_options() -> None:
    found = target_of(
        "redis+cluster://u:pw@10.0.0.1:7000,node-b:7001?prefix=team&min_replicas=1&max_connections=9"
    )
    assert found == Target(
        "redis://u:pw@10.0.0.1:7000?max_connections=9",
        "team",
        1,
        (("10.0.0.1", 7000), ("node-b", 7001)),
    )
    assert found.cluster
    assert target_of("rediss+cluster://h:1").url == "rediss://h:1"
    plain = target_of("redis://h:1/2?min_replicas=2")
    assert (plain.url, plain.min_replicas, plain.cluster) == ("redis://h:1/2", 2, False)


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis+cluster://", "HOST:PORT"),
        ("redis+cluster://h", "HOST:PORT"),
        ("redis+cluster://h:1,", "HOST:PORT"),
        ("redis+cluster://h:1/3", "database"),
        ("redis://h:1?min_replicas=abc", "min_replicas"),
        ("redis+cluster://h:1?min_replicas=-1", "min_replicas"),
    ],
)
def test_a_malformed_url_says_what_to_fix(url: str, names: str) -> None:
    with pytest.raises(StartupError, match=names):
        target_of(url)


def test_a_malformed_cluster_url_never_shows_its_password() -> None:
    with pytest.raises(StartupError) as refused:
        target_of("redis+cluster://user:hunter2secret@h")
    assert "hunter2secret" not in str(refused.value)


@pytest.fixture
def primary() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.close()


async def started(url: str) -> Store:
    store = open_store(url)
    await store.start(lambda _: None)
    return store


@pytest.fixture
async def waiting_store(primary: PrivateRedis) -> AsyncIterator[Store]:
    store = await started(f"{primary.url}?min_replicas=1")
    yield store
    await store.close()


async def test_on_one_redis_a_send_no_replica_got_is_refused_then_stored_once(
    primary: PrivateRedis, waiting_store: Store
) -> None:
    store = waiting_store
    with pytest.raises(errors.ChatError) as refused:  # joining is a write like any other
        await enter(store, "first", "A")
    assert refused.value.code is errors.Code.STORE_UNAVAILABLE
    replica = PrivateRedis("--replicaof", "127.0.0.1", str(primary.port))
    try:
        with redis.Redis(port=replica.port, decode_responses=True) as c:
            await asyncio.to_thread(
                await_condition,
                lambda: c.info("replication").get("master_link_status") == "up",
                "the replica to sync",
            )
        a = await enter(store, "r", "A")
        b = await enter(store, "r", "B")
        replica.stop()
        with pytest.raises(errors.ChatError) as lost:
            await store.append(a.participant_id, text(a, "hello", key="k1"))
        assert lost.value.code is errors.Code.STORE_UNAVAILABLE
        replica.start()
        with redis.Redis(port=replica.port, decode_responses=True) as c:
            await asyncio.to_thread(
                await_condition,
                lambda: c.info("replication").get("master_link_status") == "up",
                "the replica to sync again",
            )
        again = await store.append(a.participant_id, text(a, "hello", key="k1"))
        assert again.duplicate
        said = await store.history("r", after=0, before=None, limit=10)
        assert [m.text for m in said].count("hello") == 1
        claimed = await store.claim(b.participant_id, None, 10)
        assert [m.text for m in claimed.messages if m.kind is Kind.MESSAGE] == ["hello"]
    finally:
        replica.close()


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    yield from local_cluster()  # its own: a replica is stopped


async def test_on_a_cluster_a_send_its_shard_replica_missed_is_refused_then_stored_once(
    cluster: LocalCluster,
) -> None:
    store = await started(cluster.url("t", min_replicas="1"))
    wanting_two = await started(cluster.url("t", min_replicas="2"))  # one replica per shard
    try:
        a = await enter(store, "r", "A")
        await enter(store, "r", "B")
        with pytest.raises(errors.ChatError) as too_many:
            await wanting_two.append(a.participant_id, text(a, "to two", key="k0"))
        assert too_many.value.code is errors.Code.STORE_UNAVAILABLE
        replica = cluster.replica_of(cluster.owner("r"))
        cluster.stop(replica)
        with pytest.raises(errors.ChatError) as lost:
            await store.append(a.participant_id, text(a, "hello", key="k1"))
        assert lost.value.code is errors.Code.STORE_UNAVAILABLE
        cluster.restart(replica)
        await asyncio.to_thread(cluster.wait_healthy)
        again = await store.append(a.participant_id, text(a, "hello", key="k1"))
        assert again.duplicate
        said = [m.text for m in await store.history("r", after=0, before=None, limit=10)]
        assert said.count("hello") == 1
    finally:
        await store.close()
        await wanting_two.close()


def test_change_notices_spread_over_every_primary_each_near_its_room(
    redis_cluster: LocalCluster,
) -> None:
    """No one channel carries every notice: the sharded channels lie in every primary's
    slots, and a room's channel in the same stretch of slots as the room."""
    keys = Keys("p")
    assert {redis_cluster.owner(c) for c in keys.channels()} == set(redis_cluster.primaries())
    for room_id in (f"room-{i}" for i in range(50)):
        assert slot(keys.channel(room_id)) // 128 == slot(room_id) // 128
