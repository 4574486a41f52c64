"""The domain's records: rooms, participants, messages, what the store hands back, and what
the core answers its adapters (the results)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a log entry is: a participant's text, or a system event about a participant."""

    MESSAGE = "message"
    JOINED = "joined"
    LEFT = "left"
    MATCHED = "matched"
    DISCONNECTED = "disconnected"
    RETURNED = "returned"

    @property
    def is_system(self) -> bool:
        return self is not Kind.MESSAGE


class Status(StrEnum):
    """Where a member stands (`presence.status` says which)."""

    PRESENT = "present"
    AWAY = "away"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    capacity: int
    created_at: str
    last_seq: int
    ended: bool
    invite_hash: str | None = None
    """Set for a private room: the hash of its invite secret."""

    @property
    def private(self) -> bool:
        return self.invite_hash is not None


@dataclass(frozen=True, slots=True)
class Participant:
    """A member of one room. `secret_hash` is the hash of its client_id; the id itself is
    never stored."""

    participant_id: str
    room_id: str
    display_name: str
    secret_hash: str
    cursor: int
    joined_at: str
    left: bool
    last_seen: float = 0.0
    """Epoch seconds of the last sign of life (a call, or being blocked in a wait)."""
    gone: bool = False
    """Marked gone: disconnected, or silent for too long. Cleared when it calls again."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A message before the store gives it a sequence number."""

    message_id: str
    sender_id: str
    sender_name: str
    kind: Kind
    text: str
    timestamp: str
    key: str | None = None
    mentions: tuple[str, ...] = ()
    """The participants it addresses (see `mcp_chat.mentions`), by id."""


@dataclass(frozen=True, slots=True)
class Message:
    room_id: str
    seq: int
    message_id: str
    sender_id: str
    sender_name: str
    kind: Kind
    text: str
    timestamp: str
    mentions: tuple[str, ...] = ()
    """The participants it addresses (see `mcp_chat.mentions`), by id; stored messages from
    before mentions existed have none."""

    @classmethod
    def from_draft(cls, room_id: str, seq: int, draft: Draft) -> Message:
        return cls(
            room_id=room_id,
            seq=seq,
            message_id=draft.message_id,
            sender_id=draft.sender_id,
            sender_name=draft.sender_name,
            kind=draft.kind,
            text=draft.text,
            timestamp=draft.timestamp,
            mentions=draft.mentions,
        )


@dataclass(frozen=True, slots=True)
class Joined:
    """What `Store.join` did: the participant as stored, its room, and the room's members."""

    participant: Participant
    room: Room
    created: bool
    members: list[Participant]


@dataclass(frozen=True, slots=True)
class Appended:
    message: Message
    duplicate: bool
    unread: int
    """Messages from others past the sender's read position, counted with the append."""


@dataclass(frozen=True, slots=True)
class Claim:
    """Messages from others past a participant's read position, which has moved past them
    (or would move, for `Store.peek`).

    `cursor` is the new read position; `has_more` says a further claim would return more;
    `ended` says the room has ended; `room_id` is the room read, as stored.
    """

    messages: list[Message]
    cursor: int
    has_more: bool
    ended: bool
    room_id: str


@dataclass(frozen=True, slots=True)
class Left:
    message: Message
    room_ended: bool


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """Someone waiting in the random-pairing queue. `entry_id` becomes its participant id."""

    entry_id: str
    secret_hash: str
    display_name: str
    interests: tuple[str, ...]
    entered_at: float
    last_seen: float
    room_id: str | None = None
    """Set once matched: the room made for the pair."""


@dataclass(frozen=True, slots=True)
class Matched:
    """A pair made by the queue: their new room, and both participants."""

    room: Room
    first: Participant
    second: Participant

    def partner_of(self, participant_id: str) -> Participant:
        return self.second if self.first.participant_id == participant_id else self.first


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room_id: str
    capacity: int
    members: int
    ended: bool
    created_at: str


@dataclass(frozen=True, slots=True)
class Counts:
    """What the store holds now: open rooms and the participants in them."""

    rooms: int
    participants: int


@dataclass(frozen=True, slots=True)
class Pruned:
    """What `Store.prune` removed."""

    messages: int
    rooms: int


# -- what the core answers (`chat.ChatService`, `pairing.Pairing`) ---------------------------


@dataclass(frozen=True, slots=True)
class JoinResult:
    client_id: str
    participant: Participant
    room: Room
    created: bool
    members: list[Member]
    unread: int
    """Messages from others the newcomer has not read (all said before it came)."""


@dataclass(frozen=True, slots=True)
class Member:
    participant: Participant
    status: Status


@dataclass(frozen=True, slots=True)
class QueueResult:
    """Where someone in the random queue stands: matched (room and partner) or waiting."""

    client_id: str
    participant_id: str
    matched: Matched | None
    position: int
    timed_out: bool = False
    unread: int = 0
    """Once matched: messages from others in the pair's room not read yet."""

    @property
    def partner(self) -> Participant | None:
        return None if self.matched is None else self.matched.partner_of(self.participant_id)


@dataclass(frozen=True, slots=True)
class SendResult:
    message: Message
    duplicate: bool
    unread: int
    """Messages from others the sender has not read yet (as of its send)."""


@dataclass(frozen=True, slots=True)
class WaitResult:
    messages: list[Message]
    has_more: bool
    timed_out: bool
    chat_ended: bool
    cursor: int
    waited: float
    unread: int = 0
    """Messages from others still past the read position (0 unless `has_more`)."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[Message]
    last_seq: int
    has_older: bool
    unread: int
    """Messages from others past the reader's read position (a page moves nothing)."""


@dataclass(frozen=True, slots=True)
class Roster:
    """A room (under the id its members know it by) and who is in it."""

    room: Room
    members: list[Member]
    unread: int
    """Messages from others past the asker's read position."""
