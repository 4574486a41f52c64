"""Who calls (`mcp_chat.identity`): a client_id checked against the store and the room it
names, then kept in this process until the participant leaves."""

from __future__ import annotations

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.identity import Identity
from mcp_chat.types import Participant

pytestmark = pytest.mark.anyio


async def test_a_client_id_names_its_participant_in_its_room(chat: ChatService) -> None:
    joined = await chat.join("r", "Alice")
    identity = await chat.identities.check("r", joined.client_id)
    assert identity == Identity(
        joined.participant.participant_id, "r", "Alice", joined.participant.secret_hash
    )


@pytest.mark.parametrize(
    ("room", "client", "code"),
    [
        ("elsewhere", None, Code.NOT_IN_ROOM),
        ("r", "not-a-client-id", Code.UNKNOWN_CLIENT),
        ("r", "", Code.INVALID_ARGUMENT),
        ("", None, Code.INVALID_ARGUMENT),
    ],
)
async def test_a_client_id_is_refused_outside_its_room_or_when_unknown(
    chat: ChatService, room: str, client: str | None, code: Code
) -> None:
    joined = await chat.join("r", "Alice")
    with pytest.raises(ChatError) as refused:
        await chat.identities.check(room, joined.client_id if client is None else client)
    assert refused.value.code is code


async def test_a_known_caller_is_checked_without_the_store_until_it_leaves(
    chat: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    joined = await chat.join("r", "Alice")
    first = await chat.identities.check("r", joined.client_id)
    asked: list[str] = []
    lookup = chat.store.participant

    async def counted(secret_hash: str) -> Participant | None:
        asked.append(secret_hash)
        return await lookup(secret_hash)

    monkeypatch.setattr(chat.store, "participant", counted)
    assert await chat.identities.check("r", joined.client_id) is first
    assert asked == []
    chat.identities.forget(first)
    assert await chat.identities.check("r", joined.client_id) == first
    assert asked == [first.secret_hash]


async def test_a_check_is_a_sign_of_life(chat: ChatService) -> None:
    joined = await chat.join("r", "Alice")
    chat.tracker.take()
    await chat.identities.check("r", joined.client_id)
    assert joined.participant.participant_id in chat.tracker.take()


def test_an_identity_stands_in_for_its_participant_as_a_sender() -> None:
    p = Identity("p-a", "r", "Ann", "h").as_participant()
    assert (p.participant_id, p.room_id, p.display_name, p.secret_hash) == ("p-a", "r", "Ann", "h")
    assert not p.left and p.cursor == 0
