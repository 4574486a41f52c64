"""The change feed's subscriptions: one channel on one Redis, or every sharded channel on a
Redis Cluster (a connection to each primary that owns some of them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mcp_chat.stores.redis.connect import Target, node_url

NoticeHandler = Callable[[str], None]


class Subscription(Protocol):
    async def relay(self, on_notice: NoticeHandler) -> None:
        """Hand each notice's text to `on_notice`; raise once the subscription is lost."""

    async def close(self) -> None: ...


def subscriber(url: str) -> aioredis.Redis:
    """A client for subscriptions, whose lost connection surfaces at once (see feed.py)."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


async def close_pubsub(pubsub: PubSub) -> None:
    # Through a typed name: some redis-py releases annotate aclose, some do not.
    close: Callable[[], Awaitable[None]] = pubsub.aclose
    await close()


async def relay(pubsub: PubSub, kind: str, ping_after: float, on_notice: NoticeHandler) -> None:
    """Hand the text of each message of `kind` to `on_notice`. A quiet connection is pinged:
    one that stays silent after a ping is taken as lost (a peer gone without a word)."""
    pinged = False
    while True:
        notice = await pubsub.get_message(timeout=ping_after)
        if notice is None:
            if pinged:
                raise rex.ConnectionError(f"no answer to a ping in {ping_after:g} s")
            await pubsub.ping()
            pinged = True
            continue
        pinged = False
        if notice.get("type") == "sunsubscribe":
            # The node gave up the channel's slot (a failover, a resharding).
            raise rex.ConnectionError("a sharded channel moved to another node")
        if notice.get("type") == kind:
            on_notice(str(notice["data"]))


class ChannelSubscription:
    """One Redis: one channel."""

    def __init__(self, pubsub: PubSub, ping_after: float) -> None:
        self._pubsub, self._ping_after = pubsub, ping_after

    @classmethod
    async def open(cls, client: aioredis.Redis, channel: str, ping_after: float) -> Subscription:
        # Every reply is seen (not only messages), so that a reply to a ping shows life.
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            await pubsub.subscribe(channel)
        except BaseException:
            await close_pubsub(pubsub)
            raise
        return cls(pubsub, ping_after)

    async def relay(self, on_notice: NoticeHandler) -> None:
        await relay(self._pubsub, "message", self._ping_after, on_notice)

    async def close(self) -> None:
        await close_pubsub(self._pubsub)


class ShardSubscription:
    """A cluster: every sharded channel (`keys.Keys.channels`), each on the primary that owns
    its slot now. Lost as a whole when any of its connections is: it is then made again from
    a fresh slot map."""

    def __init__(self, ping_after: float) -> None:
        self._ping_after = ping_after
        self._held: list[tuple[aioredis.Redis, PubSub]] = []

    @classmethod
    async def open(
        cls, cluster: RedisCluster, target: Target, channels: Sequence[str], ping_after: float
    ) -> Subscription:
        # A command on every channel's slot first: a slot whose owner died or moved makes
        # the cluster client refresh its slot map (or fail, and the feed tries again later).
        async with cluster.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.exists(channel)
            await pipe.execute()
        owners: dict[tuple[str, int], list[str]] = defaultdict(list)
        for channel in channels:
            node = cluster.get_node_from_key(channel)
            if node is None:
                raise rex.ConnectionError("no node owns a change channel's slot")
            owners[(node.host, int(node.port))].append(channel)
        made = cls(ping_after)
        try:
            for (host, port), owned in owners.items():
                client = subscriber(node_url(target, host, port))
                pubsub = client.pubsub(ignore_subscribe_messages=False)
                made._held.append((client, pubsub))
                for channel in owned:  # one slot per SSUBSCRIBE
                    await pubsub.ssubscribe(channel)
        except BaseException:
            await made.close()
            raise
        return made

    async def relay(self, on_notice: NoticeHandler) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for _, pubsub in self._held:
                    group.create_task(relay(pubsub, "smessage", self._ping_after, on_notice))
        except BaseExceptionGroup as lost:
            raise lost.exceptions[0] from None

    async def close(self) -> None:
        for client, pubsub in self._held:
            with contextlib.suppress(Exception):
                await close_pubsub(pubsub)
            with contextlib.suppress(Exception):
                await client.aclose()
        self._held.clear()
