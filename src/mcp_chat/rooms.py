"""Room rules: capacity and seats, who may join or come back, which rooms are offered, and
when a room ends."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

from mcp_chat import errors, text
from mcp_chat.types import Participant, Room

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


# -- seats ------------------------------------------------------------------------------------
# A room's capacity counts seats. A member holds one while present or away. A member marked
# gone (its connection closed, or silent for `gone_after`) keeps its place in the room (its
# client_id, its read position) but not its seat: a newcomer may take it, or a room of two
# whose members' sessions ended would refuse everyone, for good. One gone who comes back
# (calls again) takes a seat again if one is free; if none is, its calls are refused with
# room_full and it stays gone, until a seat frees up or it leaves. The same holds for pairs
# and groups; what differs is only when a leave ends the room (`ends_after_leave`).


def holds_seat(member: Participant) -> bool:
    """True for a member present or away; one marked gone holds no seat."""
    return not member.gone


def seated(members: Iterable[Participant]) -> int:
    """How many of a room's current members hold a seat."""
    return sum(1 for member in members if holds_seat(member))


def check_join(room: Room, seated_members: int, invite_hash: str | None = None) -> None:
    """Raise unless one more participant may enter `room` now, `seated_members` being how
    many of its members hold a seat (`seated`). A private room asks for its
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
    if seated_members >= room.capacity:
        raise errors.room_full(room.room_id, room.capacity)


def may_come_back(room: Room, member: Participant) -> bool:
    """Whether a gone `member` who shows a sign of life is back: only in a room that has not
    ended (an ended room has no seats to go back to)."""
    return member.gone and not member.left and not room.ended


def check_return(room: Room, seated_others: int) -> None:
    """Raise room_full unless a gone member may take a seat again, `seated_others` being how
    many other members hold one: newcomers may have taken every seat meanwhile."""
    if seated_others >= room.capacity:
        raise errors.room_full_on_return(room.room_id, room.capacity)


def listed(room: Room, seated_members: int) -> bool:
    """Whether `list_rooms` (and the page) offers the room: open, public, and somebody in it
    present or away. A room whose members are all gone stays joinable by its id."""
    return not room.ended and not room.private and seated_members > 0


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


def ends_after_leave(room: Room, remaining_members: int, seated_others: int) -> bool:
    """A room of two ends when either leaves (as in a phone call); a larger room lives on
    while anyone is in it (gone members too: they may come back). `seated_others`: the
    members besides the leaver who hold a seat. In a pair they fill the room only when the
    leaver, gone, had lost its seat to a newcomer: then the leave changes nothing for the
    two, and the pair goes on."""
    if remaining_members == 0:
        return True
    return room.capacity == 2 and seated_others < room.capacity


def check_room_count(open_rooms: int, max_rooms: int) -> None:
    """Raise unless one more room may be opened; `max_rooms == 0` means no limit."""
    if max_rooms and open_rooms >= max_rooms:
        raise errors.too_many_rooms(max_rooms)


MAX_INVITE_CHARS = 128


def check_invite(invite: str) -> str:
    if not isinstance(invite, str) or not invite or len(invite) > MAX_INVITE_CHARS:
        raise errors.invalid(f"invite must be 1 to {MAX_INVITE_CHARS} characters.")
    return text.check_unicode(invite, "invite")
