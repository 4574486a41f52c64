"""What both adapters show of a message, a member and a room (`mcp_chat.views`)."""

from __future__ import annotations

from mcp_chat.types import Kind, Message, Participant, RoomSummary, Status
from mcp_chat.views import MemberOut, MessageOut, RoomOut


def message(kind: Kind = Kind.MESSAGE, mentions: tuple[str, ...] = ()) -> Message:
    return Message("r", 3, "m-1", "p-a", "Ann", kind, "hello", "2026-01-01T00:00:00Z", mentions)


def test_a_message_shows_its_sender_text_and_kind() -> None:
    assert MessageOut.of(message()).model_dump() == {
        "seq": 3,
        "message_id": "m-1",
        "sender": "Ann",
        "sender_id": "p-a",
        "message": "hello",
        "timestamp": "2026-01-01T00:00:00Z",
        "kind": "message",
        "system": False,
    }


def test_mentions_are_shown_only_when_there_are_some() -> None:
    assert "mentions" not in MessageOut.of(message()).model_dump()
    shown = MessageOut.of(message(mentions=("p-b",))).model_dump()
    assert shown["mentions"] == ["p-b"]


def test_a_system_event_is_marked_system() -> None:
    shown = MessageOut.of(message(Kind.JOINED)).model_dump()
    assert shown["kind"] == "joined" and shown["system"] is True


def test_a_member_shows_its_presence_only_when_known() -> None:
    p = Participant("p-a", "r", "Ann", "secret-hash", cursor=0, joined_at="", left=False)
    assert MemberOut.of(p).model_dump() == {"participant_id": "p-a", "display_name": "Ann"}
    assert MemberOut.of(p, Status.AWAY).model_dump()["presence"] == "away"
    assert "secret" not in MemberOut.of(p, Status.PRESENT).model_dump_json()


def test_a_room_shows_its_size_but_not_whether_it_ended() -> None:
    summary = RoomSummary("lobby", 5, 2, False, "2026-01-01T00:00:00Z")
    assert RoomOut.of(summary).model_dump() == {
        "room_id": "lobby",
        "capacity": 5,
        "members": 2,
        "created_at": "2026-01-01T00:00:00Z",
    }
