"""The records alone: what their few properties say."""

from __future__ import annotations

from mcp_chat.types import (
    Draft,
    Kind,
    Matched,
    Message,
    Participant,
    QueueResult,
    Room,
    Status,
)


def participant(pid: str, room_id: str = "r") -> Participant:
    return Participant(pid, room_id, pid.upper(), f"hash-{pid}", cursor=0, joined_at="", left=False)


def test_only_a_participants_text_is_not_a_system_event() -> None:
    assert not Kind.MESSAGE.is_system
    assert all(kind.is_system for kind in Kind if kind is not Kind.MESSAGE)


def test_a_room_with_an_invite_hash_is_private() -> None:
    assert not Room("r", 2, "t", 0, False).private
    assert Room("r", 2, "t", 0, False, invite_hash="h").private


def test_a_message_from_a_draft_keeps_everything_but_the_key() -> None:
    draft = Draft("m-1", "p-a", "Ann", Kind.MESSAGE, "hi @Bob", "ts", key="k", mentions=("p-b",))
    message = Message.from_draft("r", 7, draft)
    assert message == Message("r", 7, "m-1", "p-a", "Ann", Kind.MESSAGE, "hi @Bob", "ts", ("p-b",))


def test_each_of_a_pair_has_the_other_as_partner() -> None:
    a, b = participant("a"), participant("b")
    pair = Matched(Room("r", 2, "t", 1, False), a, b)
    assert pair.partner_of("a") is b
    assert pair.partner_of("b") is a
    assert QueueResult("secret", "b", pair, 0).partner is a
    assert QueueResult("secret", "b", None, 3).partner is None


def test_status_words_are_what_the_adapters_show() -> None:
    assert [s.value for s in Status] == ["present", "away", "gone"]
