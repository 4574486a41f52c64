"""The in-process store: everything in dictionaries, gone when the process ends."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field

from mcp_chat import errors, rooms
from mcp_chat.stores.base import Store
from mcp_chat.types import (
    Appended,
    Claim,
    Counts,
    Draft,
    Joined,
    Left,
    Message,
    Participant,
    Pruned,
    Room,
    RoomSummary,
)


@dataclass
class _RoomState:
    room: Room
    log: list[Message] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # participant ids, in order of joining
    keys: dict[tuple[str, str], Message] = field(default_factory=dict)


class MemoryStore(Store):
    """Each method runs without awaiting, so on one event loop every call is atomic."""

    def __init__(self) -> None:
        self._rooms: dict[str, _RoomState] = {}
        self._participants: dict[str, Participant] = {}
        self._by_secret: dict[str, str] = {}

    async def close(self) -> None:
        pass

    def _append(self, state: _RoomState, draft: Draft) -> Message:
        seq = state.room.last_seq + 1
        message = Message.from_draft(state.room.room_id, seq, draft)
        state.log.append(message)
        state.room = dataclasses.replace(state.room, last_seq=seq)
        return message

    def _member(self, participant_id: str) -> tuple[Participant, _RoomState]:
        participant = self._participants.get(participant_id)
        if participant is None:
            raise errors.unknown_client()
        state = self._rooms[participant.room_id]
        if participant.left:
            raise errors.left_room(participant.room_id)
        return participant, state

    async def join(
        self, room_id: str, capacity: int, participant: Participant, event: Draft
    ) -> Joined:
        state = self._rooms.get(room_id)
        created = state is None
        if state is None:
            room = Room(room_id, capacity, event.timestamp, last_seq=0, ended=False)
            state = _RoomState(room)
        rooms.check_join(state.room, len(state.members))
        self._rooms[room_id] = state
        self._append(state, event)
        # The newcomer's read position starts at the beginning: what was said before it
        # arrived is delivered too.
        stored = dataclasses.replace(participant, cursor=0)
        self._participants[stored.participant_id] = stored
        self._by_secret[stored.secret_hash] = stored.participant_id
        state.members.append(stored.participant_id)
        members = [self._participants[pid] for pid in state.members]
        return Joined(stored, state.room, created, members)

    async def participant(self, secret_hash: str) -> Participant | None:
        participant_id = self._by_secret.get(secret_hash)
        return None if participant_id is None else self._participants[participant_id]

    async def append(self, participant_id: str, draft: Draft) -> Appended:
        _, state = self._member(participant_id)
        if draft.key is not None:
            first = state.keys.get((participant_id, draft.key))
            if first is not None:
                return Appended(first, duplicate=True)
        if state.room.ended:
            raise errors.chat_ended(state.room.room_id)
        message = self._append(state, draft)
        if draft.key is not None:
            state.keys[(participant_id, draft.key)] = message
        return Appended(message, duplicate=False)

    async def claim(self, participant_id: str, after: int | None, limit: int) -> Claim:
        participant, state = self._member(participant_id)
        start = min(participant.cursor if after is None else max(after, 0), state.room.last_seq)
        index = bisect.bisect_right(state.log, start, key=lambda m: m.seq)
        taken: list[Message] = []
        cursor = start
        has_more = False
        for message in state.log[index:]:
            if message.sender_id == participant_id:
                cursor = message.seq
                continue
            if len(taken) == limit:
                has_more = True
                break
            taken.append(message)
            cursor = message.seq
        self._participants[participant_id] = dataclasses.replace(participant, cursor=cursor)
        return Claim(taken, cursor, has_more, state.room.ended)

    async def unread(self, participant_id: str) -> int:
        participant, state = self._member(participant_id)
        index = bisect.bisect_right(state.log, participant.cursor, key=lambda m: m.seq)
        return sum(1 for m in state.log[index:] if m.sender_id != participant_id)

    async def history(
        self, room_id: str, after: int | None, before: int | None, limit: int
    ) -> list[Message]:
        state = self._rooms.get(room_id)
        if state is None:
            return []
        log = state.log
        if after is not None:
            index = bisect.bisect_right(log, after, key=lambda m: m.seq)
            return log[index : index + limit]
        end = len(log) if before is None else bisect.bisect_left(log, before, key=lambda m: m.seq)
        return log[max(0, end - limit) : end]

    async def leave(self, participant_id: str, event: Draft) -> Left:
        participant, state = self._member(participant_id)
        message = self._append(state, event)
        self._participants[participant_id] = dataclasses.replace(
            participant, left=True, cursor=message.seq
        )
        state.members.remove(participant_id)
        ended = state.room.ended or rooms.ends_after_leave(state.room, len(state.members))
        state.room = dataclasses.replace(state.room, ended=ended)
        return Left(message, ended)

    async def room(self, room_id: str) -> Room | None:
        state = self._rooms.get(room_id)
        return None if state is None else state.room

    async def members(self, room_id: str) -> list[Participant]:
        state = self._rooms.get(room_id)
        return [] if state is None else [self._participants[pid] for pid in state.members]

    async def rooms(self, limit: int) -> list[RoomSummary]:
        open_rooms = [s for s in self._rooms.values() if not s.room.ended]
        open_rooms.sort(key=lambda s: s.room.created_at, reverse=True)
        return [
            RoomSummary(s.room.room_id, s.room.capacity, len(s.members), False, s.room.created_at)
            for s in open_rooms[:limit]
        ]

    async def counts(self) -> Counts:
        open_rooms = [s for s in self._rooms.values() if not s.room.ended]
        return Counts(
            rooms=len(open_rooms),
            participants=sum(len(s.members) for s in open_rooms),
        )

    async def prune(self, messages_before: str | None, idle_before: str | None) -> Pruned:
        removed_messages = removed_rooms = 0
        for room_id, state in list(self._rooms.items()):
            if messages_before is not None and state.log:
                kept = [m for m in state.log[:-1] if m.timestamp >= messages_before]
                kept.append(state.log[-1])
                removed_messages += len(state.log) - len(kept)
                state.log = kept
                alive = {m.message_id for m in kept}
                state.keys = {k: m for k, m in state.keys.items() if m.message_id in alive}
            newest = state.log[-1].timestamp if state.log else state.room.created_at
            if idle_before is not None and newest < idle_before:
                removed_messages += len(state.log)
                removed_rooms += 1
                del self._rooms[room_id]
                for participant_id in [
                    p.participant_id for p in self._participants.values() if p.room_id == room_id
                ]:
                    gone = self._participants.pop(participant_id)
                    self._by_secret.pop(gone.secret_hash, None)
        return Pruned(removed_messages, removed_rooms)
