"""What the store contract tests (tests/test_stores_*.py) share: people, drafts, dates."""

from __future__ import annotations

import dataclasses

from mcp_chat import credentials, messages, reading
from mcp_chat.stores import Store
from mcp_chat.types import Draft, Kind, Participant


def person(room_id: str, name: str) -> Participant:
    secret = credentials.new_client_secret()
    return Participant(
        participant_id=credentials.new_public_id("p-"),
        room_id=room_id,
        display_name=name,
        secret_hash=credentials.hash_secret(secret),
        cursor=0,
        joined_at=messages.utc_now(),
        left=False,
    )


async def enter(store: Store, room_id: str, name: str, capacity: int = 2) -> Participant:
    p = person(room_id, name)
    joined = await store.join(room_id, capacity, p, messages.event_draft(Kind.JOINED, p))
    return joined.participant


def text(p: Participant, body: str, key: str | None = None) -> Draft:
    return messages.text_draft(p, body, key)


def at(draft: Draft, when: str) -> Draft:
    return dataclasses.replace(draft, timestamp=when)


DAY1, DAY2, DAY3, DAY4 = (f"2026-01-0{d}T12:00:00.000Z" for d in (1, 2, 3, 4))


async def enter_at(
    store: Store, room_id: str, name: str, when: str, capacity: int = 3
) -> Participant:
    p = person(room_id, name)
    joined = await store.join(room_id, capacity, p, at(messages.event_draft(Kind.JOINED, p), when))
    return joined.participant


async def unread_by_reading(store: Store, p: Participant) -> int:
    """What `unread` must say, worked out the slow way: the log past the read position."""
    now = await store.participant(p.secret_hash)
    assert now is not None
    past = await store.history(p.room_id, after=now.cursor, before=None, limit=100_000)
    return reading.unread(past, p.participant_id, now.cursor)
