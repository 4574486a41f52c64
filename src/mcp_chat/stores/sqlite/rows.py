"""What the SQLite store's operations share: reading a member, a room, its members, and
writing a room, a participant, a message (on the thread running the operation)."""

from __future__ import annotations

import json
from collections.abc import Callable

from mcp_chat import errors, rooms
from mcp_chat.stores.sqlite.engine import Engine
from mcp_chat.stores.sqlite.records import participant_of, room_of
from mcp_chat.stores.sqlite.schema import PARTICIPANT_COLUMNS, ROOM_COLUMNS, SETTLED
from mcp_chat.types import Draft, Message, Participant, Room


class Rows(Engine):
    """Reads and writes that several operations take, inside their transaction."""

    def _member(self, participant_id: str) -> Participant:
        row = self.db.execute(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            raise errors.unknown_client()
        participant = participant_of(row)
        if participant.left:
            raise errors.left_room(participant.room_id)
        return participant

    def _member_room(self, participant_id: str) -> str:
        """The room of a current participant (the hot path's lighter `_member`)."""
        row = self.db.execute(
            "SELECT room_id, left_room FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            raise errors.unknown_client()
        if row[1]:
            raise errors.left_room(row[0])
        return str(row[0])

    def _room_row(self, room_id: str) -> Room | None:
        row = self.db.execute(
            f"SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return None if row is None else room_of(row)

    def _set_aside(self, room_id: str) -> None:
        """Keep an ended conversation, with everyone who was in it, under `rooms.archive_id`
        (each table's room_id; a queue entry keeps pointing at the room it was matched into)."""
        archive = rooms.archive_id(room_id)
        for table in ("rooms", "messages", "participants", "queue"):
            self.db.execute(
                f"UPDATE {table} SET room_id = ? WHERE room_id = ?",  # the names are the four above
                (archive, room_id),
            )

    def _active_members(self, room_id: str) -> list[Participant]:
        rows = self.db.execute(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants "
            "WHERE room_id = ? AND left_room = 0 ORDER BY joined_order",
            (room_id,),
        ).fetchall()
        return [participant_of(r) for r in rows]

    def _insert_room(self, room: Room) -> None:
        self.db.execute(
            "INSERT INTO rooms (room_id, capacity, created_at, invite_hash) VALUES (?, ?, ?, ?)",
            (room.room_id, room.capacity, room.created_at, room.invite_hash),
        )

    def _insert_participant(self, participant: Participant, order: int) -> None:
        self.db.execute(
            "INSERT INTO participants (participant_id, room_id, display_name, secret_hash,"
            " cursor, joined_at, joined_order, last_seen) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
            (
                participant.participant_id,
                participant.room_id,
                participant.display_name,
                participant.secret_hash,
                participant.joined_at,
                order,
                participant.last_seen,
            ),
        )
        # A newcomer reads from the start: all that others said before it is unread.
        self._count_settled(participant.participant_id)

    def _count_settled(self, participant_id: str) -> None:
        self.db.execute(
            f"UPDATE participants SET settled = {SETTLED} WHERE participant_id = ?",
            (participant_id,),
        )

    def _append(self, room: Room, draft: Draft) -> Message:
        seq = room.last_seq + 1
        self._insert_message(room.room_id, seq, draft)
        self.db.execute("UPDATE rooms SET last_seq = ? WHERE room_id = ?", (seq, room.room_id))
        return Message.from_draft(room.room_id, seq, draft)

    def _insert_message(self, room_id: str, seq: int, draft: Draft) -> int | None:
        """Store the message; its sender need not read it. Returns the sender's `settled`
        (None when the sender is not in the room yet: a 'joined' event comes first)."""
        self.db.execute(
            "INSERT INTO messages (room_id, seq, message_id, sender_id, sender_name, kind, body,"
            " created_at, msg_key, mentions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                room_id,
                seq,
                draft.message_id,
                draft.sender_id,
                draft.sender_name,
                draft.kind.value,
                draft.text,
                draft.timestamp,
                draft.key,
                json.dumps(draft.mentions) if draft.mentions else None,
            ),
        )
        row = self.db.execute(
            "UPDATE participants SET settled = settled + 1 WHERE participant_id = ?"
            " RETURNING settled",
            (draft.sender_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    async def _announced(self, fn: Callable[[], list[Message]]) -> list[Message]:
        events = await self._run(fn)
        for room_id in {m.room_id for m in events}:
            self._waker.notify(room_id)
        return events
