"""Mentions in the chat core, on every store: resolved at send time, and what ends a
`mentions_only` wait (a message that addresses the caller, or the room's end) and what does
not (plain messages, a group's comings and goings)."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat import mentions
from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.types import Claim, Kind, WaitResult
from tests.conftest import blocked

pytestmark = pytest.mark.anyio


def texts(result: WaitResult) -> list[str]:
    return [m.text for m in result.messages if m.kind is Kind.MESSAGE]


async def group(chat: ChatService, *names: str) -> dict[str, str]:
    """Everyone joins room 'g' (room for 5); each one's client_id, by name."""
    return {name: (await chat.join("g", name, capacity=5)).client_id for name in names}


async def ids(chat: ChatService, room: str, client_id: str) -> dict[str, str]:
    """Participant ids by display name."""
    members = (await chat.members(room, client_id)).members
    return {m.participant.display_name: m.participant.participant_id for m in members}


async def test_a_send_marks_the_members_it_names_and_readers_see_it(chat: ChatService) -> None:
    c = await group(chat, "Ann", "Ann Lee", "Bob")
    who = await ids(chat, "g", c["Ann"])
    body = "@ann lee and @Bob: mail bob@example.com, not @Nobody"
    sent = await chat.send("g", c["Ann"], body)
    assert sent.message.mentions == (who["Ann Lee"], who["Bob"])
    got = await chat.wait("g", c["Bob"], timeout=1)
    assert [m.mentions for m in got.messages if m.kind is Kind.MESSAGE] == [sent.message.mentions]
    page = await chat.history("g", c["Bob"])
    assert page.messages[-1].mentions == sent.message.mentions
    plain = await chat.send("g", c["Ann"], "no one in particular")
    assert plain.message.mentions == ()


async def test_only_current_members_can_be_mentioned(chat: ChatService) -> None:
    c = await group(chat, "Ann", "Bob", "Carol")
    await chat.leave("g", c["Carol"])
    sent = await chat.send("g", c["Ann"], "@Carol are you there? @Dave?")
    assert sent.message.mentions == ()


