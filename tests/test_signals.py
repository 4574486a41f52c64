"""Wake-ups, alone: a change between the read and the wait still wakes the waiter, and
`Watch` settles the waker's handoff however the woken loop ends."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat.errors import ChatError, Code
from mcp_chat.signals import Handoff, Reply, RoomSignals, Watch, current_reply, settle

pytestmark = pytest.mark.anyio


async def test_a_change_between_the_read_and_the_wait_still_wakes() -> None:
    signals = RoomSignals()
    changed = signals.watch("r")
    signals.notify("r")  # lands after the read, before the wait
    async with asyncio.timeout(5):
        assert await signals.wait("r", changed, 30) is not None
    assert signals.waiting == 0


async def test_a_wait_that_times_out_owes_nothing() -> None:
    signals = RoomSignals()
    assert await signals.wait("r", signals.watch("r"), 0.01) is None
    assert signals.notify("r") == frozenset()


async def sleeper(signals: RoomSignals, then: str, reply: Reply | None = None) -> None:
    """A loop that sleeps once, is woken, then answers or finds nothing (`then`)."""
    current_reply.set(reply)
    with Watch(signals, "r", "wait_for_message") as watch:
        watch.look()
        await watch.sleep(30)
        if then == "answer":
            watch.answer()
        elif then == "idle":
            watch.idle()
        elif then == "fail":
            raise RuntimeError("the store failed")


async def woken(signals: RoomSignals, then: str, reply: Reply | None = None) -> set[Handoff]:
    task = asyncio.create_task(sleeper(signals, then, reply))
    async with asyncio.timeout(5):
        while signals.waiting == 0:
            await asyncio.sleep(0)
    handoffs = set(signals.notify("r"))
    assert len(handoffs) == 1
    if then == "fail":
        with pytest.raises(RuntimeError):
            await task
    else:
        await task
    return handoffs


async def test_an_answer_settles_the_waker_once_it_is_written() -> None:
    signals, reply = RoomSignals(), Reply()
    handoffs = await woken(signals, "answer", reply)
    assert not any(h.done() for h in handoffs)
    reply.sent()
    assert all(h.done() for h in handoffs)


async def test_an_answer_with_no_reply_to_follow_settles_at_once() -> None:
    handoffs = await woken(RoomSignals(), "answer")
    assert all(h.done() for h in handoffs)


@pytest.mark.parametrize("then", ["idle", "leave", "fail"])
async def test_a_loop_that_does_not_answer_never_holds_its_waker(then: str) -> None:
    handoffs = await woken(RoomSignals(), then, Reply())  # a reply never written
    async with asyncio.timeout(5):
        await settle(handoffs)
    assert all(h.done() for h in handoffs)


async def test_stopping_wakes_the_sleepers_and_refuses_the_next_look() -> None:
    signals = RoomSignals()

    async def loop() -> None:
        with Watch(signals, "r", "wait_for_match") as watch:
            while True:
                watch.look()
                await watch.sleep(30)

    task = asyncio.create_task(loop())
    async with asyncio.timeout(5):
        while signals.waiting == 0:
            await asyncio.sleep(0)
        signals.stop()
        with pytest.raises(ChatError) as refused:
            await task
    assert refused.value.code is Code.SERVER_RESTARTING
    assert "wait_for_match" in refused.value.message
