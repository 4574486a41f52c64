"""Message rules: what text may be sent, and the sentences of system events."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime

from mcp_chat import errors, text
from mcp_chat.types import Draft, Kind, Message, Participant

MAX_KEY_CHARS = 128


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with milliseconds, e.g. 2026-11-24T10:00:00.123Z."""
    return stamp(datetime.now(UTC))


def stamp(moment: datetime) -> str:
    """`moment` as the store writes timestamps; two of them compare as text in time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_message_id() -> str:
    return "m_" + secrets.token_hex(8)


def check_text(body: str, max_bytes: int) -> str:
    if not isinstance(body, str):
        raise errors.invalid("message must be a string.")
    if not body.strip():
        raise errors.invalid("message is empty. Write something to send.")
    if "\x00" in body:
        raise errors.invalid("message contains a NUL character, which cannot be stored.")
    text.check_unicode(body, "message")
    size = len(body.encode("utf-8"))
    if size > max_bytes:
        raise errors.ChatError(
            errors.Code.MESSAGE_TOO_LARGE,
            f"message is {size} bytes; the limit is {max_bytes}. Split it into smaller messages.",
        )
    return body


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise errors.invalid(f"message_key must be 1 to {MAX_KEY_CHARS} characters.")
    return text.check_unicode(key, "message_key")


MAX_SEQ = 2**63 - 1
"""The largest sequence number any store can hold (SQLite's and Lua's integers are 64-bit)."""


def check_seq(value: int | None, what: str) -> int | None:
    """A message seq given by a caller (`after`, `before`), or invalid_argument."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid(f"{what} must be a whole number (a message seq).")
    if not 0 <= value <= MAX_SEQ:
        raise errors.invalid(f"{what} must be a message seq between 0 and {MAX_SEQ}.")
    return value


def shown(message: Message) -> Message:
    """`message` fit for an answer whatever was stored (see `text.displayable`)."""
    body, name = text.displayable(message.text), text.displayable(message.sender_name)
    if body is message.text and name is message.sender_name:
        return message
    return dataclasses.replace(message, text=body, sender_name=name)


def text_draft(
    sender: Participant, text: str, key: str | None, mentions: tuple[str, ...] = ()
) -> Draft:
    return Draft(
        message_id=new_message_id(),
        sender_id=sender.participant_id,
        sender_name=sender.display_name,
        kind=Kind.MESSAGE,
        text=text,
        timestamp=utc_now(),
        key=key,
        mentions=mentions,
    )


_EVENT_TEXT = {
    Kind.JOINED: "{name} joined the room.",
    Kind.LEFT: "{name} left the room.",
    Kind.MATCHED: "{name} was matched with you. Say hello!",
    Kind.DISCONNECTED: "{name} disconnected.",
    Kind.RETURNED: "{name} is back.",
}


def match_draft(about: Participant, shared: tuple[str, ...]) -> Draft:
    """The event telling a random partner of `about`, naming the interests the two share."""
    draft = event_draft(Kind.MATCHED, about)
    if not shared:
        return draft
    what = "an interest" if len(shared) == 1 else "interests"
    text = f"{about.display_name} was matched with you: you share {what}, {', '.join(shared)}. "
    return dataclasses.replace(draft, text=text + "Say hello!")


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
