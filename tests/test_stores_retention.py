"""The store contract on every backend (memory, SQLite, Redis): retention (`prune`)."""

from __future__ import annotations

import pytest

from mcp_chat.stores import Store
from mcp_chat.types import Counts, Pruned
from tests.stores_support import DAY1, DAY2, DAY3, DAY4, at, enter, enter_at, text

pytestmark = pytest.mark.anyio


async def test_prune_removes_old_messages_but_keeps_each_rooms_newest(store: Store) -> None:
    a = await enter_at(store, "r", "A", DAY1)
    b = await enter_at(store, "r", "B", DAY1)
    for when in (DAY1, DAY2, DAY3):
        await store.append(a.participant_id, at(text(a, f"said {when}"), when))
    quiet = await enter_at(store, "quiet", "Q", DAY1)
    pruned = await store.prune(messages_before=DAY3, idle_before=None)
    # r loses its two joins and DAY1, DAY2 messages; quiet keeps its only (newest) message.
    assert pruned == Pruned(messages=4, rooms=0)
    assert [m.text for m in await store.history("r", 0, None, 10)] == [f"said {DAY3}"]
    assert len(await store.history("quiet", 0, None, 10)) == 1
    # Sequence numbers go on from where they were; reads past the gap work.
    sent = await store.append(b.participant_id, at(text(b, "later"), DAY4))
    assert sent.message.seq == 6
    claimed = await store.claim(b.participant_id, None, 10)
    assert [m.text for m in claimed.messages] == [f"said {DAY3}"]
    assert await store.participant(quiet.secret_hash) is not None


async def test_prune_removes_idle_rooms_with_their_people_and_messages(store: Store) -> None:
    old = await enter_at(store, "old", "Old", DAY1)
    await store.append(old.participant_id, at(text(old, "long ago"), DAY2))
    fresh = await enter_at(store, "fresh", "Fresh", DAY1)
    await store.append(fresh.participant_id, at(text(fresh, "just now"), DAY4))
    pruned = await store.prune(messages_before=None, idle_before=DAY3)
    assert pruned == Pruned(messages=2, rooms=1)
    assert await store.room("old") is None
    assert await store.participant(old.secret_hash) is None
    assert await store.history("old", 0, None, 10) == []
    assert await store.room("fresh") is not None
    assert await store.counts() == Counts(rooms=1, participants=1)
    assert len(await store.history("fresh", 0, None, 10)) == 2
    # The id of a removed room is free again.
    await enter(store, "old", "Newcomer")


async def test_prune_with_nothing_to_do_changes_nothing(store: Store) -> None:
    a = await enter_at(store, "r", "A", DAY3)
    await store.append(a.participant_id, at(text(a, "recent"), DAY4))
    assert await store.prune(messages_before=None, idle_before=None) == Pruned(0, 0)
    assert await store.prune(messages_before=DAY1, idle_before=DAY1) == Pruned(0, 0)
    assert await store.counts() == Counts(1, 1)
    assert len(await store.history("r", 0, None, 10)) == 2
