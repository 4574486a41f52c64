"""The SQLite store's random-pairing queue (`matching`'s steps in one transaction each)."""

from __future__ import annotations

import dataclasses
import json

from mcp_chat import matching
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores.sqlite.engine import write_tx
from mcp_chat.stores.sqlite.records import entry_of
from mcp_chat.stores.sqlite.rows import Rows
from mcp_chat.stores.sqlite.schema import QUEUE_COLUMNS
from mcp_chat.types import Matched, QueueEntry


class QueueOps(Rows):
    """The queue of those waiting to be paired, and the pairs it makes."""

    def _waiting(self) -> list[QueueEntry]:
        rows = self.db.execute(
            f"SELECT {QUEUE_COLUMNS} FROM queue WHERE room_id IS NULL ORDER BY entered_at"
        ).fetchall()
        return [entry_of(r) for r in rows]

    def _pair(self, waited: QueueEntry, seeker: QueueEntry, now: float) -> Matched:
        pair = matching.make_pair(waited, seeker, now)
        self._insert_room(pair.room)
        room = pair.room
        for member, event in zip((pair.first, pair.second), pair.events, strict=True):
            message = self._append(room, event)
            room = dataclasses.replace(room, last_seq=message.seq)
            self._insert_participant(member, message.seq)
        self.db.execute(
            "UPDATE queue SET room_id = ? WHERE entry_id IN (?, ?)",
            (room.room_id, waited.entry_id, seeker.entry_id),
        )
        return Matched(room, pair.first, pair.second)

    def _pair_notices(self, matched: Matched | None) -> None:
        if matched is not None:
            self._waker.notify(matched.room.room_id)
            for member in (matched.first, matched.second):
                self._waker.notify(f"queue:{member.participant_id}")

    async def enqueue(self, entry: QueueEntry, now: float, policy: MatchPolicy) -> Matched | None:
        def run() -> Matched | None:
            with write_tx(self.db):
                self.db.execute(
                    f"INSERT INTO queue ({QUEUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (
                        entry.entry_id,
                        entry.secret_hash,
                        entry.display_name,
                        json.dumps(list(entry.interests)),
                        entry.entered_at,
                        entry.last_seen,
                    ),
                )
                pair = matching.on_entering(entry, self._waiting(), now, policy)
                return None if pair is None else self._pair(*pair, now)

        matched = await self._run(run)
        self._pair_notices(matched)
        return matched

    async def rematch(self, entry_id: str, now: float, policy: MatchPolicy) -> Matched | None:
        def run() -> Matched | None:
            with write_tx(self.db):
                pair = matching.on_retry(entry_id, self._waiting(), now, policy)
                return None if pair is None else self._pair(*pair, now)

        matched = await self._run(run)
        self._pair_notices(matched)
        return matched

    async def queue_entry(self, secret_hash: str) -> QueueEntry | None:
        def run() -> QueueEntry | None:
            row = self.db.execute(
                f"SELECT {QUEUE_COLUMNS} FROM queue WHERE secret_hash = ?", (secret_hash,)
            ).fetchone()
            return None if row is None else entry_of(row)

        return await self._query(run)

    async def queue_position(self, entry_id: str) -> int:
        def run() -> int:
            return matching.position(entry_id, self._waiting())

        return await self._query(run)

    async def leave_queue(self, entry_id: str) -> bool:
        def run() -> bool:
            with write_tx(self.db):
                gone = self.db.execute(
                    "DELETE FROM queue WHERE entry_id = ? AND room_id IS NULL", (entry_id,)
                )
                return gone.rowcount > 0

        return await self._run(run)
