"""Push feeds through the core, on every store: what a connection is written, and how the
read position follows (the wire itself is tested end to end in tests/e2e/test_channel.py)."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.presence import Session, current_session
from mcp_chat.push import Feed, Push
from mcp_chat.stores import open_store
from mcp_chat.types import JoinResult

pytestmark = pytest.mark.anyio


class Connection:
    """A client connection's side of a feed: what was written to it, in order."""

    def __init__(self) -> None:
        self.written: asyncio.Queue[Push] = asyncio.Queue()
        self.gate: asyncio.Event | None = None  # while set to an unset event, writes hang

    async def write(self, push: Push) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.written.put_nowait(push)

    async def next(self) -> Push:
        async with asyncio.timeout(10):
            return await self.written.get()


async def joined_through(
    chat: ChatService, feed: Feed, room: str, name: str, capacity: int | None = None
) -> JoinResult:
    """join_room on the connection the feed belongs to."""
    token = current_session.set(Session(follow=feed.follow))
    try:
        return await chat.join(room, name, capacity)
    finally:
        current_session.reset(token)


async def test_a_claim_waits_for_the_push_that_is_writing(chat: ChatService) -> None:
    """Between a push's peek and its claim, a wait_for_message of the same participant
    must not take what is being written."""
    connection = Connection()
    feed = Feed(chat, connection.write)
    try:
        alice = await joined_through(chat, feed, "turns", "Alice")
        bob = (await chat.join("turns", "Bob")).client_id
        assert (await connection.next()).message.text == "Bob joined the room."
        connection.gate = asyncio.Event()
        await chat.send("turns", bob, "being written")
        writing = asyncio.create_task(connection.next())
        waited = asyncio.create_task(chat.wait("turns", alice.client_id, timeout=30))
        for _ in range(100):  # every chance to claim ahead of the push, had it no turn
            await asyncio.sleep(0)
        connection.gate.set()
        assert (await writing).message.text == "being written"
        async with chat.turns.turn(alice.participant.participant_id):
            pass  # the push has moved the read position by now
        await feed.close()
        await chat.send("turns", bob, "next")
        assert [m.text for m in (await waited).messages] == ["next"]
    finally:
        await feed.close()


async def test_one_connection_is_told_once_and_only_of_its_rooms(chat: ChatService) -> None:
    connection = Connection()
    feed = Feed(chat, connection.write)
    try:
        alice = await joined_through(chat, feed, "big", "Alice", capacity=3)
        carol = await joined_through(chat, feed, "big", "Carol", capacity=3)
        arrivals = {(await connection.next()).message.text for _ in range(2)}
        assert arrivals == {"Carol joined the room.", "Alice joined the room."}
        bob = (await chat.join("big", "Bob", capacity=3)).client_id
        dan = (await chat.join("elsewhere", "Dan")).client_id
        await chat.join("elsewhere", "Eve")
        await chat.send("elsewhere", dan, "not for this connection")
        await chat.send("big", bob, "for both")
        assert (await connection.next()).message.text == "Bob joined the room."
        push = await connection.next()
        assert push.message.text == "for both" and push.room_id == "big"
        await chat.send("big", alice.client_id, "from Alice")  # Carol is told, Alice is not
        push = await connection.next()
        assert push.message.text == "from Alice" and push.message.sender_name == "Alice"
        async with chat.turns.turn(carol.participant.participant_id):
            pass  # Carol's push is done, and Alice's before it
        assert connection.written.empty()
        # Written once, read by both.
        assert await chat.unread("big", alice.client_id) == 0
        assert await chat.unread("big", carol.client_id) == 0
    finally:
        await feed.close()


async def test_in_mentions_mode_only_what_addresses_the_reader_is_pushed(
    chat: ChatService,
) -> None:
    connection = Connection()
    feed = Feed(chat, connection.write, mode="mentions")
    try:
        ann = await joined_through(chat, feed, "busy", "Ann", capacity=3)
        bob = (await chat.join("busy", "Bob", capacity=3)).client_id
        await chat.join("busy", "Cy", capacity=3)
        await chat.send("busy", bob, "chatter nobody needs")
        await chat.send("busy", bob, "@Ann can you look?")
        push = await connection.next()
        assert push.message.text == "@Ann can you look?"
        assert push.message.mentions == (ann.participant.participant_id,)
        async with chat.turns.turn(ann.participant.participant_id):
            pass  # the push is done
        assert connection.written.empty()  # no joins, no chatter
        assert await chat.unread("busy", ann.client_id) == 0
        page = await chat.history("busy", ann.client_id)
        assert "chatter nobody needs" in [m.text for m in page.messages]
    finally:
        await feed.close()


async def test_a_participant_that_only_listens_to_pushes_is_not_silent(store_url: str) -> None:
    """A channel's agent may make no call for a long time; each push its connection takes
    is a sign of life, so the sweep does not mark it gone."""
    now = [1_000.0]
    chat = ChatService(open_store(store_url), clock=lambda: now[0])
    await chat.start()
    connection = Connection()
    feed = Feed(chat, connection.write)
    try:
        ann = await joined_through(chat, feed, "quiet", "Ann")
        bob = (await chat.join("quiet", "Bob")).client_id
        await connection.next()  # Bob joined
        now[0] += chat.presence.gone_after - 1
        await chat.send("quiet", bob, "still there?")
        assert (await connection.next()).message.text == "still there?"
        async with chat.turns.turn(ann.participant.participant_id):
            pass  # the push is done
        now[0] += 2  # past gone_after since Ann's last call, not since her last push
        await chat.heartbeat.beat()
        members = (await chat.members("quiet", bob)).members
        assert {m.participant.display_name: m.status.value for m in members}["Ann"] != "gone"
    finally:
        await feed.close()
        await chat.close()
