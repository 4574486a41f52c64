"""What both adapters show of the core's records: a message, a member, a room. The MCP tools
and resources (`mcp/`) and the page's endpoints (`web/`) serialize these same models, so a
message reads the same whichever way it is fetched."""

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
