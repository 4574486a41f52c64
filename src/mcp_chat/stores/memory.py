"""The in-process store: everything in dictionaries, gone when the process ends."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from mcp_chat import errors, matching, mentions, presence, reading, rooms
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores.base import Store, Unseated
from mcp_chat.types import (
    Appended,
    Claim,
    Counts,
    Draft,
    Joined,
    Kind,
    Left,
    Matched,
    Message,
    Participant,
    Pruned,
    QueueEntry,
    Room,
    RoomSummary,
)


@dataclass
class _RoomState:
    room: Room
    log: list[Message] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # participant ids, in order of joining
    keys: dict[tuple[str, str], Message] = field(default_factory=dict)
    # The seqs of each sender's messages in the log, so that counting what a reader has not
    # read is two binary searches: the log past its read position, less its own messages there.
    sent: dict[str, list[int]] = field(default_factory=dict)

    def unread(self, participant: Participant) -> int:
        """Messages from others past the participant's read position (`reading.unread`, by
        two binary searches)."""
        cursor = participant.cursor
        past = len(self.log) - bisect.bisect_right(self.log, cursor, key=lambda m: m.seq)
        own = self.sent.get(participant.participant_id, [])
        return past - (len(own) - bisect.bisect_right(own, cursor))


class MemoryStore(Store):
    """Each method runs without awaiting, so on one event loop every call is atomic."""

    def __init__(self) -> None:
        self._rooms: dict[str, _RoomState] = {}
        self._participants: dict[str, Participant] = {}
        self._by_secret: dict[str, str] = {}
        self._queue: dict[str, QueueEntry] = {}  # by entry id, in order of entering
        self._queue_by_secret: dict[str, str] = {}

    async def close(self) -> None:
        pass

    def _append(self, state: _RoomState, draft: Draft) -> Message:
        seq = state.room.last_seq + 1
        message = Message.from_draft(state.room.room_id, seq, draft)
        state.log.append(message)
        state.sent.setdefault(draft.sender_id, []).append(seq)
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
        self,
        room_id: str,
        capacity: int,
        participant: Participant,
        event: Draft,
        invite_hash: str | None = None,
    ) -> Joined:
        state = self._rooms.get(room_id)
        if state is not None and rooms.starts_anew(state.room):
            self._set_aside(state)
            state = None
        created = state is None
        if state is None:
            room = Room(room_id, capacity, event.timestamp, 0, False, invite_hash)
            state = _RoomState(room)
        rooms.check_join(state.room, rooms.seated(self._members(state)), invite_hash)
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

    def _members(self, state: _RoomState, but: str | None = None) -> list[Participant]:
        return [self._participants[pid] for pid in state.members if pid != but]

    def _set_aside(self, state: _RoomState) -> None:
        """Keep an ended conversation, with everyone who was in it, under `rooms.archive_id`."""
        old = state.room.room_id
        archive = rooms.archive_id(old)
        del self._rooms[old]
        state.room = dataclasses.replace(state.room, room_id=archive)
        state.log = [dataclasses.replace(m, room_id=archive) for m in state.log]
        state.keys = {k: dataclasses.replace(m, room_id=archive) for k, m in state.keys.items()}
        # Every participant still filed under the name was in this conversation: those of
        # earlier ones were set aside with theirs.
        for pid, p in list(self._participants.items()):
            if p.room_id == old:
                self._participants[pid] = dataclasses.replace(p, room_id=archive)
        self._rooms[archive] = state

    async def participant(self, secret_hash: str) -> Participant | None:
        participant_id = self._by_secret.get(secret_hash)
        return None if participant_id is None else self._participants[participant_id]

    async def append(self, participant_id: str, draft: Draft) -> Appended:
        participant, state = self._member(participant_id)
        if draft.key is not None:
            first = state.keys.get((participant_id, draft.key))
            if first is not None:
                return Appended(first, True, state.unread(participant))
        if state.room.ended:
            raise errors.chat_ended(state.room.room_id)
        if participant.gone:
            raise Unseated
        message = self._append(state, draft)
        if draft.key is not None:
            state.keys[(participant_id, draft.key)] = message
        return Appended(message, False, state.unread(participant))

    async def keyed(self, participant_id: str, key: str) -> Message | None:
        participant = self._participants.get(participant_id)
        if participant is None:
            raise errors.unknown_client()
        # Also for one who has left, as the other stores answer: the key names what is stored.
        return self._rooms[participant.room_id].keys.get((participant_id, key))

    async def claim(
        self, participant_id: str, after: int | None, limit: int, through: int | None = None
    ) -> Claim:
        participant, state = self._member(participant_id)
        if participant.gone and not state.room.ended:
            raise Unseated
        claim = self._read(participant, state, after, limit, through)
        self._participants[participant_id] = dataclasses.replace(participant, cursor=claim.cursor)
        return claim

    async def peek(self, participant_id: str, after: int | None, limit: int) -> Claim:
        participant, state = self._member(participant_id)
        found = self._read(participant, state, after, limit, None)
        return dataclasses.replace(found, cursor=participant.cursor)

    @staticmethod
    def _read(
        participant: Participant,
        state: _RoomState,
        after: int | None,
        limit: int,
        through: int | None,
    ) -> Claim:
        """What a claim takes, and where it leaves the read position (`reading.read`)."""
        span = reading.window(participant.cursor, after, state.room.last_seq, through)
        index = bisect.bisect_right(state.log, span.start, key=lambda m: m.seq)
        taken, has_more = reading.take(
            itertools.islice(state.log, index, None), participant.participant_id, span, limit
        )
        cursor = reading.cursor_after(span, taken, has_more)
        return Claim(taken, cursor, has_more, state.room.ended, state.room.room_id)

    async def unread(self, participant_id: str) -> int:
        participant, state = self._member(participant_id)
        return state.unread(participant)

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
        others = [pid for pid in state.members if pid != participant_id]
        seated_others = rooms.seated(self._members(state, but=participant_id))
        ended = state.room.ended or rooms.ends_after_leave(state.room, len(others), seated_others)
        message = self._append(state, mentions.left(event, others, ended))
        self._participants[participant_id] = dataclasses.replace(
            participant, left=True, cursor=message.seq
        )
        state.members.remove(participant_id)
        state.room = dataclasses.replace(state.room, ended=ended)
        return Left(message, ended)

    async def room(self, room_id: str) -> Room | None:
        state = self._rooms.get(room_id)
        return None if state is None else state.room

    async def members(self, room_id: str) -> list[Participant]:
        state = self._rooms.get(room_id)
        return [] if state is None else [self._participants[pid] for pid in state.members]

    async def rooms(self, limit: int) -> list[RoomSummary]:
        seats = {room_id: rooms.seated(self._members(s)) for room_id, s in self._rooms.items()}
        found = [s for room_id, s in self._rooms.items() if rooms.listed(s.room, seats[room_id])]
        found.sort(key=lambda s: s.room.created_at, reverse=True)
        return [
            RoomSummary(
                s.room.room_id, s.room.capacity, seats[s.room.room_id], False, s.room.created_at
            )
            for s in found[:limit]
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
                state.sent = {}
                for m in kept:
                    state.sent.setdefault(m.sender_id, []).append(m.seq)
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
                for entry in [e for e in self._queue.values() if e.room_id == room_id]:
                    del self._queue[entry.entry_id]
        return Pruned(removed_messages, removed_rooms)

    # -- the random-pairing queue -------------------------------------------------------------

    def _waiting(self) -> list[QueueEntry]:
        return [e for e in self._queue.values() if e.room_id is None]

    def _pair(self, waited: QueueEntry, seeker: QueueEntry, now: float) -> Matched:
        pair = matching.make_pair(waited, seeker, now)
        state = _RoomState(pair.room)
        self._rooms[pair.room.room_id] = state
        for member, event in zip((pair.first, pair.second), pair.events, strict=True):
            self._append(state, event)
            self._participants[member.participant_id] = member
            self._by_secret[member.secret_hash] = member.participant_id
            state.members.append(member.participant_id)
        for entry in (waited, seeker):
            self._queue[entry.entry_id] = dataclasses.replace(entry, room_id=pair.room.room_id)
        return Matched(state.room, pair.first, pair.second)

    async def enqueue(self, entry: QueueEntry, now: float, policy: MatchPolicy) -> Matched | None:
        self._queue[entry.entry_id] = entry
        self._queue_by_secret[entry.secret_hash] = entry.entry_id
        pair = matching.on_entering(entry, self._waiting(), now, policy)
        return None if pair is None else self._pair(*pair, now)

    async def rematch(self, entry_id: str, now: float, policy: MatchPolicy) -> Matched | None:
        pair = matching.on_retry(entry_id, self._waiting(), now, policy)
        return None if pair is None else self._pair(*pair, now)

    async def queue_entry(self, secret_hash: str) -> QueueEntry | None:
        entry_id = self._queue_by_secret.get(secret_hash)
        return None if entry_id is None else self._queue.get(entry_id)

    async def queue_position(self, entry_id: str) -> int:
        return matching.position(entry_id, self._waiting())

    async def leave_queue(self, entry_id: str) -> bool:
        entry = self._queue.get(entry_id)
        if entry is None or entry.room_id is not None:
            return False
        del self._queue[entry_id]
        return True

    # -- presence --------------------------------------------------------------------------------

    def _mark(self, participant: Participant, kind: Kind) -> Message:
        draft, marked = presence.mark(participant, kind)
        message = self._append(self._rooms[participant.room_id], draft)
        self._participants[participant.participant_id] = marked
        return message

    def _goes(self, participant: Participant, cutoff: float | None = None) -> bool:
        return presence.goes(participant, self._rooms[participant.room_id].room, cutoff)

    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        events: list[Message] = []
        for some_id, when in seen.items():
            entry = self._queue.get(some_id)
            if entry is not None and entry.last_seen < when:
                self._queue[some_id] = dataclasses.replace(entry, last_seen=when)
            participant = self._participants.get(some_id)
            if participant is None:
                continue
            participant = self._participants[some_id] = presence.seen(participant, when)
            with contextlib.suppress(errors.ChatError):  # no free seat: it stays gone
                if event := self._come_back(participant):
                    events.append(event)
        return events

    async def come_back(self, participant_id: str) -> Message | None:
        participant, _ = self._member(participant_id)
        return self._come_back(participant)

    def _come_back(self, participant: Participant) -> Message | None:
        state = self._rooms[participant.room_id]
        if not rooms.may_come_back(state.room, participant):
            return None
        rooms.check_return(
            state.room, rooms.seated(self._members(state, participant.participant_id))
        )
        return self._mark(participant, Kind.RETURNED)

    async def disconnect(self, ids: Collection[str]) -> list[Message]:
        events: list[Message] = []
        for some_id in ids:
            entry = self._queue.get(some_id)
            if entry is not None and entry.room_id is None:
                del self._queue[some_id]
            participant = self._participants.get(some_id)
            if participant is not None and self._goes(participant):
                events.append(self._mark(participant, Kind.DISCONNECTED))
        return events

    async def sweep(self, now: float, gone_after: float, stale_after: float) -> list[Message]:
        queue_cutoff = presence.silent_since(now, stale_after)
        for entry in self._waiting():
            if matching.stale(entry, queue_cutoff):
                del self._queue[entry.entry_id]
        cutoff = presence.silent_since(now, gone_after)
        silent = [p for p in self._participants.values() if self._goes(p, cutoff)]
        return [self._mark(p, Kind.DISCONNECTED) for p in silent]
