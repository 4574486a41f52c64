"""`min_replicas=N`: a write is acknowledged only once N replicas have it (Redis `WAIT`)."""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster

from mcp_chat.stores.redis.connect import SOCKET_TIMEOUT, Target, node_url

WAIT_MS = 1000
"""How long a write waits for its replicas before it is answered store_unavailable."""
_MARK_MS = 10_000


class TooFewReplicas(rex.ConnectionError):
    """Fewer replicas than `min_replicas` acknowledged a write in time (an outage, to callers:
    the same call again is safe)."""


class Replicas:
    """WAIT counts what replicas acknowledged of the writes made on the connection it is sent
    on, and a pool hands out any connection. So a mark is written to the same node and WAIT
    sent after it on one connection: the node replicates in order, so a replica that has the
    mark has every write the node acknowledged before it."""

    def __init__(self, redis: aioredis.Redis, cluster: RedisCluster | None, target: Target) -> None:
        self.wanted = target.min_replicas
        self._redis, self._cluster, self._target = redis, cluster, target
        # On a cluster, one plain client per primary that WAIT was asked of (by address).
        self._nodes: dict[tuple[str, int], aioredis.Redis] = {}

    async def confirm(self, key: str) -> None:
        """Return once `wanted` replicas have every write made so far to `key`'s node."""
        if not self.wanted:
            return
        mark = f"{key}:replicated"
        client = self._redis if self._cluster is None else self._node_of(self._cluster, mark)
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(mark, "1", px=_MARK_MS)
            pipe.wait(self.wanted, WAIT_MS)
            _, acknowledged = await pipe.execute()
        if int(acknowledged) < self.wanted:
            raise TooFewReplicas(
                f"{acknowledged} of {self.wanted} replicas acknowledged a write in {WAIT_MS} ms"
            )

    def _node_of(self, cluster: RedisCluster, key: str) -> aioredis.Redis:
        """A client of the primary that owns `key`'s slot, as the cluster client last saw it
        (if that moved, the mark is refused with MOVED: an outage, which the caller retries)."""
        node = cluster.get_node_from_key(key)
        if node is None:
            raise rex.ConnectionError("no node owns the slot")
        address = (node.host, int(node.port))
        client = self._nodes.get(address)
        if client is None:
            client = aioredis.Redis.from_url(
                node_url(self._target, node.host, int(node.port)),
                decode_responses=True,
                socket_timeout=SOCKET_TIMEOUT + WAIT_MS / 1000,
                socket_connect_timeout=2,
            )
            self._nodes[address] = client
        return client

    async def close(self) -> None:
        for client in self._nodes.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._nodes.clear()
