"""The Redis store's URL, and the client it opens: one Redis (`redis://`, `rediss://`) or a
Redis Cluster (`redis+cluster://HOST:PORT[,HOST:PORT...]`, `rediss+cluster://`)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from mcp_chat.credentials import redact_url
from mcp_chat.errors import StartupError

DEFAULT_PREFIX = "mcp-chat"
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_SEED = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")
POOL_SIZE = 100
"""Connections to Redis per process (per node, on a cluster), unless the URL says otherwise
(`?max_connections=N`)."""
SOCKET_TIMEOUT = 5.0
"""Seconds a command may take, and an operation may wait for a free connection."""
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """What a store URL names."""

    url: str
    """The URL redis-py reads: the whole of it for one Redis, the first seed on a cluster."""
    prefix: str
    min_replicas: int = 0
    seeds: tuple[tuple[str, int], ...] = ()
    """Every seed node of a cluster (none for one Redis)."""

    @property
    def cluster(self) -> bool:
        return bool(self.seeds)


def parse_url(url: str) -> tuple[str, str]:
    """`redis://host:port/db?prefix=name` -> (the URL redis-py reads, the key prefix)."""
    target = target_of(url)
    return target.url, target.prefix


def target_of(url: str) -> Target:
    """Read a store URL; a malformed one is a StartupError that says what to fix."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = _last(query, "prefix")
    prefix = DEFAULT_PREFIX if given is None else given
    if not _PREFIX.fullmatch(prefix):
        raise StartupError(
            f"invalid key prefix {prefix!r} in the Redis store URL: use 1 to 64 letters, "
            "digits, '.', '_', ':' or '-', starting with a letter or digit."
        )
    min_replicas = _min_replicas(_last(query, "min_replicas"))
    rest = urlencode([(k, v) for k, v in query if k not in ("prefix", "min_replicas")])
    scheme = CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None:
        return Target(urlunsplit(parts._replace(query=rest)), prefix, min_replicas)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = [_SEED.fullmatch(seed) for seed in hosts.split(",")]
    if not hosts or not all(seeds) or parts.path not in ("", "/", "/0"):
        raise StartupError(
            f"invalid Redis Cluster URL {redact_url(url)!r}: write "
            f"{parts.scheme}://HOST:PORT[,HOST:PORT...] (one or more seed nodes, each with its "
            "port; no database number, a cluster has only database 0)."
        )
    found = tuple((m["host"].strip("[]"), int(m["port"])) for m in seeds if m)
    first = f"{userinfo}@{hosts.split(',')[0]}" if userinfo else hosts.split(",")[0]
    return Target(urlunsplit((scheme, first, "", rest, "")), prefix, min_replicas, found)


def _last(query: list[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in query if key == name]
    return values[-1] if values else None


def _min_replicas(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit() or int(value) > 16:
        raise StartupError(
            f"invalid min_replicas={value!r} in the Redis store URL: use a whole number from "
            "0 to 16, the replicas that must have each write before it is acknowledged."
        )
    return int(value)


def node_url(target: Target, host: str, port: int) -> str:
    """The URL of one node of a cluster, with the credentials and options of `target`."""
    parts = urlsplit(target.url)
    userinfo = parts.netloc.rpartition("@")[0]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{address}" if userinfo else address))


def open_client(target: Target) -> tuple[aioredis.Redis, RedisCluster | None]:
    """The client every operation uses, and the same as a cluster client on a cluster. Typed
    as one Redis, the cluster client speaks the same commands: the operations are written once
    for both."""
    # One quick retry hides a stale pooled connection after a restart; a longer outage
    # is reported to the caller at once rather than held up.
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 1)
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": 2,
        "retry": retry,
    }
    if target.cluster:
        cluster = RedisCluster.from_url(
            target.url,
            startup_nodes=[ClusterNode(host, port) for host, port in target.seeds[1:]],
            max_connections=POOL_SIZE,
            # A failover shows as connection errors, then MOVED: refresh the slot map on
            # every MOVED, so that calls reach the promoted replica at once.
            reinitialize_steps=1,
            **common,
        )
        return cast(aioredis.Redis, cluster), cluster
    # More operations at once than the pool has connections wait their turn for one
    # (redis-py's plain pool refuses them at once, which callers would see as an outage);
    # `?max_connections=N` in the URL sizes the pool.
    pool = aioredis.BlockingConnectionPool.from_url(
        target.url, max_connections=POOL_SIZE, timeout=SOCKET_TIMEOUT, **common
    )
    return aioredis.Redis.from_pool(pool), None
