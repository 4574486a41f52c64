"""Shared fixtures: every store backend, and a chat service on each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_chat.chat import ChatService, Limits
from mcp_chat.stores import Store, open_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
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
