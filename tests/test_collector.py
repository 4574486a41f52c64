"""The collector that gives memory back after a burst (mcp_chat.collector)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from mcp_chat import collector
from mcp_chat.collector import Collector, collecting


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def quiet_gc() -> Iterator[None]:
    """No automatic collections during the test: only the ones it makes happen."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def old_garbage() -> weakref.ref[Node]:
    """A reference cycle that reached the oldest generation while in use, then was dropped:
    young collections never look at it again."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(1)  # survivors of a young collection move to the oldest generation
    return weakref.ref(a)


def test_garbage_left_by_a_burst_is_collected_once_things_calm_down(quiet_gc: None) -> None:
    c = Collector()
    c.tick()
    garbage = old_garbage()
    gc.collect(0)
    gc.collect(1)  # the young generations are collected: the cycle is not

    assert c.tick() is False  # something happened since the last look: not calm yet
    assert garbage() is not None
    assert c.tick() is True  # nothing since: collected
    assert garbage() is None
    assert c.tick() is False  # and nothing to do while idle


def test_no_full_collection_while_the_burst_goes_on(quiet_gc: None) -> None:
    c = Collector()
    garbage = old_garbage()
    for _ in range(3):
        gc.collect(1)  # activity between every two looks
        assert c.tick() is False
    assert garbage() is not None


@pytest.mark.anyio
async def test_collecting_freezes_start_up_objects_and_looks_every_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked = asyncio.Event()
    monkeypatch.setattr(collector, "INTERVAL", 0.0)

    def tick(self: Collector) -> bool:
        looked.set()
        return False

    monkeypatch.setattr(Collector, "tick", tick)
    try:
        async with collecting():
            assert gc.get_freeze_count() > 0
            await looked.wait()
    finally:
        gc.unfreeze()
