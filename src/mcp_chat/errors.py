"""Error codes the chat core raises, each with a sentence an assistant can act on."""

from __future__ import annotations

import math
from enum import StrEnum


class Code(StrEnum):
    """Stable words for failures; clients may branch on them."""

    INVALID_ARGUMENT = "invalid_argument"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNKNOWN_CLIENT = "unknown_client"
    NOT_IN_ROOM = "not_in_room"
    ROOM_NOT_FOUND = "room_not_found"
    ROOM_FULL = "room_full"
    CHAT_ENDED = "chat_ended"
    TOO_MANY_ROOMS = "too_many_rooms"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_WAITS = "too_many_waits"
    TOO_MANY_STREAMS = "too_many_streams"
    SERVER_RESTARTING = "server_restarting"
    INVITE_REQUIRED = "invite_required"
    ROOM_NOT_PRIVATE = "room_not_private"
    NOT_IN_QUEUE = "not_in_queue"
    STORE_UNAVAILABLE = "store_unavailable"
    INTERNAL_ERROR = "internal_error"


class ChatError(Exception):
    """A failure the caller can do something about; `message` says what."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ChatError({self.code.value!r}, {self.message!r})"


class StartupError(ValueError):
    """A setting the server cannot start with; the message says what is wrong and what to do.
    The command prints it as one line and exits with status 2, with no traceback."""


def invalid(message: str) -> ChatError:
    return ChatError(Code.INVALID_ARGUMENT, message)


def unknown_client() -> ChatError:
    return ChatError(
        Code.UNKNOWN_CLIENT,
        "That client_id is not known here. Use the client_id that join_room returned to you, "
        "or call join_room again to get a new one.",
    )


def not_in_room(room_id: str) -> ChatError:
    return ChatError(
        Code.NOT_IN_ROOM,
        f"Your client_id is not a member of room '{room_id}'. Check the room_id, "
        "or call join_room to enter it.",
    )


def left_room(room_id: str) -> ChatError:
    return ChatError(
        Code.NOT_IN_ROOM,
        f"You have left room '{room_id}'. Call join_room to enter a room again.",
    )


def room_not_found(room_id: str) -> ChatError:
    return ChatError(
        Code.ROOM_NOT_FOUND,
        f"There is no room '{room_id}'. Call join_room to create it.",
    )


def room_full(room_id: str, capacity: int) -> ChatError:
    return ChatError(
        Code.ROOM_FULL,
        f"Room '{room_id}' is full ({capacity} of {capacity} places taken). "
        "Choose another room_id.",
    )


def room_full_on_return(room_id: str, capacity: int) -> ChatError:
    return ChatError(
        Code.ROOM_FULL,
        f"Room '{room_id}' is full ({capacity} of {capacity} places taken): others took the "
        "places while you were gone. Try again later (you are still a member, and nothing was "
        "changed), or call leave_chat and join another room.",
    )


def chat_ended(room_id: str) -> ChatError:
    return ChatError(
        Code.CHAT_ENDED,
        f"The chat in room '{room_id}' has ended. Call join_room to start another (with the "
        "same room_id, a new conversation begins there).",
    )


def too_many_rooms(limit: int) -> ChatError:
    return ChatError(
        Code.TOO_MANY_ROOMS,
        f"This server already has its limit of {limit} open rooms. Join an existing room "
        "(list_rooms shows them) or try again later.",
    )


def rate_limited(retry_after: float) -> ChatError:
    seconds = max(1, math.ceil(retry_after))
    return ChatError(
        Code.RATE_LIMITED,
        f"You are sending too fast. Wait {seconds} second{'s' if seconds != 1 else ''}, "
        "then send again; nothing was stored.",
    )


def joining_too_fast(retry_after: float) -> ChatError:
    seconds = max(1, math.ceil(retry_after))
    return ChatError(
        Code.RATE_LIMITED,
        f"Too many rooms joined or queues entered from here lately. Wait {seconds} "
        f"second{'s' if seconds != 1 else ''}, then try again; nothing was joined.",
    )


def too_many_waits(limit: int) -> ChatError:
    return ChatError(
        Code.TOO_MANY_WAITS,
        f"You already have {limit} wait_for_message calls open in this room. Let one return "
        "before starting another.",
    )


def too_many_streams(limit: int) -> ChatError:
    return ChatError(
        Code.TOO_MANY_STREAMS,
        f"You already have {limit} subscriptions/listen streams open with this read key. "
        "Close one before opening another: one stream can follow several resources.",
    )


def server_restarting(call: str) -> ChatError:
    return ChatError(
        Code.SERVER_RESTARTING,
        f"The server is restarting; call {call} again. Nothing was lost.",
    )


def invite_required(room_id: str) -> ChatError:
    return ChatError(
        Code.INVITE_REQUIRED,
        f"Room '{room_id}' is private. Pass its invite secret as `invite` to join it.",
    )


def room_not_private(room_id: str) -> ChatError:
    return ChatError(
        Code.ROOM_NOT_PRIVATE,
        f"Room '{room_id}' already exists and is not private, so your invite cannot protect "
        "it: anyone may be in it. Nothing was joined. Choose another room_id for a private "
        "room.",
    )


def not_in_queue() -> ChatError:
    return ChatError(
        Code.NOT_IN_QUEUE,
        "You are no longer in the queue (you left it, or went silent for too long). "
        "Call enter_queue again.",
    )
