"""The shapes of tool results. Success and failure share one model per tool, so both
validate against the tool's declared output schema."""

from __future__ import annotations

from typing import Literal

from mcp_chat.views import Lean, MemberOut, MessageOut, RoomOut


class Result(Lean):
    success: bool
    error: str | None = None
    """On failure: what went wrong and what to do about it."""
    code: str | None = None
    """On failure: a stable word such as room_full, not_in_room, chat_ended."""


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
