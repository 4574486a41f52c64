"""Random pairing, private rooms and presence, through the core on every store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.matching import MatchPolicy
from mcp_chat.presence import PresencePolicy, Session, current_session
from mcp_chat.stores import open_store
from mcp_chat.types import Kind, Member, QueueResult, Status
from tests.conftest import blocked

pytestmark = pytest.mark.anyio


class Clock:
    """Wall-clock seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(store_url: str, clock: Clock) -> AsyncIterator[ChatService]:
    chat = ChatService(
        open_store(store_url),
        matching_policy=MatchPolicy(fallback_after=30, stale_after=20),
        # A heartbeat that never fires by itself: tests call heartbeat() with a chosen time.
        presence_policy=PresencePolicy(heartbeat=3600, away_after=60, gone_after=600),
        clock=clock,
    )
    await chat.start()
    yield chat
    await chat.close()


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


async def test_private_rooms_are_unlisted_and_need_their_invite(service: ChatService) -> None:
    await service.join("secret-club", "Host", capacity=3, invite="open sesame")
    await service.join("town-square", "Mayor", capacity=3)
    assert [r.room_id for r in await service.rooms()] == ["town-square"]
    for attempt in (None, "guess"):
        with pytest.raises(ChatError) as refused:
            await service.join("secret-club", "Snoop", invite=attempt)
        assert refused.value.code is Code.INVITE_REQUIRED
    guest = await service.join("secret-club", "Guest", invite="open sesame")
    assert [m.participant.display_name for m in guest.members] == ["Host", "Guest"]


async def test_presence_goes_present_away_gone_and_back(service: ChatService, clock: Clock) -> None:
    alice = await service.join("r", "Alice")
    bob = await service.join("r", "Bob")
    await service.wait("r", alice.client_id, timeout=1)

    def status_of(members: list[Member], name: str) -> Status:
        return next(m.status for m in members if m.participant.display_name == name)

    members = (await service.members("r", alice.client_id)).members
    assert status_of(members, "Bob") is Status.PRESENT
    await service.heartbeat.beat()
    clock.now += 61
    members = (await service.members("r", alice.client_id)).members
    assert (
        status_of(members, "Bob") is Status.AWAY and status_of(members, "Alice") is Status.PRESENT
    )

    clock.now += 600  # Bob has been silent past gone_after; Alice kept calling
    await service.members("r", alice.client_id)
    await service.heartbeat.beat()
    told = await service.wait("r", alice.client_id, timeout=1)
    assert [(m.kind, m.sender_name) for m in told.messages] == [(Kind.DISCONNECTED, "Bob")]
    members = (await service.members("r", alice.client_id)).members
    assert status_of(members, "Bob") is Status.GONE

    # Bob comes back with his client_id and carries on where he left off.
    await service.send("r", alice.client_id, "missed you")
    back = await service.wait("r", bob.client_id, timeout=1)
    assert [m.text for m in back.messages][-1] == "missed you"
    await service.heartbeat.beat()
    welcome = await service.wait("r", alice.client_id, timeout=1)
    assert [(m.kind, m.sender_name) for m in welcome.messages] == [(Kind.RETURNED, "Bob")]


async def test_a_closed_session_marks_its_participants_gone(service: ChatService) -> None:
    alice = await service.join("r", "Alice")
    session = Session()
    token = current_session.set(session)
    try:
        bob = await service.join("r", "Bob")
        await service.send("r", bob.client_id, "bye for now")
    finally:
        current_session.reset(token)
    await service.wait("r", alice.client_id, timeout=1)
    waiting = asyncio.create_task(service.wait("r", alice.client_id, timeout=30))
    await blocked(service)
    await service.heartbeat.disconnect(session)
    told = await waiting
    assert [(m.kind, m.sender_name) for m in told.messages] == [(Kind.DISCONNECTED, "Bob")]
    # A queue entry whose client went away leaves the queue at once.
    queued = Session()
    token = current_session.set(queued)
    try:
        entry = await service.pairing.enter("Fleeting")
    finally:
        current_session.reset(token)
    await service.heartbeat.disconnect(queued)
    with pytest.raises(ChatError):
        await service.pairing.wait(entry.client_id, timeout=1)


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


async def test_seats_of_the_gone_go_to_newcomers_and_a_returner_finds_it_full(
    service: ChatService,
) -> None:
    sessions = []
    for name in ("Alice", "Bob"):
        session = Session()
        token = current_session.set(session)
        try:
            sessions.append((session, await service.join("duo", name)))
        finally:
            current_session.reset(token)
    for session, _ in sessions:
        await service.heartbeat.disconnect(session)  # both sessions ended
    assert [r.room_id for r in await service.rooms()] == []
    carol = await service.join("duo", "Carol")  # room_full, for good, before
    assert [(r.room_id, r.members) for r in await service.rooms()] == [("duo", 1)]
    await service.join("duo", "Dan")

    alice = sessions[0][1]
    for attempt in (
        service.send("duo", alice.client_id, "I'm back"),
        service.wait("duo", alice.client_id, timeout=1),
        service.members("duo", alice.client_id),
    ):
        with pytest.raises(ChatError) as full:
            await attempt
        assert full.value.code is Code.ROOM_FULL
        assert "while you were gone" in full.value.message
    await service.heartbeat.beat()  # her calls were signs of life; still no seat for her
    members = (await service.members("duo", carol.client_id)).members
    assert [(m.participant.display_name, m.status) for m in members] == [
        ("Alice", Status.GONE),
        ("Bob", Status.GONE),
        ("Carol", Status.PRESENT),
        ("Dan", Status.PRESENT),
    ]
    # She gives up her place; Carol and Dan's pair goes on.
    assert not await service.leave("duo", alice.client_id)
    await service.send("duo", carol.client_id, "still on")
