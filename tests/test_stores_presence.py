"""The store contract on every backend (memory, SQLite, Redis): presence. Members marked
gone, their seats, and their return."""

from __future__ import annotations

import time

import pytest

from mcp_chat import messages
from mcp_chat.errors import ChatError, Code
from mcp_chat.stores import Store
from mcp_chat.stores.base import Unseated
from mcp_chat.types import Kind
from tests.stores_support import enter, text

pytestmark = pytest.mark.anyio


async def test_a_gone_members_seat_is_free_and_it_comes_back_only_to_a_free_one(
    store: Store,
) -> None:
    a = await enter(store, "trio", "A", capacity=3)
    b = await enter(store, "trio", "B", capacity=3)
    c = await enter(store, "trio", "C", capacity=3)
    await store.disconnect([a.participant_id])
    d = await enter(store, "trio", "D", capacity=3)  # A's seat
    with pytest.raises(ChatError) as full:
        await enter(store, "trio", "E", capacity=3)
    assert full.value.code is Code.ROOM_FULL

    # A calls again: no free seat. Its calls are refused, and it stays gone.
    with pytest.raises(Unseated):
        await store.append(a.participant_id, text(a, "I'm back"))
    with pytest.raises(Unseated):
        await store.claim(a.participant_id, None, 10)
    with pytest.raises(ChatError) as refused:
        await store.come_back(a.participant_id)
    assert refused.value.code is Code.ROOM_FULL
    assert await store.touch({a.participant_id: time.time()}) == []
    assert [p.gone for p in await store.members("trio")] == [True, False, False, False]

    # A seat frees up: A takes it, and the room is told.
    await store.leave(d.participant_id, messages.event_draft(Kind.LEFT, d))
    back = await store.come_back(a.participant_id)
    assert back is not None and (back.kind, back.sender_id) == (Kind.RETURNED, a.participant_id)
    assert await store.come_back(a.participant_id) is None  # nothing more to do
    await store.append(a.participant_id, text(a, "I'm back"))
    got = await store.claim(b.participant_id, None, 10)
    assert [m.kind for m in got.messages][-3:] == [Kind.LEFT, Kind.RETURNED, Kind.MESSAGE]
    assert await store.touch({c.participant_id: time.time()}) == []


async def test_a_gone_member_comes_back_at_a_sign_of_life_only_to_a_free_seat(
    store: Store,
) -> None:
    a = await enter(store, "duo", "A")
    await enter(store, "duo", "B")
    await store.disconnect([a.participant_id])
    events = await store.touch({a.participant_id: time.time()})
    assert [(m.kind, m.sender_id) for m in events] == [(Kind.RETURNED, a.participant_id)]
    await store.disconnect([a.participant_id])
    await enter(store, "duo", "C")
    assert await store.touch({a.participant_id: time.time()}) == []  # C has the seat
