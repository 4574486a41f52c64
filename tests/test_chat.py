"""The chat core through its Python API, on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from mcp_chat import credentials, messages
from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.limits import Limits
from mcp_chat.presence import PresencePolicy
from mcp_chat.stores import open_store
from mcp_chat.stores.memory import MemoryStore
from mcp_chat.types import Kind, Message
from tests.conftest import blocked

pytestmark = pytest.mark.anyio


async def pair(chat: ChatService, room: str = "r") -> tuple[str, str]:
    a = await chat.join(room, "Alice")
    b = await chat.join(room, "Bob")
    return a.client_id, b.client_id


def texts(result: object) -> list[str]:
    return [m.text for m in result.messages if m.kind is Kind.MESSAGE]  # type: ignore[attr-defined]


async def test_first_joiner_learns_that_a_partner_arrived(chat: ChatService) -> None:
    alice = await chat.join("r", "Alice")
    waiting = asyncio.create_task(chat.wait("r", alice.client_id, timeout=30))
    await blocked(chat)
    await chat.join("r", "Bob")
    woke = await waiting
    assert [(m.kind, m.sender_name) for m in woke.messages] == [(Kind.JOINED, "Bob")]


async def test_message_sent_before_partner_joined_is_delivered(chat: ChatService) -> None:
    alice = await chat.join("r", "Alice")
    await chat.send("r", alice.client_id, "are you there?")
    bob = await chat.join("r", "Bob")
    got = await chat.wait("r", bob.client_id, timeout=1)
    assert texts(got) == ["are you there?"]


async def test_message_sent_while_nobody_waits_is_kept(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.send("r", a, "one")
    await chat.send("r", a, "two")
    got = await chat.wait("r", b, timeout=1)
    assert texts(got) == ["one", "two"]
    assert not got.timed_out


async def test_back_to_back_sends_arrive_in_order_once(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)  # B reads Alice's 'joined'
    sent = [f"m{i}" for i in range(23)]
    for body in sent:
        await chat.send("r", a, body)
    received: list[str] = []
    while True:
        got = await chat.wait("r", b, timeout=1)
        if got.timed_out:
            break
        received += texts(got)
        assert len(got.messages) <= 5  # the batch size of this fixture
    assert received == sent


async def test_two_open_waits_of_one_client_share_without_duplicates(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)
    first = asyncio.create_task(chat.wait("r", b, timeout=5))
    second = asyncio.create_task(chat.wait("r", b, timeout=5))
    await blocked(chat, 2)
    await chat.send("r", a, "only once")
    await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    await chat.send("r", a, "and again")
    results = [await t for t in (first, second)]
    delivered = [body for r in results for body in texts(r)]
    assert sorted(delivered) == ["and again", "only once"]


async def test_wait_times_out_with_nothing_lost(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)
    idle = await chat.wait("r", b, timeout=0.01)  # clamped up to one second
    assert idle.timed_out and idle.messages == []
    await chat.send("r", a, "late")
    assert texts(await chat.wait("r", b, timeout=1)) == ["late"]


async def test_explicit_position_rereads_a_lost_response(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.send("r", a, "lost in transit")
    got = await chat.wait("r", b)
    seq = next(m.seq for m in got.messages if m.text == "lost in transit")
    again = await chat.wait("r", b, timeout=1, after=seq - 1)
    assert texts(again) == ["lost in transit"]


async def test_leave_tells_the_partner_and_ends_a_pair(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)
    assert await chat.leave("r", a)
    got = await chat.wait("r", b, timeout=1)
    assert [m.kind for m in got.messages] == [Kind.LEFT] and got.chat_ended
    with pytest.raises(ChatError) as ended:
        await chat.wait("r", b, timeout=1)
    assert ended.value.code is Code.CHAT_ENDED
    with pytest.raises(ChatError) as send_after:
        await chat.send("r", b, "hello?")
    assert send_after.value.code is Code.CHAT_ENDED
    with pytest.raises(ChatError) as left:
        await chat.send("r", a, "I am back")
    assert left.value.code is Code.NOT_IN_ROOM
    rejoin = await chat.join("r", "Carol")  # a new conversation under the same name
    assert rejoin.created and [m.participant.display_name for m in rejoin.members] == ["Carol"]


async def test_a_waiting_partner_wakes_when_the_other_leaves(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)
    waiting = asyncio.create_task(chat.wait("r", b, timeout=30))
    await blocked(chat)
    await chat.leave("r", a)
    got = await waiting
    assert [m.kind for m in got.messages] == [Kind.LEFT]


async def test_group_room_reaches_everyone_in_order(chat: ChatService) -> None:
    ids = [(await chat.join("g", f"P{i}", capacity=4)).client_id for i in range(4)]
    for i, cid in enumerate(ids):
        await chat.send("g", cid, f"hello from P{i}")
    for i, cid in enumerate(ids):
        got: list[str] = []
        while len(got) < 3:
            w = await chat.wait("g", cid, timeout=5)
            assert not w.timed_out
            got += texts(w)
        assert got == [f"hello from P{j}" for j in range(4) if j != i]
        assert w.unread == 0  # and nothing more
    assert not await chat.leave("g", ids[0])
    await chat.send("g", ids[1], "still here")
    for cid in ids[2:]:
        heard = await chat.wait("g", cid, timeout=1)
        assert [(m.kind, m.text) for m in heard.messages] == [
            (Kind.LEFT, "P0 left the room."),
            (Kind.MESSAGE, "still here"),
        ]


async def test_third_joiner_in_a_pair_is_refused(chat: ChatService) -> None:
    await pair(chat)
    with pytest.raises(ChatError) as full:
        await chat.join("r", "Carol")
    assert full.value.code is Code.ROOM_FULL


async def test_client_ids_are_checked_against_the_room(chat: ChatService) -> None:
    a, _ = await pair(chat, "r1")
    c, _ = await pair(chat, "r2")
    with pytest.raises(ChatError) as other_room:
        await chat.send("r1", c, "sneaky")
    assert other_room.value.code is Code.NOT_IN_ROOM
    with pytest.raises(ChatError) as unknown:
        await chat.send("r1", a + "x", "forged")
    assert unknown.value.code is Code.UNKNOWN_CLIENT
    assert a + "x" not in unknown.value.message


async def test_history_is_paged_and_does_not_move_the_read_position(chat: ChatService) -> None:
    a, b = await pair(chat)
    for i in range(6):
        await chat.send("r", a, f"m{i}")
    page = await chat.history("r", b, limit=3)
    assert [m.text for m in page.messages] == ["m3", "m4", "m5"]
    assert page.has_older and page.last_seq == 8
    older = await chat.history("r", b, before=page.messages[0].seq, limit=3)
    assert [m.text for m in older.messages] == ["m0", "m1", "m2"]
    # The read position is untouched: the first batch (5) is Alice's 'joined', then m0..m3.
    first = await chat.wait("r", b, timeout=1)
    assert next(m.kind for m in first.messages) is Kind.JOINED
    assert texts(first) == ["m0", "m1", "m2", "m3"]


async def service(store_url: str, **limits: Any) -> ChatService:
    chat = ChatService(open_store(store_url), Limits(**limits))
    await chat.start()
    return chat


async def test_rooms_per_server_are_limited(store_url: str) -> None:
    chat = await service(store_url, max_rooms=2)
    try:
        await chat.join("one", "A")
        await chat.join("two", "B")
        with pytest.raises(ChatError) as err:
            await chat.join("three", "C")
        assert err.value.code is Code.TOO_MANY_ROOMS
        await chat.join("two", "D")  # joining an existing room is no new room
    finally:
        await chat.close()


async def test_sending_too_fast_is_refused_and_retries_of_a_key_cost_nothing(
    store_url: str,
) -> None:
    chat = await service(store_url, rate_messages=2, rate_window=3600)
    try:
        a, _ = await pair(chat)
        await chat.send("r", a, "one", key="k1")
        await chat.send("r", a, "one", key="k1")  # a retry: no new message, no token
        await chat.send("r", a, "two")
        with pytest.raises(ChatError) as err:
            await chat.send("r", a, "three")
        assert err.value.code is Code.RATE_LIMITED and "Wait" in err.value.message
        page = await chat.history("r", a)
        assert [m.text for m in page.messages if m.kind is Kind.MESSAGE] == ["one", "two"]
    finally:
        await chat.close()


async def test_open_waits_per_participant_are_limited(store_url: str) -> None:
    chat = await service(store_url, max_waits=1)
    try:
        a, b = await pair(chat)
        await chat.wait("r", b, timeout=1)
        blocked = asyncio.create_task(chat.wait("r", b, timeout=30))
        while chat.signals.waiting == 0:
            await asyncio.sleep(0)
        with pytest.raises(ChatError) as err:
            await chat.wait("r", b, timeout=1)
        assert err.value.code is Code.TOO_MANY_WAITS
        await chat.send("r", a, "wake up")
        assert texts(await blocked) == ["wake up"]
        assert (await chat.wait("r", b, timeout=1)).timed_out  # the slot is free again
    finally:
        await chat.close()


async def test_name_and_room_id_lengths_are_configurable(store_url: str) -> None:
    chat = await service(store_url, max_name_chars=5, max_room_id_chars=4)
    try:
        await chat.join("abcd", "Alice")
        for room_id, name in (("abcde", "Bob"), ("wxyz", "Bobbie")):
            with pytest.raises(ChatError) as err:
                await chat.join(room_id, name)
            assert err.value.code is Code.INVALID_ARGUMENT
    finally:
        await chat.close()


async def test_stopping_releases_blocked_waits_and_refuses_new_ones(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)
    blocked = asyncio.create_task(chat.wait("r", b, timeout=300))
    while chat.signals.waiting == 0:
        await asyncio.sleep(0)
    assert await chat.ready()
    chat.stop_waits()
    with pytest.raises(ChatError) as released:
        await blocked
    assert released.value.code is Code.SERVER_RESTARTING
    assert "call wait_for_message again" in released.value.message
    with pytest.raises(ChatError) as refused:
        await chat.wait("r", b, timeout=1)
    assert refused.value.code is Code.SERVER_RESTARTING
    assert not await chat.ready()
    # Sends still go through until the store closes: nothing in flight is cut off.
    assert (await chat.send("r", a, "last words")).message.seq == 3


async def test_stopping_releases_a_blocked_wait_for_match(chat: ChatService) -> None:
    queued = await chat.pairing.enter("Ann")
    blocked = asyncio.create_task(chat.pairing.wait(queued.client_id, timeout=300))
    while chat.signals.waiting == 0:
        await asyncio.sleep(0)
    chat.stop_waits()
    with pytest.raises(ChatError) as released:
        await blocked
    assert released.value.code is Code.SERVER_RESTARTING
    assert "call wait_for_match again" in released.value.message


async def test_a_key_reused_for_a_different_text_is_refused_not_swallowed(
    chat: ChatService,
) -> None:
    a, b = await pair(chat)
    first = await chat.send("r", a, "hello", key="k")
    again = await chat.send("r", a, "hello", key="k")
    assert again.duplicate and again.message.seq == first.message.seq
    with pytest.raises(ChatError) as reused:
        await chat.send("r", a, "something else", key="k")
    assert reused.value.code is Code.INVALID_ARGUMENT and "message_key" in reused.value.message
    got = await chat.wait("r", b, timeout=1)
    assert texts(got) == ["hello"]


async def test_leaving_drops_what_this_process_kept_for_the_participant(store_url: str) -> None:
    # Leftovers of clients long gone would pin the memory their requests used.
    chat = ChatService(open_store(store_url), Limits(rate_messages=10))
    await chat.start()
    try:
        a, b = await pair(chat)
        await chat.send("r", a, "hi")
        await chat.wait("r", b, timeout=1)
        kept = (
            len(chat.identities._known),
            len(chat.tracker._latest),
            len(chat.send_rate._buckets),
        )
        assert kept == (2, 2, 1)
        await chat.leave("r", a)
        await chat.leave("r", b)
        kept = (
            len(chat.identities._known),
            len(chat.tracker._latest),
            len(chat.send_rate._buckets),
        )
        assert kept == (0, 0, 0)
    finally:
        await chat.close()


# -- hardening: what an attack got through ---------------------------------------------------


async def test_an_invite_brought_to_a_public_room_is_refused(chat: ChatService) -> None:
    """Someone who guessed the name made 'team-secret' public first: the team's join with its
    invite must not land them in a room the other can read."""
    spy = await chat.join("team-secret", "Spy", capacity=5)
    with pytest.raises(ChatError) as err:
        await chat.join("team-secret", "Ann", invite="our-invite")
    assert err.value.code is Code.ROOM_NOT_PRIVATE
    assert "team-secret" in err.value.message and "another room_id" in err.value.message
    members = (await chat.members("team-secret", spy.client_id)).members
    assert [m.participant.display_name for m in members] == ["Spy"]


async def test_a_private_room_takes_only_its_own_invite(chat: ChatService) -> None:
    await chat.join("ours", "Ann", capacity=3, invite="our-invite")
    for wrong in (None, "their-invite"):
        with pytest.raises(ChatError) as err:
            await chat.join("ours", "Spy", invite=wrong)
        assert err.value.code is Code.INVITE_REQUIRED
    await chat.join("ours", "Bob", invite="our-invite")


LONE = "bad \ud800 text"


async def test_text_with_a_lone_surrogate_is_refused_everywhere(chat: ChatService) -> None:
    a, b = await pair(chat)
    refusals = [
        chat.send("r", a, LONE),
        chat.send("r", a, "fine", key="k\udfff"),
        chat.join("r2", "Bad\ud800Name"),
        chat.join("r3", "Ann", invite="inv\ud800"),
        chat.pairing.enter("Ann", interests=["chess", "go\ud800"]),
    ]
    for refused in refusals:
        with pytest.raises(ChatError) as err:
            await refused
        assert err.value.code is Code.INVALID_ARGUMENT, err.value
        err.value.message.encode("utf-8")  # the sentence itself can be sent
    got = await chat.wait("r", b, timeout=1)
    assert texts(got) == []  # nothing was stored


async def test_a_stored_bad_message_does_not_stop_the_ones_around_it(store_url: str) -> None:
    """Text kept before the door was guarded (here put straight into the store) is shown with
    U+FFFD, and the valid messages beside it are delivered and readable by everyone."""
    if not store_url.startswith("memory"):
        pytest.skip("only memory:// ever accepted such text")
    chat = await service(store_url)
    try:
        a, b = await pair(chat)
        await chat.send("r", a, "before")
        sender = await chat.store.participant(credentials.hash_secret(a))
        assert sender is not None
        await chat.store.append(sender.participant_id, messages.text_draft(sender, LONE, None))
        await chat.send("r", a, "after")
        got = await chat.wait("r", b, timeout=1)
        assert texts(got) == ["before", "bad \ufffd text", "after"]
        page = await chat.history("r", a)
        assert [m.text for m in page.messages if m.kind is Kind.MESSAGE] == texts(got)
        assert [m.text for m in await chat.transcript("r")][-2:] == ["bad \ufffd text", "after"]
    finally:
        await chat.close()


async def test_a_retry_while_rate_limited_is_answered_as_the_first_send(store_url: str) -> None:
    chat = await service(store_url, rate_messages=1, rate_window=3600)
    try:
        a, _ = await pair(chat)
        first = await chat.send("r", a, "one", key="k1")
        again = await chat.send("r", a, "one", key="k1")  # the bucket is empty by now
        assert again.duplicate and again.message.seq == first.message.seq
        with pytest.raises(ChatError) as err:
            await chat.send("r", a, "other", key="k1")  # the key names another text
        assert err.value.code is Code.INVALID_ARGUMENT
        with pytest.raises(ChatError) as err:
            await chat.send("r", a, "two", key="k2")  # new: refused, and said so truly
        assert err.value.code is Code.RATE_LIMITED and "nothing was stored" in err.value.message
    finally:
        await chat.close()


async def test_positions_and_timeouts_out_of_range_are_clear_errors(chat: ChatService) -> None:
    a, b = await pair(chat)
    for huge in (2**63, 2**64, -1, -(2**70)):
        for call in (
            chat.wait("r", b, timeout=1, after=huge),
            chat.history("r", a, after=huge),
            chat.history("r", a, before=huge),
        ):
            with pytest.raises(ChatError) as err:
                await call
            assert err.value.code is Code.INVALID_ARGUMENT and "seq" in err.value.message
    assert chat.limits.clamp_timeout(2**1000) == chat.limits.max_wait
    assert chat.limits.clamp_timeout(-(2**1000)) == chat.limits.min_wait
    await chat.send("r", a, "still here")
    assert (await chat.history("r", a, after=2**63 - 1)).messages == []
    assert texts(await chat.wait("r", b, timeout=1, after=0)) == ["still here"]


async def test_a_read_key_with_any_characters_is_refused_not_a_crash(chat: ChatService) -> None:
    await pair(chat)
    for key in ("mcr_wrong", "mcr_\u00e9\u00e9", "\ud800", ""):
        with pytest.raises(ChatError) as err:
            await chat.check_reader("r", key)
        assert err.value.code is Code.NOT_IN_ROOM


async def test_a_join_to_an_ended_room_starts_a_new_conversation(chat: ChatService) -> None:
    """One join and leave must not take 'lobby' from everyone for good."""
    spoiler = await chat.join("lobby", "Spoiler")
    assert await chat.leave("lobby", spoiler.client_id)  # a room of two ends when one leaves
    ann = await chat.join("lobby", "Ann")
    assert ann.created and [m.participant.display_name for m in ann.members] == ["Ann"]
    bob = await chat.join("lobby", "Bob")
    await chat.send("lobby", bob.client_id, "hello Ann")
    got = await chat.wait("lobby", ann.client_id, timeout=1)
    assert [(m.kind, m.text) for m in got.messages] == [
        (Kind.JOINED, "Bob joined the room."),
        (Kind.MESSAGE, "hello Ann"),
    ]
    page = await chat.history("lobby", ann.client_id)
    assert "Spoiler" not in {m.sender_name for m in page.messages}
    assert [m.seq for m in page.messages] == [1, 2, 3]


async def test_old_members_keep_their_conversation_and_hear_none_of_the_new(
    chat: ChatService,
) -> None:
    a, b = await pair(chat, "lobby")
    await chat.send("lobby", a, "just between us")
    await chat.leave("lobby", b)  # the pair has ended; Alice is still in it
    carol = await chat.join("lobby", "Carol", capacity=3)
    dan = await chat.join("lobby", "Dan")
    await chat.send("lobby", carol.client_id, "new chat")

    old = await chat.history("lobby", a)
    assert [m.text for m in old.messages if m.kind is Kind.MESSAGE] == ["just between us"]
    roster = await chat.members("lobby", a)
    room, members = roster.room, roster.members
    assert room.room_id == "lobby" and room.ended
    assert {m.participant.display_name for m in members} == {"Alice"}
    with pytest.raises(ChatError) as err:
        await chat.send("lobby", a, "can anyone hear me?")
    assert err.value.code is Code.CHAT_ENDED
    got = await chat.wait("lobby", a, timeout=1)  # what was left to read, then the end
    assert got.chat_ended and "new chat" not in texts(got)

    new = await chat.history("lobby", dan.client_id)
    assert [m.text for m in new.messages if m.kind is Kind.MESSAGE] == ["new chat"]
    assert "just between us" not in texts(await chat.wait("lobby", dan.client_id, timeout=1))
    await chat.leave("lobby", a)
    assert [m.participant.display_name for m in await chat.room_members("lobby")] == [
        "Carol",
        "Dan",
    ]


async def test_joins_and_queue_entries_of_one_caller_share_a_limit(store_url: str) -> None:
    chat = await service(store_url, rate_joins=2, rate_window=3600)
    try:
        await chat.join("a", "A", caller="10.0.0.1")
        await chat.pairing.enter("B", caller="10.0.0.1")
        for refused in (
            chat.join("c", "C", caller="10.0.0.1"),
            chat.pairing.enter("D", caller="10.0.0.1"),
        ):
            with pytest.raises(ChatError) as err:
                await refused
            assert err.value.code is Code.RATE_LIMITED and "nothing was joined" in err.value.message
        await chat.join("c", "C", caller="10.0.0.2")  # another caller has its own
        await chat.join("d", "D")  # the core's own callers (tests, tools) are not counted
        assert await chat.store.room("c") is not None
    finally:
        await chat.close()


class CancelSwallowing(MemoryStore):
    """A store whose heartbeat write swallows a cancellation that lands in it and returns,
    as redis-py has been seen to do with a cancel that lands inside a call."""

    def __init__(self) -> None:
        super().__init__()
        self.in_touch = asyncio.Event()
        self.swallowed = asyncio.Event()
        self.release = asyncio.Event()

    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        self.in_touch.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.swallowed.set()
        return await super().touch(seen)


async def test_closing_ends_the_heartbeats_even_if_a_store_call_swallowed_the_cancel() -> None:
    """Else close() waits for the heartbeat task forever, and a server never stops."""
    store = CancelSwallowing()
    chat = ChatService(store, presence_policy=PresencePolicy(heartbeat=0.001))
    await chat.start()
    await store.in_touch.wait()  # the heartbeat task is inside the store call
    closing = asyncio.create_task(chat.close())
    await store.swallowed.wait()  # close() cancelled it there, and the store swallowed it
    store.release.set()
    # (Not asyncio.timeout: close() would swallow its cancellation too.)
    done, _ = await asyncio.wait({closing}, timeout=10)
    assert closing in done, "close() is still waiting for the heartbeat task"
    await closing


async def test_one_back_from_gone_is_not_swept_again_by_another_instance(store_url: str) -> None:
    """Back from gone (a call of theirs), a participant is present at once for every process
    on the store: another instance's sweep, before this one's next heartbeat has written the
    sign of life, must not mark them gone again with their old silence."""
    now = [1_000.0]
    chat = ChatService(open_store(store_url), clock=lambda: now[0])
    await chat.start()
    try:
        ann = (await chat.join("back", "Ann")).client_id
        bob = (await chat.join("back", "Bob")).client_id
        now[0] += chat.presence.gone_after + 1
        await chat.send("back", bob, "anyone?")  # Bob is seen; Ann is silent
        await chat.heartbeat.beat()
        members = (await chat.members("back", bob)).members
        assert [m.status.value for m in members] == ["gone", "present"]

        now[0] += 1
        assert (await chat.send("back", ann, "I'm back")).message.seq > 0
        # The other instance's sweep, at the same moment (its own heartbeat's):
        swept = await chat.store.sweep(now[0], chat.presence.gone_after, 30.0)
        assert swept == []
        members = (await chat.members("back", bob)).members
        assert [m.status.value for m in members] == ["present", "present"]
    finally:
        await chat.close()


async def test_results_say_what_the_caller_has_not_read(chat: ChatService) -> None:
    alice = await chat.join("r", "Alice")
    await chat.send("r", alice.client_id, "one")
    bob = await chat.join("r", "Bob")
    assert alice.unread == 0
    assert bob.unread == 2  # Alice's 'joined' and "one"
    assert (await chat.history("r", bob.client_id)).unread == 2  # a page moves nothing
    assert (await chat.members("r", bob.client_id)).unread == 2
    await chat.wait("r", bob.client_id, timeout=1)
    assert (await chat.members("r", bob.client_id)).unread == 0
    assert (await chat.history("r", alice.client_id)).unread == 1  # Bob's 'joined'


async def test_private_rooms_are_unlisted_and_need_their_invite(chat: ChatService) -> None:
    await chat.join("secret-club", "Host", capacity=3, invite="open sesame")
    await chat.join("town-square", "Mayor", capacity=3)
    assert [r.room_id for r in await chat.rooms()] == ["town-square"]
    for attempt in (None, "guess"):
        with pytest.raises(ChatError) as refused:
            await chat.join("secret-club", "Snoop", invite=attempt)
        assert refused.value.code is Code.INVITE_REQUIRED
    guest = await chat.join("secret-club", "Guest", invite="open sesame")
    assert [m.participant.display_name for m in guest.members] == ["Host", "Guest"]
