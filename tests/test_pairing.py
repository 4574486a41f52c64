"""Random pairing (`mcp_chat.pairing`) through the core, on every store."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.types import Kind, QueueResult
from tests.conftest import Clock, blocked

pytestmark = pytest.mark.anyio


async def test_the_second_entrant_is_matched_and_the_first_learns_of_it(
    service: ChatService,
) -> None:
    first = await service.pairing.enter("Ann")
    assert first.matched is None and first.position == 1
    waiting = asyncio.create_task(service.pairing.wait(first.client_id, timeout=30))
    await blocked(service)
    second = await service.pairing.enter("Ben")
    assert second.matched is not None and second.partner is not None
    assert second.partner.display_name == "Ann"
    learned = await waiting
    assert learned.matched is not None and not learned.timed_out
    room_id = learned.matched.room.room_id
    assert room_id == second.matched.room.room_id
    assert learned.partner is not None and learned.partner.display_name == "Ben"
    # Both chat in the new room with the client ids the queue gave them.
    heard = await service.wait(room_id, first.client_id, timeout=1)
    assert [(m.kind, m.sender_name) for m in heard.messages] == [(Kind.MATCHED, "Ben")]
    await service.send(room_id, second.client_id, "hi Ann")
    got = await service.wait(room_id, first.client_id, timeout=1)
    assert [m.text for m in got.messages] == ["hi Ann"]


async def test_a_match_says_what_waits_unread_in_the_pairs_room(service: ChatService) -> None:
    first = await service.pairing.enter("Ann")
    second = await service.pairing.enter("Ben")
    assert second.matched is not None
    room_id = second.matched.room.room_id
    assert second.unread == await service.unread(room_id, second.client_id)
    await service.send(room_id, second.client_id, "hi Ann")
    state = await service.pairing.state(first.client_id)
    assert state.unread == await service.unread(room_id, first.client_id) > 0
    assert first.unread == 0  # waiting: nothing to count yet


async def test_shared_interests_are_preferred(service: ChatService) -> None:
    plain = await service.pairing.enter("Plain")
    chess = await service.pairing.enter("Chess fan", ["chess"])
    # Plain takes anyone, but the chess fan waits for chess (it has not waited long yet).
    assert chess.matched is None
    another = await service.pairing.enter("Other fan", ["Chess", "go"])
    assert another.partner is not None and another.partner.display_name == "Chess fan"
    assert (await service.store.queue_position(plain.participant_id)) == 1


async def test_nobody_waits_forever_because_of_interests(
    service: ChatService, clock: Clock
) -> None:
    chess = await service.pairing.enter("Chess", ["chess"])
    clock.now += 1
    go = await service.pairing.enter("Go", ["go"])
    assert chess.matched is None and go.matched is None
    waits = [
        asyncio.create_task(service.pairing.wait(q.client_id, timeout=60)) for q in (chess, go)
    ]
    await blocked(service, 2)
    clock.now += 31  # both have now waited past the fallback, blocked (so alive) all along
    await service.heartbeat.beat()
    for result in await asyncio.gather(*waits):
        assert result.matched is not None and not result.timed_out
    assert {r.partner.display_name for r in [w.result() for w in waits] if r.partner} == {
        "Chess",
        "Go",
    }


async def test_someone_who_stopped_calling_is_never_matched(
    service: ChatService, clock: Clock
) -> None:
    ghost = await service.pairing.enter("Ghost")
    clock.now += 21  # silent longer than stale_after
    newcomer = await service.pairing.enter("New")
    assert newcomer.matched is None
    await service.heartbeat.beat()
    with pytest.raises(ChatError) as dropped:
        await service.pairing.wait(ghost.client_id, timeout=1)
    assert dropped.value.code is Code.NOT_IN_QUEUE


async def test_leaving_the_queue(service: ChatService) -> None:
    gone = await service.pairing.enter("Leaver")
    await service.pairing.leave(gone.client_id)
    assert (await service.pairing.enter("Later")).matched is None
    with pytest.raises(ChatError) as twice:
        await service.pairing.leave(gone.client_id)
    assert twice.value.code is Code.NOT_IN_QUEUE


async def test_many_entering_at_once_are_each_matched_exactly_once(service: ChatService) -> None:
    results: list[QueueResult] = await asyncio.gather(
        *(service.pairing.enter(f"P{i}") for i in range(41))
    )
    matched_now = [r for r in results if r.matched is not None]
    waiting = [r for r in results if r.matched is None]
    assert len(matched_now) == 20 and len(waiting) == 21  # 20 pairs formed by the second comer
    learned = await asyncio.gather(*(service.pairing.wait(r.client_id, 1) for r in waiting))
    rooms: dict[str, list[str]] = {}
    for r in [*matched_now, *learned]:
        if r.matched is not None:
            rooms.setdefault(r.matched.room.room_id, []).append(r.participant_id)
    assert all(len(members) == 2 for members in rooms.values())
    assert len(rooms) == 20
    still_waiting = [r for r in learned if r.matched is None]
    assert len(still_waiting) == 1 and still_waiting[0].timed_out


async def test_leaving_the_queue_ends_a_blocked_wait_and_the_state_says_where_one_stands(
    service: ChatService,
) -> None:
    first = await service.pairing.enter("Ann")
    state = await service.pairing.state(first.client_id)
    assert state.matched is None and state.position == 1
    waiting = asyncio.create_task(service.pairing.wait(first.client_id, timeout=300))
    await blocked(service)
    await service.pairing.leave(first.client_id)
    with pytest.raises(ChatError) as woken:
        await waiting
    assert woken.value.code is Code.NOT_IN_QUEUE
    second = await service.pairing.enter("Ben")
    third = await service.pairing.enter("Cy")
    assert third.matched is not None
    matched = await service.pairing.state(second.client_id)
    assert matched.matched is not None and matched.partner is not None
    assert matched.partner.display_name == "Cy"


async def test_the_match_events_address_each_of_the_pair(service: ChatService) -> None:
    first = await service.pairing.enter("Ann")
    second = await service.pairing.enter("Ben")
    assert second.matched is not None
    room_id = second.matched.room.room_id
    for me in (first, second):
        heard = await service.wait(room_id, me.client_id, timeout=1)
        assert [(m.kind, m.mentions) for m in heard.messages] == [
            (Kind.MATCHED, (me.participant_id,))
        ]
