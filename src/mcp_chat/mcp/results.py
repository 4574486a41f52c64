"""The shapes of tool results. Success and failure share one model per tool, so both
validate against the tool's declared output schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from mcp_chat.types import Message, Participant, RoomSummary, Status


class Lean(BaseModel):
    """Fields that are None are left out of the result (the schema marks them optional)."""

    # The declared schema is the fields' own, not the dict the serializer below returns.
    model_config = ConfigDict(json_schema_mode_override="validation")

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class Result(Lean):
    success: bool
    error: str | None = None
    """On failure: what went wrong and what to do about it."""
    code: str | None = None
    """On failure: a stable word such as room_full, not_in_room, chat_ended."""


class MessageOut(BaseModel):
    seq: int
    message_id: str
    sender: str
    sender_id: str
    message: str
    timestamp: str
    kind: Literal["message", "joined", "left", "matched", "disconnected", "returned"]
    system: bool
    mentions: list[str] = Field(default_factory=list, exclude_if=lambda ids: not ids)
    """The participant ids the message addresses; left out when it addresses nobody (most
    messages: the field would cost every answer's reader for nothing)."""

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        return cls(
            seq=m.seq,
            message_id=m.message_id,
            sender=m.sender_name,
            sender_id=m.sender_id,
            message=m.text,
            timestamp=m.timestamp,
            kind=m.kind.value,
            system=m.kind.is_system,
            mentions=list(m.mentions),
        )


class MemberOut(Lean):
    participant_id: str
    display_name: str
    presence: Literal["present", "away", "gone"] | None = None

    @classmethod
    def of(cls, p: Participant, presence: Status | None = None) -> MemberOut:
        return cls(
            participant_id=p.participant_id,
            display_name=p.display_name,
            presence=None if presence is None else presence.value,
        )


class InRoom(Result):
    """A result about a room one is in."""

    unread: int | None = None
    """Messages from others waiting for you in the room (wait_for_message returns them)."""


class JoinOut(InRoom):
    client_id: str | None = None
    room_id: str | None = None
    participant_id: str | None = None
    display_name: str | None = None
    capacity: int | None = None
    created: bool | None = None
    members: list[MemberOut] | None = None
    transcript_uri: str | None = None
    """MCP resource with the room's messages; subscribe to it to be told of new ones."""
    members_uri: str | None = None
    next_step: str | None = None


class SendOut(InRoom):
    seq: int | None = None
    message_id: str | None = None
    timestamp: str | None = None
    duplicate: bool | None = None


class WaitOut(InRoom):
    messages: list[MessageOut] | None = None
    has_more: bool | None = None
    timed_out: bool | None = None
    chat_ended: bool | None = None
    position: int | None = None
    """Your read position after this call: the seq to pass as `after` to read again."""


class LeaveOut(Result):
    room_ended: bool | None = None


class HistoryOut(InRoom):
    messages: list[MessageOut] | None = None
    last_seq: int | None = None
    has_older: bool | None = None


class MembersOut(InRoom):
    room_id: str | None = None
    capacity: int | None = None
    ended: bool | None = None
    members: list[MemberOut] | None = None


class RoomOut(BaseModel):
    room_id: str
    capacity: int
    members: int
    created_at: str

    @classmethod
    def of(cls, r: RoomSummary) -> RoomOut:
        return cls(
            room_id=r.room_id, capacity=r.capacity, members=r.members, created_at=r.created_at
        )


class QueueOut(InRoom):
    client_id: str | None = None
    participant_id: str | None = None
    status: Literal["matched", "waiting"] | None = None
    room_id: str | None = None
    """Once matched: the room to chat in, with this same client_id."""
    partner: MemberOut | None = None
    transcript_uri: str | None = None
    members_uri: str | None = None
    position: int | None = None
    """While waiting: 1 means you are next."""
    timed_out: bool | None = None
    next_step: str | None = None


class RoomsOut(Result):
    rooms: list[RoomOut] | None = None
