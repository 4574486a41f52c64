"""Message rules: what text may be sent, and the sentences of system events."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from mcp_chat import errors
from mcp_chat.types import Draft, Kind, Participant

MAX_KEY_CHARS = 128


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with milliseconds, e.g. 2026-11-24T10:00:00.123Z."""
    return stamp(datetime.now(UTC))


def stamp(moment: datetime) -> str:
    """`moment` as the store writes timestamps; two of them compare as text in time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_message_id() -> str:
    return "m_" + secrets.token_hex(8)


def check_text(text: str, max_bytes: int) -> str:
    if not isinstance(text, str):
        raise errors.invalid("message must be a string.")
    if not text.strip():
        raise errors.invalid("message is empty. Write something to send.")
    if "\x00" in text:
        raise errors.invalid("message contains a NUL character, which cannot be stored.")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise errors.ChatError(
            errors.Code.MESSAGE_TOO_LARGE,
            f"message is {size} bytes; the limit is {max_bytes}. Split it into smaller messages.",
        )
    return text


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise errors.invalid(f"message_key must be 1 to {MAX_KEY_CHARS} characters.")
    return key


def text_draft(sender: Participant, text: str, key: str | None) -> Draft:
    return Draft(
        message_id=new_message_id(),
        sender_id=sender.participant_id,
        sender_name=sender.display_name,
        kind=Kind.MESSAGE,
        text=text,
        timestamp=utc_now(),
        key=key,
    )


_EVENT_TEXT = {
    Kind.JOINED: "{name} joined the room.",
    Kind.LEFT: "{name} left the room.",
    Kind.MATCHED: "{name} was matched with you. Say hello!",
    Kind.DISCONNECTED: "{name} disconnected.",
    Kind.RETURNED: "{name} is back.",
}


def event_draft(kind: Kind, about: Participant) -> Draft:
    """A system event about `about`; it counts as sent by them, so they are not told of it."""
    return Draft(
        message_id=new_message_id(),
        sender_id=about.participant_id,
        sender_name=about.display_name,
        kind=kind,
        text=_EVENT_TEXT[kind].format(name=about.display_name),
        timestamp=utc_now(),
    )
