"""The store contract on every backend (memory, SQLite, Redis): the random-pairing queue.
Entering, pairing, retrying, positions, leaving, and the sweep of the silent."""

from __future__ import annotations

import pytest

from mcp_chat.matching import MatchPolicy
from mcp_chat.stores import Store
from mcp_chat.types import Kind, QueueEntry

pytestmark = pytest.mark.anyio

POLICY = MatchPolicy(fallback_after=30, stale_after=20)


def queued(name: str, *tags: str, at: float) -> QueueEntry:
    return QueueEntry(f"q-{name}", f"h-{name}", name, tags, at, at)


async def test_the_second_entrant_is_paired_with_the_first_in_a_room_of_two(store: Store) -> None:
    ann, ben = queued("ann", at=100), queued("ben", at=101)
    assert await store.enqueue(ann, 100, POLICY) is None
    assert await store.queue_position(ann.entry_id) == 1
    matched = await store.enqueue(ben, 101, POLICY)
    assert matched is not None
    assert (matched.first.participant_id, matched.second.participant_id) == (
        ann.entry_id,
        ben.entry_id,
    )
    assert matched.room.capacity == 2 and matched.room.last_seq == 2
    assert [p.participant_id for p in await store.members(matched.room.room_id)] == [
        ann.entry_id,
        ben.entry_id,
    ]
    # Each learns of the other: the two events, one about each, addressed to the other.
    log = await store.history(matched.room.room_id, after=0, before=None, limit=10)
    assert [(m.kind, m.sender_id, m.mentions) for m in log] == [
        (Kind.MATCHED, ann.entry_id, (ben.entry_id,)),
        (Kind.MATCHED, ben.entry_id, (ann.entry_id,)),
    ]
    for entry in (ann, ben):
        found = await store.queue_entry(entry.secret_hash)
        assert found is not None and found.room_id == matched.room.room_id
        assert await store.queue_position(entry.entry_id) == 0
        assert await store.participant(entry.secret_hash) is not None


async def test_interests_wait_for_each_other_until_a_retry_after_the_fallback(
    store: Store,
) -> None:
    chess = queued("chess", "chess", at=100)
    stranger = queued("stranger", at=101)
    assert await store.enqueue(chess, 100, POLICY) is None
    assert await store.enqueue(stranger, 101, POLICY) is None
    assert [await store.queue_position(e.entry_id) for e in (chess, stranger)] == [1, 2]
    assert await store.rematch(stranger.entry_id, 110, POLICY) is None  # too soon
    await store.touch({chess.entry_id: 125, stranger.entry_id: 125})
    matched = await store.rematch(stranger.entry_id, 131, POLICY)
    assert matched is not None  # the one who waited longer comes first
    assert matched.first.participant_id == chess.entry_id
    assert await store.rematch(stranger.entry_id, 132, POLICY) is None  # matched already


async def test_leaving_the_queue_removes_only_a_waiting_entry(store: Store) -> None:
    ann, ben, cat = queued("ann", at=100), queued("ben", at=101), queued("cat", at=102)
    await store.enqueue(ann, 100, POLICY)
    await store.enqueue(ben, 101, POLICY)  # paired with ann
    await store.enqueue(cat, 102, POLICY)
    assert not await store.leave_queue(ann.entry_id)
    assert not await store.leave_queue("q-nobody")
    assert await store.leave_queue(cat.entry_id)
    assert await store.queue_position(cat.entry_id) == 0
    assert await store.queue_entry(ann.secret_hash) is not None


async def test_the_silent_and_the_disconnected_are_dropped_and_never_paired(
    store: Store,
) -> None:
    policy = MatchPolicy(fallback_after=10, stale_after=20)
    ann, ben = queued("ann", "a", at=100), queued("ben", "b", at=101)
    cat = queued("cat", "c", at=102)
    for entry in (ann, ben, cat):  # no interest shared: nobody is paired yet
        assert await store.enqueue(entry, entry.entered_at, policy) is None
    await store.touch({ben.entry_id: 115})
    assert await store.sweep(121, gone_after=1e9, stale_after=20) == []  # ann: silent
    assert [await store.queue_position(e.entry_id) for e in (ann, ben, cat)] == [0, 1, 2]
    await store.disconnect([cat.entry_id])
    assert await store.queue_position(cat.entry_id) == 0
    matched = await store.enqueue(queued("dan", at=122), 122, policy)
    assert matched is not None and matched.first.participant_id == ben.entry_id
