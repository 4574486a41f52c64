"""Presence upkeep (`mcp_chat.heartbeat`): present, away, gone, a closed session, and
the return of one marked gone, through the core on every store."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.presence import Session, current_session
from mcp_chat.types import Kind, Member, Status
from tests.conftest import Clock, blocked

pytestmark = pytest.mark.anyio


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