async def test_only_a_text_with_an_at_sign_costs_a_read_of_the_members(
    chat: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await group(chat, "Ann", "Bob")
    reads: list[str] = []
    members = chat.store.members

    async def counted(room_id: str) -> list[object]:
        reads.append(room_id)
        return list(await members(room_id))

    monkeypatch.setattr(chat.store, "members", counted)
    await chat.send("g", c["Ann"], "plain words")
    assert reads == []
    await chat.send("g", c["Ann"], "hi @Bob")
    assert reads == ["g"]


async def test_a_mentions_only_wait_sleeps_through_plain_messages_and_wakes_on_a_mention(
    chat: ChatService,
) -> None:
    c = await group(chat, "Ann", "Bob")
    await chat.wait("g", c["Bob"], timeout=1)  # Bob reads what is there
    waiting = asyncio.create_task(chat.wait("g", c["Bob"], timeout=30, mentions_only=True))
    await blocked(chat)
    await chat.send("g", c["Ann"], "plain one")  # returns once the woken wait has looked
    await blocked(chat)  # ... and the wait is blocked again
    assert not waiting.done()
    await chat.send("g", c["Ann"], "@bob what do you think?")
    got = await waiting
    assert texts(got) == ["plain one", "@bob what do you think?"]
    assert not got.timed_out and got.unread == 0


async def test_a_waiting_mention_is_returned_at_once_and_what_follows_stays_unread(
    chat: ChatService,
) -> None:
    c = await group(chat, "Ann", "Bob")
    for body in ("before", "@Bob now", "after"):
        await chat.send("g", c["Ann"], body)
    got = await chat.wait("g", c["Bob"], timeout=30, mentions_only=True)
    assert texts(got) == ["before", "@Bob now"] and got.unread == 1
    assert texts(await chat.wait("g", c["Bob"], timeout=1)) == ["after"]


async def test_plain_messages_alone_let_a_mentions_only_wait_time_out_and_stay_unread(
    chat: ChatService,
) -> None:
    c = await group(chat, "Ann", "Bob")
    first = await chat.wait("g", c["Bob"], timeout=1)
    await chat.send("g", c["Ann"], "just chatting, @Bobby")
    idle = await chat.wait("g", c["Bob"], timeout=1, mentions_only=True)
    assert idle.timed_out and idle.messages == [] and idle.cursor == first.cursor
    assert texts(await chat.wait("g", c["Bob"], timeout=1)) == ["just chatting, @Bobby"]


async def test_a_partner_leaving_a_pair_ends_a_mentions_only_wait(chat: ChatService) -> None:
    ann = await chat.join("duo", "Ann")
    bob = await chat.join("duo", "Bob")
    await chat.wait("duo", bob.client_id, timeout=1)
    waiting = asyncio.create_task(chat.wait("duo", bob.client_id, timeout=30, mentions_only=True))
    await blocked(chat)
    await chat.leave("duo", ann.client_id)
    got = await waiting
    assert [(m.kind, m.mentions) for m in got.messages] == [
        (Kind.LEFT, (bob.participant.participant_id,))
    ]
    assert got.chat_ended
    with pytest.raises(ChatError) as ended:
        await chat.wait("duo", bob.client_id, timeout=1, mentions_only=True)
    assert ended.value.code is Code.CHAT_ENDED


async def test_comings_and_goings_in_a_group_do_not_end_a_mentions_only_wait(
    chat: ChatService,
) -> None:
    c = await group(chat, "Ann", "Bob", "Carol")
    await chat.wait("g", c["Bob"], timeout=1)
    waiting = asyncio.create_task(chat.wait("g", c["Bob"], timeout=30, mentions_only=True))
    await blocked(chat)
    await chat.leave("g", c["Carol"])
    await chat.join("g", "Dave")
    await blocked(chat)
    assert not waiting.done()
    await chat.send("g", c["Ann"], "@Bob, Carol left")
    got = await waiting
    assert [m.kind for m in got.messages] == [Kind.LEFT, Kind.JOINED, Kind.MESSAGE]


async def test_being_matched_addresses_each_of_the_pair(chat: ChatService) -> None:
    first = await chat.pairing.enter("Ann")
    second = await chat.pairing.enter("Bob")
    assert second.matched is not None
    room = second.matched.room.room_id
    got = await chat.wait(room, first.client_id, timeout=30, mentions_only=True)
    assert [(m.kind, m.sender_name, m.mentions) for m in got.messages] == [
        (Kind.MATCHED, "Bob", (first.participant_id,))
    ]


async def test_a_mention_another_wait_took_first_is_looked_past(
    chat: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the look that finds a mention and the claim through it, another wait of the
    same participant may claim it: the wait goes on looking past it, for the next one."""
    c = await group(chat, "Ann", "Bob")
    await chat.wait("g", c["Bob"], timeout=1)
    peek = chat.store.peek
    raced: list[int] = []

    async def racing_peek(participant_id: str, after: int | None, limit: int) -> Claim:
        seen = await peek(participant_id, after, limit)
        if not raced and any(mentions.addresses(m, participant_id) for m in seen.messages):
            taken = await chat.store.claim(participant_id, None, 10)  # the other wait
            raced.append(taken.cursor)
        return seen

    monkeypatch.setattr(chat.store, "peek", racing_peek)
    waiting = asyncio.create_task(chat.wait("g", c["Bob"], timeout=30, mentions_only=True))
    await blocked(chat)
    await chat.send("g", c["Ann"], "plain")  # the wait has looked this far
    await blocked(chat)
    await chat.send("g", c["Ann"], "@Bob first")  # taken by the other wait
    await blocked(chat)
    assert raced and not waiting.done()
    await chat.send("g", c["Ann"], "@Bob second")
    got = await waiting
    assert texts(got) == ["@Bob second"]


async def test_mentions_only_must_be_true_or_false(chat: ChatService) -> None:
    c = await group(chat, "Ann", "Bob")
    with pytest.raises(ChatError) as err:
        await chat.wait("g", c["Bob"], timeout=1, mentions_only="yes")  # type: ignore[arg-type]
    assert err.value.code is Code.INVALID_ARGUMENT
