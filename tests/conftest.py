"""Shared fixtures: every store backend, and a chat service on each."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from mcp_chat.chat import ChatService
from mcp_chat.limits import Limits
from mcp_chat.matching import MatchPolicy
from mcp_chat.presence import PresencePolicy
from mcp_chat.stores import Store, open_store

if TYPE_CHECKING:
    from tests.cluster_support import LocalCluster


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


REDIS = "redis://127.0.0.1:6379/0"
"""The shared test Redis (`.ci/run` starts it). Each test keeps to its own key prefix."""


def prefixed_redis_url() -> Iterator[str]:
    """A store URL on the test Redis with a fresh key prefix; its keys go when this ends."""
    prefix = f"test-{secrets.token_hex(6)}"
    yield f"{REDIS}?prefix={prefix}"
    with redis.Redis.from_url(REDIS) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from prefixed_redis_url()


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_holder() -> socket.socket:
    """A socket bound to a free loopback port with SO_REUSEADDR, never listening: while it is
    open no other process can bind the port, yet a server whose socket has SO_REUSEADDR too
    (uvicorn's, redis-server's) can listen on it, and come back on it after a restart."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    return holder


class PrivateRedis:
    """A redis-server of the test's own on 127.0.0.1 (Debian's `redis-server`, which `.ci/run`
    installs), for what must not happen to the shared one: stopping it, or making it a
    replica. `start` after `stop` brings it back on the same port, empty."""

    def __init__(self, *options: str) -> None:
        self._holder = port_holder()  # held until close: a restart comes back on it
        self.port: int = self._holder.getsockname()[1]
        self.options = options
        self._dir = tempfile.TemporaryDirectory(prefix="redis-")
        self._proc: subprocess.Popen[str] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # No persistence: nothing of it outlives the test.
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self._dir.name, *self.options]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready, lines = threading.Event(), []

        def read() -> None:  # to the end: a full pipe would stop the server
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "Ready to accept connections" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout=30) or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("redis-server did not start:\n" + "".join(lines))
        self._proc = proc

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=30)
            self._proc = None

    def close(self) -> None:
        self.stop()
        self._holder.close()
        self._dir.cleanup()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """This worker's own Redis Cluster (3 primaries, 3 replicas), for the whole session."""
    from tests.cluster_support import local_cluster

    yield from local_cluster()


@pytest.fixture
def redis_cluster_url(redis_cluster: LocalCluster) -> Iterator[str]:
    """A store URL on the session's cluster with a fresh key prefix; its keys go when this
    ends."""
    prefix = f"test-{secrets.token_hex(6)}"
    yield redis_cluster.url(prefix)
    redis_cluster.delete_prefix(prefix)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param in ("redis", "redis-cluster"):
        url: str = request.getfixturevalue(request.param.replace("-", "_") + "_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'chat.db'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.start(lambda room_id: None)
    yield s
    await s.close()


@pytest.fixture
async def chat(store_url: str) -> AsyncIterator[ChatService]:
    service = ChatService(open_store(store_url), Limits(max_message_bytes=1024, batch_size=5))
    await service.start()
    yield service
    await service.close()


class Clock:
    """Wall-clock seconds that a test moves by hand (the `clock` of the `service` fixture)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(store_url: str, clock: Clock) -> AsyncIterator[ChatService]:
    """A chat service on `clock`, for the queue and presence: short match fallbacks, and a
    heartbeat that tests run by hand."""
    chat = ChatService(
        open_store(store_url),
        matching_policy=MatchPolicy(fallback_after=30, stale_after=20),
        # A heartbeat that never fires by itself: tests call heartbeat.beat() with a chosen time.
        presence_policy=PresencePolicy(heartbeat=3600, away_after=60, gone_after=600),
        clock=clock,
    )
    await chat.start()
    yield chat
    await chat.close()


async def blocked(chat: ChatService, count: int = 1) -> None:
    """Return once `count` waits are blocked inside `chat` (so a test exercises the wake-up,
    not the read that happens before blocking)."""
    async with asyncio.timeout(10):
        while chat.signals.waiting < count:
            await asyncio.sleep(0.001)
