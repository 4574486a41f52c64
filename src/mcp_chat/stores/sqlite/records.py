"""Rows of the SQLite store's tables as the records of `mcp_chat.types`."""

from __future__ import annotations

import json
import sqlite3

from mcp_chat.types import Kind, Message, Participant, QueueEntry, Room


def message_of(row: sqlite3.Row) -> Message:
    return Message(
        room_id=row["room_id"],
        seq=row["seq"],
        message_id=row["message_id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        kind=Kind(row["kind"]),
        text=row["body"],
        timestamp=row["created_at"],
        mentions=tuple(json.loads(row["mentions"])) if row["mentions"] else (),
    )


def participant_of(row: sqlite3.Row) -> Participant:
    return Participant(
        participant_id=row["participant_id"],
        room_id=row["room_id"],
        display_name=row["display_name"],
        secret_hash=row["secret_hash"],
        cursor=row["cursor"],
        joined_at=row["joined_at"],
        left=bool(row["left_room"]),
        last_seen=row["last_seen"],
        gone=bool(row["gone"]),
    )


def room_of(row: sqlite3.Row) -> Room:
    return Room(
        room_id=row["room_id"],
        capacity=row["capacity"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
        ended=bool(row["ended"]),
        invite_hash=row["invite_hash"],
    )


def entry_of(row: sqlite3.Row) -> QueueEntry:
    return QueueEntry(
        entry_id=row["entry_id"],
        secret_hash=row["secret_hash"],
        display_name=row["display_name"],
        interests=tuple(json.loads(row["interests"])),
        entered_at=row["entered_at"],
        last_seen=row["last_seen"],
        room_id=row["room_id"],
    )
