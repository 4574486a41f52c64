"""Records to and from Redis: log entries as JSON arrays, records as hashes, replies as text."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from redis.typing import EncodableT

from mcp_chat.types import Draft, Kind, Message, Participant, QueueEntry, Room


def payload_of(draft: Draft) -> str:
    fields: list[Any] = [
        draft.message_id,
        draft.sender_id,
        draft.sender_name,
        draft.kind.value,
        draft.text,
        draft.timestamp,
    ]
    if draft.mentions:
        fields.append(list(draft.mentions))
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def message_of(room_id: str, seq: int | float | str, payload: str) -> Message:
    # Six items, or seven with mentions (see the Lua section's note).
    message_id, sender_id, sender_name, kind, text, timestamp, *rest = json.loads(payload)
    return Message(
        room_id,
        int(float(seq)),
        message_id,
        sender_id,
        sender_name,
        Kind(kind),
        text,
        timestamp,
        tuple(rest[0]) if rest else (),
    )


def fields_of(record: Room | Participant | QueueEntry) -> dict[EncodableT, EncodableT]:
    """A record as a Redis hash: None left out, flags as 0/1, floats exact, tuples as JSON."""
    fields: dict[EncodableT, EncodableT] = {}
    for name, value in dataclasses.asdict(record).items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, float):
            value = repr(value)
        elif isinstance(value, tuple):
            value = json.dumps(list(value))
        fields[name] = value
    return fields


def room_of(fields: Mapping[str, str]) -> Room:
    return Room(
        room_id=fields["room_id"],
        capacity=int(fields["capacity"]),
        created_at=fields["created_at"],
        last_seq=int(fields["last_seq"]),
        ended=fields["ended"] == "1",
        invite_hash=fields.get("invite_hash"),
    )


def participant_of(fields: Mapping[str, str]) -> Participant:
    return Participant(
        participant_id=fields["participant_id"],
        room_id=fields["room_id"],
        display_name=fields["display_name"],
        secret_hash=fields["secret_hash"],
        cursor=int(fields["cursor"]),
        joined_at=fields["joined_at"],
        left=fields["left"] == "1",
        last_seen=float(fields["last_seen"]),
        gone=fields["gone"] == "1",
    )


def entry_of(fields: Mapping[str, str]) -> QueueEntry:
    return QueueEntry(
        entry_id=fields["entry_id"],
        secret_hash=fields["secret_hash"],
        display_name=fields["display_name"],
        interests=tuple(json.loads(fields["interests"])),
        entered_at=float(fields["entered_at"]),
        last_seen=float(fields["last_seen"]),
        room_id=fields.get("room_id"),
    )


def as_scored(raw: Iterable[Any]) -> list[tuple[str, float]]:
    """A sorted-set range read WITHSCORES, as (member, score) pairs."""
    return [(str(member), float(score)) for member, score in raw]


def as_texts(raw: Iterable[Any]) -> list[str]:
    """What the client returns (typed as bytes or str) as the strings it decoded."""
    return [str(item) for item in raw]


def as_text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def created_score(created_at: str) -> float:
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
