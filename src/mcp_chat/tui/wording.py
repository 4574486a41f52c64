"""What the chat window tells a person when the server says no. The server's sentences are
written for assistants ("call join_room again", "choose another room_id"); the window keeps
the stable error code and says it in its own words."""

from __future__ import annotations

from typing import Literal

Moment = Literal["joining", "in the room", "sending"]
"""When the refusal came: entering a room, while in it, or answering a message sent."""

_TROUBLE = "The server is having trouble right now; try again in a moment."


def refusal(code: str, room: str | None, moment: Moment = "in the room") -> str:
    """A sentence for a person about a refusal with `code`, in or about `room`."""
    where = f"Room {room}" if room else "The room"
    if code == "room_full" and moment == "joining":
        return f"{where} is full. Start the window with another --room, or try again later."
    if code == "room_full":
        return (
            f"{where} is full: others took the places while you were away. Try again later, "
            "or /leave to give up your place."
        )
    sentences = {
        "invite_required": f"{where} is private: start the window with its --invite.",
        "room_not_private": (
            f"{where} is public, so an invite cannot make it private: start the window with "
            "another --room for a private room."
        ),
        "chat_ended": "The chat has ended.",
        "too_many_rooms": (
            "The server has as many rooms as it allows: join one that is open (the web page "
            "lists them)."
        ),
        "rate_limited": "That was too fast: wait a few seconds and try again.",
        "message_too_large": "The message is too long.",
        "invalid_argument": (
            "The server did not accept that. A room name is letters, digits, '.', '_' and "
            "'-', starting with a letter or digit; a name has no control characters."
            if moment == "joining"
            else "The server did not accept that message."
        ),
        "unknown_client": "The server no longer knows you here.",
        "not_in_room": "You are not in this room any more.",
        "room_not_found": f"{where} does not exist any more.",
        "not_in_queue": "You are no longer in the queue.",
        "too_many_waits": "This room is open in too many of your windows: close one.",
        "store_unavailable": _TROUBLE,
        "internal_error": _TROUBLE,
        "server_restarting": _TROUBLE,
    }
    return sentences.get(code, f"The server refused ({code or 'no reason given'}).")
