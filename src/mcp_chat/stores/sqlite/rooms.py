"""The SQLite store's rooms: joining, leaving, members, the listing and the counts."""

from __future__ import annotations

import dataclasses
import time

from mcp_chat import mentions, rooms
from mcp_chat.stores.sqlite.engine import read_tx, write_tx
from mcp_chat.stores.sqlite.records import participant_of, room_of
from mcp_chat.stores.sqlite.rows import Rows
from mcp_chat.stores.sqlite.schema import PARTICIPANT_COLUMNS
from mcp_chat.types import Counts, Draft, Joined, Left, Participant, Room, RoomSummary


class RoomOps(Rows):
    """Rooms and who is in them."""

    async def join(
        self,
        room_id: str,
        capacity: int,
        participant: Participant,
        event: Draft,
        invite_hash: str | None = None,
    ) -> Joined:
        def run() -> Joined:
            with write_tx(self.db):
                room = self._room_row(room_id)
                if room is not None and rooms.starts_anew(room):
                    self._set_aside(room_id)
                    room = None
                created = room is None
                if room is None:
                    room = Room(room_id, capacity, event.timestamp, 0, False, invite_hash)
                    self._insert_room(room)
                seated = rooms.seated(self._active_members(room_id))
                rooms.check_join(room, seated, invite_hash)
                message = self._append(room, event)
                self._insert_participant(participant, message.seq)
                room = dataclasses.replace(room, last_seq=message.seq)
                return Joined(participant, room, created, self._active_members(room_id))

        joined = await self._run(run)
        self._waker.notify(room_id)
        return joined

    async def participant(self, secret_hash: str) -> Participant | None:
        def run() -> Participant | None:
            row = self.db.execute(
                f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE secret_hash = ?",
                (secret_hash,),
            ).fetchone()
            return None if row is None else participant_of(row)

        return await self._query(run)

    async def leave(self, participant_id: str, event: Draft) -> Left:
        def run() -> Left:
            with write_tx(self.db):
                participant = self._member(participant_id)
                room = self._room_row(participant.room_id)
                assert room is not None
                members = [
                    p
                    for p in self._active_members(room.room_id)
                    if p.participant_id != participant_id
                ]
                others = [p.participant_id for p in members]
                ended = room.ended or rooms.ends_after_leave(
                    room, len(others), rooms.seated(members)
                )
                message = self._append(room, mentions.left(event, others, ended))
                self.db.execute(
                    "UPDATE participants SET left_room = 1, cursor = ? WHERE participant_id = ?",
                    (message.seq, participant_id),
                )
                if ended and not room.ended:
                    self.db.execute("UPDATE rooms SET ended = 1 WHERE room_id = ?", (room.room_id,))
                return Left(message, ended)

        left = await self._run(run)
        self._waker.notify(left.message.room_id)
        return left

    async def room(self, room_id: str) -> Room | None:
        return await self._query(self._room_row, room_id)

    async def check_writable(self) -> None:
        # Reads go on when the disk is full, the file read-only or deleted: only a write tells.
        # The smallest one that goes the way a send does (the write lock, the write-ahead log,
        # the commit and its look at the file): one row, written over each time.
        def run() -> None:
            with write_tx(self.db):
                self.db.execute(
                    "INSERT INTO readiness (id, written_at) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                    (time.time(),),
                )

        await self._run(run)

    async def members(self, room_id: str) -> list[Participant]:
        return await self._query(self._active_members, room_id)

    async def rooms(self, limit: int) -> list[RoomSummary]:
        def run() -> list[RoomSummary]:
            # `rooms.listed` in SQL too (open, public, someone seated), so that the LIMIT
            # counts only rooms that are offered; then the rule itself decides.
            rows = self.db.execute(
                "SELECT * FROM (SELECT r.room_id, r.capacity, r.created_at, r.ended,"
                " r.invite_hash, r.last_seq,"
                " (SELECT count(*) FROM participants p"
                "   WHERE p.room_id = r.room_id AND p.left_room = 0 AND p.gone = 0) AS seated"
                " FROM rooms r WHERE r.ended = 0 AND r.invite_hash IS NULL)"
                " WHERE seated > 0 ORDER BY created_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [
                RoomSummary(r["room_id"], r["capacity"], r["seated"], False, r["created_at"])
                for r in rows
                if rooms.listed(room_of(r), r["seated"])
            ]

        return await self._query(run)

    async def counts(self) -> Counts:
        def run() -> Counts:
            with read_tx(self.db):
                rooms, participants = self.db.execute(
                    "SELECT count(*), coalesce(sum((SELECT count(*) FROM participants p"
                    "   WHERE p.room_id = r.room_id AND p.left_room = 0)), 0)"
                    " FROM rooms r WHERE r.ended = 0"
                ).fetchone()
                return Counts(int(rooms), int(participants))

        return await self._query(run)
