"""The store contract on every backend (memory, SQLite, Redis): rooms. Joining, leaving,
seats, the listing and the counts."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat import messages
from mcp_chat.errors import ChatError, Code
from mcp_chat.stores import Store
from mcp_chat.types import Counts, Kind
from tests.stores_support import enter, person, text

pytestmark = pytest.mark.anyio


async def test_capacity_holds_when_many_join_at_once(store: Store) -> None:
    attempts = [person("duo", f"P{i}") for i in range(8)]
    outcomes = await asyncio.gather(
        *(store.join("duo", 2, p, messages.event_draft(Kind.JOINED, p)) for p in attempts),
        return_exceptions=True,
    )
    joined = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ChatError)]
    assert len(joined) == 2 and len(refused) == 6
    assert all(e.code is Code.ROOM_FULL for e in refused)
    assert len(await store.members("duo")) == 2


async def test_leaving_a_pair_ends_it_and_a_group_lives_on(store: Store) -> None:
    a = await enter(store, "pair", "A")
    await enter(store, "pair", "B")
    left = await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert left.room_ended
    with pytest.raises(ChatError) as gone:
        await store.append(a.participant_id, text(a, "still here?"))
    assert gone.value.code is Code.NOT_IN_ROOM

    g1 = await enter(store, "group", "G1", capacity=3)
    g2 = await enter(store, "group", "G2", capacity=3)
    assert not (
        await store.leave(g1.participant_id, messages.event_draft(Kind.LEFT, g1))
    ).room_ended
    await store.append(g2.participant_id, text(g2, "anyone?"))
    assert (await store.leave(g2.participant_id, messages.event_draft(Kind.LEFT, g2))).room_ended


async def test_rooms_lists_open_rooms_only(store: Store) -> None:
    a = await enter(store, "one", "A")
    await enter(store, "two", "B", capacity=4)
    await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    listed = await store.rooms(limit=10)
    assert [(r.room_id, r.members, r.capacity) for r in listed] == [("two", 1, 4)]


async def test_counts_open_rooms_and_their_members(store: Store) -> None:
    assert await store.counts() == Counts(0, 0)
    a = await enter(store, "pair", "A")
    await enter(store, "pair", "B")
    await enter(store, "group", "C", capacity=4)
    await store.append(a.participant_id, text(a, "hi"))
    assert await store.counts() == Counts(rooms=2, participants=3)
    await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))  # ends the pair
    assert await store.counts() == Counts(rooms=1, participants=1)


async def test_a_leave_that_ends_a_pair_addresses_the_one_left_behind(store: Store) -> None:
    a = await enter(store, "duo", "A")
    b = await enter(store, "duo", "B")
    left = await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert left.room_ended and left.message.mentions == (b.participant_id,)
    logged = await store.history("duo", after=0, before=None, limit=10)
    assert logged[-1].mentions == (b.participant_id,)

    x = await enter(store, "group", "X", capacity=3)
    await enter(store, "group", "Y", capacity=3)
    lives_on = await store.leave(x.participant_id, messages.event_draft(Kind.LEFT, x))
    assert not lives_on.room_ended and lives_on.message.mentions == ()


async def test_a_pair_whose_members_are_gone_takes_two_newcomers(store: Store) -> None:
    a = await enter(store, "duo", "A")
    b = await enter(store, "duo", "B")
    await store.disconnect([a.participant_id, b.participant_id])
    assert [r.room_id for r in await store.rooms(limit=10)] == []  # nobody is there
    c = await enter(store, "duo", "C")
    listed = await store.rooms(limit=10)
    assert [(r.room_id, r.members, r.capacity) for r in listed] == [("duo", 1, 2)]
    d = await enter(store, "duo", "D")
    await store.append(c.participant_id, text(c, "hi D"))
    assert "hi D" in [m.text for m in (await store.claim(d.participant_id, None, 10)).messages]
    # A, gone and seatless, gives up its place: the pair of C and D goes on.
    left = await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert not left.room_ended
    await store.append(d.participant_id, text(d, "still here"))
    # One of the pair leaves: it ends, as a pair does.
    assert (await store.leave(c.participant_id, messages.event_draft(Kind.LEFT, c))).room_ended


async def test_rooms_lists_only_rooms_with_someone_not_gone(store: Store) -> None:
    for i in range(12):  # more empty rooms than the page of the listing, all newer
        ghost = await enter(store, f"ghost-{i:02}", "G", capacity=3)
        await store.disconnect([ghost.participant_id])
    lively = await enter(store, "lively", "L", capacity=3)
    gone = await enter(store, "lively", "M", capacity=3)
    await store.disconnect([gone.participant_id])
    for i in range(12):
        ghost = await enter(store, f"later-{i:02}", "G", capacity=3)
        await store.disconnect([ghost.participant_id])
    listed = await store.rooms(limit=5)
    assert [(r.room_id, r.members) for r in listed] == [("lively", 1)]
    await store.leave(lively.participant_id, messages.event_draft(Kind.LEFT, lively))
    assert await store.rooms(limit=5) == []
