"""The SQLite store's messages: appending, claiming, peeking, counting what is unread, history."""

from __future__ import annotations

import dataclasses

from mcp_chat import errors, reading, rooms
from mcp_chat.stores.base import Unseated
from mcp_chat.stores.sqlite.engine import read_tx, write_tx
from mcp_chat.stores.sqlite.records import message_of
from mcp_chat.stores.sqlite.rows import Rows
from mcp_chat.stores.sqlite.schema import MESSAGE_COLUMNS
from mcp_chat.types import Appended, Claim, Draft, Message, Participant, Room


class MessageOps(Rows):
    """The log of each room, and each participant's read position in it (`reading`)."""

    async def keyed(self, participant_id: str, key: str) -> Message | None:
        def run() -> Message | None:
            row = self.db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = ? AND msg_key = ?",
                (participant_id, key),
            ).fetchone()
            return None if row is None else message_of(row)

        return await self._run(run)

    async def append(self, participant_id: str, draft: Draft) -> Appended:
        def run() -> Appended:
            with write_tx(self.db):
                if draft.key is not None:
                    self._member_room(participant_id)
                    row = self.db.execute(
                        f"SELECT {MESSAGE_COLUMNS} FROM messages"
                        " WHERE sender_id = ? AND msg_key = ?",
                        (participant_id, draft.key),
                    ).fetchone()
                    if row is not None:
                        return Appended(message_of(row), True, self._unread(participant_id))
                # Check the sender is in the room with a seat and the room is open, and take
                # the next seq, in one statement (the hot path); if that finds nothing, find
                # out why.
                row = self.db.execute(
                    "UPDATE rooms SET last_seq = last_seq + 1 WHERE ended = 0 AND room_id ="
                    " (SELECT room_id FROM participants"
                    "   WHERE participant_id = ? AND left_room = 0 AND gone = 0)"
                    " RETURNING room_id, last_seq",
                    (participant_id,),
                ).fetchone()
                if row is None:
                    sender = self._member(participant_id)
                    room = self._room_row(sender.room_id)
                    if room is not None and rooms.may_come_back(room, sender):
                        raise Unseated
                    raise errors.chat_ended(sender.room_id)
                room_id, seq = row
                settled = self._insert_message(room_id, seq, draft)
                assert settled is not None
                return Appended(Message.from_draft(room_id, seq, draft), False, seq - settled)

        appended = await self._run(run)
        if not appended.duplicate:
            self._waker.notify(appended.message.room_id)
        return appended

    async def claim(
        self, participant_id: str, after: int | None, limit: int, through: int | None = None
    ) -> Claim:
        def run() -> Claim:
            with write_tx(self.db):
                participant = self._member(participant_id)
                room = self._room_row(participant.room_id)
                assert room is not None
                if rooms.may_come_back(room, participant):
                    raise Unseated
                claim, end = self._read(participant, room, after, limit, through)
                cursor, taken = claim.cursor, len(claim.messages)
                if cursor != participant.cursor:
                    if not claim.has_more and end == room.last_seq:  # all of it is read
                        self.db.execute(
                            "UPDATE participants SET cursor = ?, settled = ?"
                            " WHERE participant_id = ?",
                            (cursor, room.last_seq, participant_id),
                        )
                    elif after is None:  # from the read position: what was taken is settled
                        self.db.execute(
                            "UPDATE participants SET cursor = ?, settled = settled + ?"
                            " WHERE participant_id = ?",
                            (cursor, taken, participant_id),
                        )
                    else:  # a re-read from elsewhere that stops short: count
                        self.db.execute(
                            "UPDATE participants SET cursor = ? WHERE participant_id = ?",
                            (cursor, participant_id),
                        )
                        self._count_settled(participant_id)
                return claim

        return await self._run(run)

    async def peek(self, participant_id: str, after: int | None, limit: int) -> Claim:
        def run() -> Claim:
            with read_tx(self.db):
                participant = self._member(participant_id)
                room = self._room_row(participant.room_id)
                assert room is not None
                found, _ = self._read(participant, room, after, limit, None)
                return dataclasses.replace(found, cursor=participant.cursor)

        return await self._query(run)

    def _read(
        self,
        participant: Participant,
        room: Room,
        after: int | None,
        limit: int,
        through: int | None,
    ) -> tuple[Claim, int]:
        """What a claim takes and where it leaves the read position (`reading.read`, with the
        window's filter in SQL); and the seq it read to (the room's last, or `through`) when
        nothing more remains."""
        span = reading.window(participant.cursor, after, room.last_seq, through)
        rows = self.db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
            " AND seq <= ? AND sender_id != ? ORDER BY seq LIMIT ?",
            (room.room_id, span.start, span.end, participant.participant_id, limit + 1),
        ).fetchall()
        rows, has_more = reading.cut(rows, limit)
        taken = [message_of(r) for r in rows]
        cursor = reading.cursor_after(span, taken, has_more)
        return Claim(taken, cursor, has_more, room.ended, room.room_id), span.end

    async def unread(self, participant_id: str) -> int:
        def run() -> int:
            with read_tx(self.db):
                self._member(participant_id)
                return self._unread(participant_id)

        return await self._query(run)

    def _unread(self, participant_id: str) -> int:
        """Messages from others past the participant's read position."""
        row = self.db.execute(
            "SELECT r.last_seq - p.settled FROM participants p, rooms r"
            " WHERE p.participant_id = ? AND r.room_id = p.room_id",
            (participant_id,),
        ).fetchone()
        return int(row[0])

    async def history(
        self, room_id: str, after: int | None, before: int | None, limit: int
    ) -> list[Message]:
        def run() -> list[Message]:
            if after is not None:
                rows = self.db.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (room_id, after, limit),
                ).fetchall()
                return [message_of(r) for r in rows]
            rows = self.db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq < ?"
                " ORDER BY seq DESC LIMIT ?",
                (room_id, before if before is not None else 2**62, limit),
            ).fetchall()
            return [message_of(r) for r in reversed(rows)]

        return await self._query(run)
