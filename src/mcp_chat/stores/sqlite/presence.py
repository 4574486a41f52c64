"""The SQLite store's presence: signs of life, and the marks of `presence` and `rooms`."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping

from mcp_chat import errors, presence, rooms
from mcp_chat.stores.sqlite.engine import write_tx
from mcp_chat.stores.sqlite.records import participant_of
from mcp_chat.stores.sqlite.rows import Rows
from mcp_chat.stores.sqlite.schema import PARTICIPANT_COLUMNS
from mcp_chat.types import Kind, Message, Participant, Room


class PresenceOps(Rows):
    """Signs of life, members marked gone, and their return."""

    def _mark(self, participant: Participant, room: Room, kind: Kind) -> Message:
        draft, marked = presence.mark(participant, kind)
        message = self._append(room, draft)
        self.db.execute(
            "UPDATE participants SET gone = ? WHERE participant_id = ?",
            (int(marked.gone), participant.participant_id),
        )
        return message

    def _with_room(self, participant_id: str) -> tuple[Participant, Room] | None:
        """The participant and its room, if it is one."""
        row = self.db.execute(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            return None
        participant = participant_of(row)
        room = self._room_row(participant.room_id)
        assert room is not None
        return participant, room

    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        def run() -> list[Message]:
            events: list[Message] = []
            with write_tx(self.db):
                for some_id, when in seen.items():
                    self.db.execute(
                        "UPDATE queue SET last_seen = max(last_seen, ?) WHERE entry_id = ?",
                        (when, some_id),
                    )
                    self.db.execute(
                        "UPDATE participants SET last_seen = max(last_seen, ?)"
                        " WHERE participant_id = ?",
                        (when, some_id),
                    )
                    found = self._with_room(some_id)
                    if found is not None:
                        with contextlib.suppress(errors.ChatError):  # no seat: it stays gone
                            if event := self._come_back(*found):
                                events.append(event)
            return events

        return await self._announced(run)

    async def come_back(self, participant_id: str) -> Message | None:
        def run() -> list[Message]:
            with write_tx(self.db):
                participant = self._member(participant_id)
                room = self._room_row(participant.room_id)
                assert room is not None
                event = self._come_back(participant, room)
                return [] if event is None else [event]

        events = await self._announced(run)
        return events[0] if events else None

    def _come_back(self, participant: Participant, room: Room) -> Message | None:
        """Seat again a member marked gone, if `rooms.may_come_back` and a seat is free."""
        if not rooms.may_come_back(room, participant):
            return None
        others = [
            p
            for p in self._active_members(room.room_id)
            if p.participant_id != participant.participant_id
        ]
        rooms.check_return(room, rooms.seated(others))
        return self._mark(participant, room, Kind.RETURNED)

    async def disconnect(self, ids: Collection[str]) -> list[Message]:
        def run() -> list[Message]:
            events: list[Message] = []
            with write_tx(self.db):
                for some_id in ids:
                    self.db.execute(
                        "DELETE FROM queue WHERE entry_id = ? AND room_id IS NULL", (some_id,)
                    )
                    found = self._with_room(some_id)
                    if found is not None and presence.goes(*found):
                        events.append(self._mark(*found, Kind.DISCONNECTED))
            return events

        return await self._announced(run)

    async def sweep(self, now: float, gone_after: float, stale_after: float) -> list[Message]:
        def run() -> list[Message]:
            # `matching.stale` and `presence.goes` in SQL, so that only those due are read;
            # then the rule itself decides.
            with write_tx(self.db):
                self.db.execute(
                    "DELETE FROM queue WHERE room_id IS NULL AND last_seen <= ?",
                    (presence.silent_since(now, stale_after),),
                )
                cutoff = presence.silent_since(now, gone_after)
                silent = self.db.execute(
                    "SELECT p.participant_id FROM participants p"
                    " JOIN rooms r ON r.room_id = p.room_id"
                    " WHERE p.left_room = 0 AND p.gone = 0 AND r.ended = 0 AND p.last_seen <= ?",
                    (cutoff,),
                ).fetchall()
                events = []
                for row in silent:
                    found = self._with_room(row[0])
                    if found is not None and presence.goes(*found, cutoff):
                        events.append(self._mark(*found, Kind.DISCONNECTED))
                return events

        return await self._announced(run)
