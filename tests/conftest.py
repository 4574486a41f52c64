"""Shared fixtures: every store backend, and a chat service on each."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from mcp_chat.chat import ChatService, Limits
from mcp_chat.stores import Store, open_store


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


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
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


async def blocked(chat: ChatService, count: int = 1) -> None:
    """Return once `count` waits are blocked inside `chat` (so a test exercises the wake-up,
    not the read that happens before blocking)."""
    async with asyncio.timeout(10):
        while chat.signals.waiting < count:
            await asyncio.sleep(0.001)
