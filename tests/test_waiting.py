"""The read turns a push and the waits of one participant take (`waiting.ReadTurns`);
the wait itself is tested through the core in test_chat.py and test_chat_mentions.py."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mcp_chat.waiting import ReadTurns

pytestmark = pytest.mark.anyio


async def test_nobody_followed_by_a_push_takes_turns() -> None:
    turns = ReadTurns()
    async with turns.turn("p"), turns.turn("p"):  # no lock: both at once
        pass
    assert isinstance(turns.turn("p"), contextlib.nullcontext)


async def test_a_followed_participants_readers_take_turns() -> None:
    turns = ReadTurns()
    turns.join("p")
    order: list[str] = []

    async def read(name: str) -> None:
        async with turns.turn("p"):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(read("push"), read("wait"))
    assert order == ["push in", "push out", "wait in", "wait out"]


async def test_the_turns_last_as_long_as_one_push_follows() -> None:
    turns = ReadTurns()
    turns.join("p")
    turns.join("p")  # two feeds follow the participant
    lock = turns.turn("p")
    turns.leave("p")
    assert turns.turn("p") is lock
    turns.leave("p")
    assert isinstance(turns.turn("p"), contextlib.nullcontext)
