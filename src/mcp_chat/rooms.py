"""Room rules: capacity, who may join, and when a room ends."""

from __future__ import annotations

import hmac
import secrets

from mcp_chat import errors, text
from mcp_chat.types import Room

DEFAULT_CAPACITY = 2


def check_capacity(capacity: int | None, max_capacity: int) -> int:
    """The capacity a new room gets: 2 unless asked otherwise, within the server's limit."""
    if capacity is None:
        return DEFAULT_CAPACITY
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise errors.invalid("capacity must be a whole number.")
    if not 2 <= capacity <= max_capacity:
        raise errors.invalid(f"capacity must be between 2 and {max_capacity}; got {capacity}.")
    return capacity


def check_join(room: Room, active_members: int, invite_hash: str | None = None) -> None:
    """Raise unless one more participant may enter `room` now. A private room asks for its
    invite first, so an outsider learns nothing else about it. A joiner who brings an invite
    means a private room: a public one of that name (perhaps made first by someone who
    guessed it) is refused, or what they say there would be open to whoever is in it."""
    if room.invite_hash is None:
        if invite_hash is not None:
            raise errors.room_not_private(room.room_id)
    elif not hmac.compare_digest(room.invite_hash, invite_hash or ""):
        raise errors.invite_required(room.room_id)
    if room.ended:  # a store sets an ended room aside first (`starts_anew`); this is a guard
        raise errors.chat_ended(room.room_id)
    if active_members >= room.capacity:
        raise errors.room_full(room.room_id, room.capacity)


def starts_anew(room: Room) -> bool:
    """A join to an ended room's id starts a new conversation there: the store first sets the
    old one aside under `archive_id`, where its members keep their history. Otherwise one
    join and leave would take a name such as 'lobby' from everyone, for good."""
    return room.ended


_ARCHIVED = "~"
"""Never in a room id a caller may choose (see `names.check_room_id`)."""


def archive_id(room_id: str) -> str:
    """The id an ended conversation is kept under once its name is taken again."""
    return f"{public_id(room_id)}{_ARCHIVED}{secrets.token_hex(6)}"


def public_id(room_id: str) -> str:
    """The id callers know a room by, whether it is current or set aside."""
    return room_id.partition(_ARCHIVED)[0]


def ends_after_leave(room: Room, remaining_members: int) -> bool:
    """A room of two ends when either leaves (as in a phone call); a larger room lives on
    while anyone is in it."""
    return room.capacity == 2 or remaining_members == 0


def check_room_count(open_rooms: int, max_rooms: int) -> None:
    """Raise unless one more room may be opened; `max_rooms == 0` means no limit."""
    if max_rooms and open_rooms >= max_rooms:
        raise errors.too_many_rooms(max_rooms)


MAX_INVITE_CHARS = 128


def check_invite(invite: str) -> str:
    if not isinstance(invite, str) or not invite or len(invite) > MAX_INVITE_CHARS:
        raise errors.invalid(f"invite must be 1 to {MAX_INVITE_CHARS} characters.")
    return text.check_unicode(invite, "invite")
