"""Retention: its cutoffs, and pruning through the store on every backend at a given time."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError
from mcp_chat.limits import Limits
from mcp_chat.retention import Retention
from mcp_chat.stores import Store, open_store
from tests.stores_support import DAY1, DAY2, DAY4, at, enter_at, text

pytestmark = pytest.mark.anyio

NOON_DAY4 = datetime(2026, 1, 4, 12, tzinfo=UTC)


def test_zero_keeps_forever() -> None:
    keep = Retention()
    assert not keep.enabled
    assert keep.cutoffs(NOON_DAY4) == (None, None)


def test_cutoffs_are_store_timestamps_the_given_ages_ago() -> None:
    retention = Retention(message_age=3600, idle_age=2 * 86400)
    assert retention.enabled
    assert retention.cutoffs(NOON_DAY4) == ("2026-01-04T11:00:00.000Z", "2026-01-02T12:00:00.000Z")


async def test_a_run_at_a_given_time_removes_what_is_too_old(store: Store) -> None:
    talk = await enter_at(store, "talk", "A", DAY1)
    await store.append(talk.participant_id, at(text(talk, "today"), DAY4))
    idle = await enter_at(store, "idle", "B", DAY1)
    await store.append(idle.participant_id, at(text(idle, "day two"), DAY2))

    pruned = await Retention(message_age=3600, idle_age=86400).prune(store, NOON_DAY4)
    assert (pruned.messages, pruned.rooms) == (3, 1)
    assert await store.room("idle") is None
    assert [m.text for m in await store.history("talk", 0, None, 10)] == ["today"]


async def test_the_service_runs_retention_only_when_asked(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with retention off, the service never runs it; with it on, it runs it with its
    interval until closed, and the run removes an idle room."""
    runs: list[tuple[Retention, float]] = []
    ended = asyncio.Event()
    real_run = Retention.run

    async def run(self: Retention, store: Store, interval: float) -> None:
        runs.append((self, interval))
        try:
            await real_run(self, store, interval)
        finally:
            ended.set()

    monkeypatch.setattr(Retention, "run", run)
    for retention in (Retention(), Retention(idle_age=60)):
        chat = ChatService(open_store(store_url), Limits(retention=retention, retention_interval=0))
        await chat.start()
        try:
            if retention.enabled:
                idle = await enter_at(chat.store, "idle", "B", DAY1)
                # Retention runs without pause and the room is idle from the start: it may be
                # gone already (on a cluster, a join's last steps leave it the time).
                with contextlib.suppress(ChatError):
                    await chat.store.append(idle.participant_id, at(text(idle, "day two"), DAY2))
                while await chat.store.room("idle") is not None:
                    await asyncio.sleep(0)
        finally:
            await chat.close()
    assert runs == [(Retention(idle_age=60), 0)]
    assert ended.is_set()  # closing the service ended the run


async def test_the_background_task_prunes_on_its_own_clock(store: Store) -> None:
    idle = await enter_at(store, "idle", "B", DAY1)
    await store.append(idle.participant_id, at(text(idle, "day two"), DAY2))
    task = asyncio.create_task(
        Retention(idle_age=86400).run(store, interval=0, clock=lambda: NOON_DAY4)
    )
    try:
        while await store.room("idle") is not None:
            await asyncio.sleep(0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await store.participant(idle.secret_hash) is None
