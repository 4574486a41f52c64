"""The store contract on every backend (memory, SQLite, Redis): seeded random walks of
operations, each result checked against the pure rules (`reading`, `presence`, `matching`)
applied to a model of the store kept beside it."""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mcp_chat import matching, messages, presence, reading, rooms
from mcp_chat.errors import ChatError, Code
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores import Store, open_store
from mcp_chat.stores.base import Unseated
from mcp_chat.types import Draft, Kind, Message, Participant, QueueEntry, Room
from tests.stores_support import at, enter, enter_at, person, text, unread_by_reading

pytestmark = pytest.mark.anyio


async def test_unread_stays_exact_however_the_log_and_read_positions_move(store: Store) -> None:
    """A seeded walk of sends (some retried), reads (in small batches, some re-reading from an
    earlier seq), presence events, retention and a late arrival; after every step each member's
    `unread`, and the count an append returns, match the log read the slow way."""
    rng = random.Random(8)
    # Joins and sends are dated by step, in order, so that retention can cut the log at a known
    # point; presence events (dated now) come after that point.
    people = [await enter_at(store, "walk", name, "2000-01-01T00:00:00.000Z", 4) for name in "ABC"]
    keys = iter(range(1_000))
    for step in range(150):
        who = rng.choice(people)
        action = rng.choice(["send", "send", "send", "retry", "read", "reread", "presence"])
        if action == "presence" and step < 60:
            action = "send"
        if step == 60:
            action = "prune"
        if step == 100:
            people.append(await enter(store, "walk", "D", capacity=4))
            continue
        if action in ("send", "retry"):
            key = f"k{next(keys) if action == 'send' else rng.randrange(3)}"
            draft = at(text(who, f"s{step}", key=key), f"2000-01-01T00:00:00.{step:03d}Z")
            sent = await store.append(who.participant_id, draft)
            assert sent.unread == await unread_by_reading(store, who), step
        elif action == "read":
            await store.claim(who.participant_id, None, rng.randint(1, 3))
        elif action == "reread":
            top = (await store.room("walk")).last_seq  # type: ignore[union-attr]
            await store.claim(who.participant_id, rng.randint(0, top), rng.randint(1, 3))
        elif action == "presence":
            await store.disconnect([who.participant_id])
            await store.touch({who.participant_id: time.time()})
        else:
            assert (await store.prune("2000-01-01T00:00:00.040Z", None)).messages > 0
        for p in people:
            assert await store.unread(p.participant_id) == await unread_by_reading(store, p), (
                step,
                action,
                p.display_name,
            )


# -- one room, against `reading`, `presence` and `rooms` ---------------------------------------


@dataclasses.dataclass
class RoomModel:
    """What the store should hold for one room, kept by the pure rules alone."""

    room: Room
    log: list[Message] = dataclasses.field(default_factory=list)
    people: dict[str, Participant] = dataclasses.field(default_factory=dict)  # in joining order
    keys: dict[tuple[str, str], Message] = dataclasses.field(default_factory=dict)

    def logged(self, draft: Draft) -> Message:
        message = Message.from_draft(self.room.room_id, self.room.last_seq + 1, draft)
        self.log.append(message)
        self.room = dataclasses.replace(self.room, last_seq=message.seq)
        return message

    def mark(self, p: Participant, kind: Kind) -> Message:
        """A presence mark, as `presence.mark` makes it: logged, and the flag set."""
        draft, self.people[p.participant_id] = presence.mark(p, kind)
        return self.logged(draft)

    def seated_but(self, participant_id: str | None = None) -> int:
        return rooms.seated(p for p in self.people.values() if p.participant_id != participant_id)

    def unread(self, p: Participant) -> int:
        return reading.unread(self.log, p.participant_id, self.people[p.participant_id].cursor)


def shown(found: list[Message]) -> list[tuple[int, str, Kind, str]]:
    return [(m.seq, m.sender_id, m.kind, m.text) for m in found]


async def test_a_random_walk_in_one_room_follows_the_pure_rules(store: Store) -> None:
    """Joins (some refused), sends (some retried, some by members marked gone), claims (from
    the read position or elsewhere, bounded by a limit and `through`), peeks, disconnections,
    signs of life and sweeps: every answer is what `reading`, `presence` and `rooms` say of a
    model of the room, and the read positions and gone flags stay those of the model."""
    rng = random.Random(20)
    seen: Counter[str] = Counter()  # outcomes, so that the walk is known to reach each
    clock = 1_000.0
    model = RoomModel(Room("walk", 4, "", 0, False))

    async def join(name: str) -> None:
        p = dataclasses.replace(person("walk", name), last_seen=clock)
        event = messages.event_draft(Kind.JOINED, p)
        try:
            rooms.check_join(model.room, model.seated_but(), None)
        except ChatError:
            with pytest.raises(ChatError) as refused:
                await store.join("walk", 4, p, event)
            assert refused.value.code is Code.ROOM_FULL
            seen["room full"] += 1
            return
        joined = await store.join("walk", 4, p, event)
        model.logged(event)
        model.people[p.participant_id] = joined.participant
        assert joined.participant.cursor == 0 and joined.room.last_seq == model.room.last_seq

    for name in "ABC":
        await join(name)
    keys = iter(range(1_000))
    for step in range(250):
        clock += 1
        who = model.people[rng.choice(list(model.people))]
        pid = who.participant_id
        action = rng.choice(
            ["send"] * 4
            + ["retry", "claim", "claim", "reread", "peek", "unread"]
            + ["touch", "touch", "touch", "disconnect", "sweep", "join"]
        )
        where = (step, action, who.display_name)
        if action == "join" and len(model.people) < 7:
            await join(f"N{step}")
        elif action in ("send", "retry"):
            key = f"k{next(keys) if action == 'send' else rng.randrange(4)}"
            draft = text(who, f"s{step}", key=key)
            first = model.keys.get((pid, key))
            if first is None and who.gone:
                with pytest.raises(Unseated):
                    await store.append(pid, draft)
                seen["unseated send"] += 1
                continue
            sent = await store.append(pid, draft)
            if first is not None:
                assert sent.duplicate and shown([sent.message]) == shown([first]), where
                seen["duplicate"] += 1
            else:
                assert not sent.duplicate and sent.message == model.logged(draft), where
                model.keys[(pid, key)] = sent.message
                seen["sent"] += 1
            assert sent.unread == model.unread(who), where
        elif action in ("claim", "reread"):
            after = None if action == "claim" else rng.randint(-1, model.room.last_seq + 1)
            limit = rng.randint(1, 4)
            through = rng.choice([None, None, rng.randint(0, model.room.last_seq + 1)])
            if who.gone:
                with pytest.raises(Unseated):
                    await store.claim(pid, after, limit, through)
                seen["unseated claim"] += 1
                continue
            expected = reading.read(
                model.log, pid, who.cursor, after, limit, model.room.last_seq, through
            )
            claim = await store.claim(pid, after, limit, through)
            assert shown(claim.messages) == shown(expected.messages), where
            assert (claim.cursor, claim.has_more) == (expected.cursor, expected.has_more), where
            model.people[pid] = dataclasses.replace(who, cursor=expected.cursor)
            seen["short claim" if claim.has_more else "claim"] += 1
        elif action == "peek":
            limit = rng.randint(1, 4)
            expected = reading.read(model.log, pid, who.cursor, None, limit, model.room.last_seq)
            peeked = await store.peek(pid, None, limit)
            assert shown(peeked.messages) == shown(expected.messages), where
            assert (peeked.cursor, peeked.has_more) == (who.cursor, expected.has_more), where
        elif action == "unread":
            assert await store.unread(pid) == model.unread(who), where
        elif action == "disconnect":
            events = await store.disconnect([pid])
            goes = presence.goes(who, model.room)
            assert shown(events) == shown([model.mark(who, Kind.DISCONNECTED)] if goes else []), (
                where
            )
            seen["disconnected"] += len(events)
        elif action == "touch":
            events = await store.touch({pid: clock})
            who = model.people[pid] = presence.seen(who, clock)
            back = rooms.may_come_back(model.room, who) and model.seated_but(pid) < 4
            assert shown(events) == shown([model.mark(who, Kind.RETURNED)] if back else []), where
            seen["returned"] += len(events)
        elif action == "sweep":
            gone_after = rng.choice([10.0, 30.0, 60.0])
            cutoff = presence.silent_since(clock, gone_after)
            due = {p for p, m in model.people.items() if presence.goes(m, model.room, cutoff)}
            events = await store.sweep(clock, gone_after, 30.0)
            # Each store marks the silent in an order of its own: the set is the rule's.
            assert {m.sender_id for m in events} == due, where
            for event in events:
                marked = model.mark(model.people[event.sender_id], Kind.DISCONNECTED)
                assert shown([event]) == shown([marked]), where
                seen["swept"] += 1
        stored = {p.participant_id: (p.cursor, p.gone) for p in await store.members("walk")}
        assert stored == {p: (m.cursor, m.gone) for p, m in model.people.items()}, where
    assert len(seen) == 10, seen


# -- the queue, against `matching` -----------------------------------------------------------


async def test_a_random_walk_in_the_queue_follows_the_pairing_steps(store: Store) -> None:
    """Entrants with and without interests, retries, positions, departures, signs of life and
    sweeps of the silent: every pair made, every position and every removal is the one the
    pairing steps of `matching` choose among the entries waiting in a model of the queue."""
    rng = random.Random(21)
    policy = MatchPolicy(fallback_after=6, stale_after=9)
    waiting: list[QueueEntry] = []  # oldest first
    known: list[str] = []
    pairs = 0
    now = 5_000.0
    for step in range(200):
        now += 1
        action = rng.choice(["enter", "enter", "retry", "position", "leave", "touch", "sweep"])
        where = (step, action)
        if action == "enter":
            tags = rng.choice([(), (), ("chess",), ("go",), ("chess", "go")])
            entry = QueueEntry(f"q-{step}", f"h-{step}", f"E{step}", tags, now, now)
            known.append(entry.entry_id)
            expected = matching.on_entering(entry, waiting, now, policy)
            matched = await store.enqueue(entry, now, policy)
            if expected is None:
                assert matched is None, where
                waiting.append(entry)
            else:
                assert matched is not None, where
                ids = (matched.first.participant_id, matched.second.participant_id)
                assert ids == (expected[0].entry_id, entry.entry_id), where
                waiting.remove(expected[0])
                pairs += 1
        elif action == "retry" and waiting:
            entry = rng.choice(waiting)
            expected = matching.on_retry(entry.entry_id, waiting, now, policy)
            matched = await store.rematch(entry.entry_id, now, policy)
            if expected is None:
                assert matched is None, where
            else:
                assert matched is not None, where
                ids = (matched.first.participant_id, matched.second.participant_id)
                assert ids == tuple(e.entry_id for e in expected), where
                for e in expected:
                    waiting.remove(e)
                pairs += 1
        elif action == "position" and known:
            entry_id = rng.choice(known)
            assert await store.queue_position(entry_id) == matching.position(entry_id, waiting)
        elif action == "leave" and known:
            entry_id = rng.choice(known)
            expected_gone = [e for e in waiting if e.entry_id == entry_id]
            assert await store.leave_queue(entry_id) is bool(expected_gone), where
            for e in expected_gone:
                waiting.remove(e)
        elif action == "touch" and waiting:
            entry = rng.choice(waiting)
            assert await store.touch({entry.entry_id: now}) == [], where
            waiting[waiting.index(entry)] = dataclasses.replace(entry, last_seen=now)
        elif action == "sweep":
            cutoff = presence.silent_since(now, policy.stale_after)
            assert await store.sweep(now, 1e9, policy.stale_after) == [], where
            waiting = [e for e in waiting if not matching.stale(e, cutoff)]
        for entry in waiting:
            found = await store.queue_entry(entry.secret_hash)
            assert found is not None and found.room_id is None, where
    assert pairs > 10


# -- every backend alike ----------------------------------------------------------------------


def comparable(found: object) -> object:
    """An answer, without what each store makes up for itself: the ids and times of the events
    it writes, the suffix of an archived room's id, a pair's room id, last_seen."""
    if dataclasses.is_dataclass(found) and not isinstance(found, type):
        return (type(found).__name__, comparable(dataclasses.asdict(found)))
    if isinstance(found, dict):
        left_out = {"last_seen", "created_at", "joined_at", "message_id", "timestamp"}
        return {k: comparable(v) for k, v in found.items() if k not in left_out}
    if isinstance(found, list | tuple):
        return [comparable(item) for item in found]
    if isinstance(found, str):
        return re.sub(r"pair-[\w-]+", "pair-…", re.sub(r"~[0-9a-f]+", "~…", found))
    return found


OPERATIONS = [
    "join",
    "join",
    "send",
    "send",
    "send",
    "keyed",
    "claim",
    "peek",
    "unread",
    "history",
    "leave",
    "disconnect",
    "touch",
    "come_back",
    "members",
    "rooms",
    "counts",
    "room",
    "participant",
    "enter",
    "enter",
    "retry",
    "position",
    "leave_queue",
    "queue_entry",
]


async def test_every_backend_answers_a_random_walk_as_the_others_do(
    tmp_path: Path, redis_url: str, redis_cluster_url: str
) -> None:
    """Several rooms (some ended and started anew), the queue, and every operation but the
    sweep (whose marks each store may write in its own order): memory, SQLite, Redis and a
    Redis Cluster, fed the same calls, give the same answers and refuse with the same codes."""
    urls = ["memory://", f"sqlite:///{tmp_path / 'alike.db'}", redis_url, redis_cluster_url]
    stores = [open_store(url) for url in urls]
    for s in stores:
        await s.start(lambda _: None)
    rng = random.Random(22)
    policy = MatchPolicy(fallback_after=5, stale_after=8)
    people: list[Participant] = []
    entries: list[QueueEntry] = []
    clock = 1_000.0

    async def answer(store: Store, name: str, args: tuple[Any, ...]) -> object:
        try:
            return comparable(await getattr(store, name)(*args))
        except ChatError as refused:
            return ("refused", refused.code, comparable(str(refused)))
        except Unseated:
            return "unseated"

    try:
        for step in range(300):
            clock += 1
            some = rng.choice(people) if people else None
            room_id = rng.choice(["r1", "r2"])
            ids = [some.participant_id] if some else []
            ids += [e.entry_id for e in entries[-2:]]
            op = rng.choice(OPERATIONS)
            if op == "join" or some is None:
                p = dataclasses.replace(person(room_id, f"P{step}"), last_seen=clock)
                call: tuple[Any, ...] = (
                    "join",
                    room_id,
                    rng.choice([2, 3]),
                    p,
                    messages.event_draft(Kind.JOINED, p),
                )
            elif op == "send":
                key = rng.choice([None, f"k{rng.randrange(3)}"])
                call = ("append", some.participant_id, text(some, f"s{step}", key=key))
            elif op == "keyed":
                call = ("keyed", some.participant_id, f"k{rng.randrange(3)}")
            elif op in ("claim", "peek"):
                after = rng.choice([None, rng.randint(-1, 20)])
                call = (op, some.participant_id, after, rng.randint(1, 3))
                if op == "claim":
                    call += (rng.choice([None, rng.randint(0, 20)]),)
            elif op == "history":
                after, before = rng.choice([None, rng.randint(0, 10)]), rng.randint(0, 20)
                call = ("history", room_id, after, rng.choice([None, before]), rng.randint(1, 5))
            elif op == "leave":
                call = ("leave", some.participant_id, messages.event_draft(Kind.LEFT, some))
            elif op == "disconnect":
                call = ("disconnect", [rng.choice(ids)])
            elif op == "touch":
                call = ("touch", {rng.choice(ids): clock})
            elif op == "enter":
                tags = rng.choice([(), ("a",), ("b",)])
                entry = QueueEntry(f"q-{step}", f"h-{step}", f"Q{step}", tags, clock, clock)
                entries.append(entry)
                call = ("enqueue", entry, clock, policy)
            elif op in ("retry", "position", "leave_queue", "queue_entry") and entries:
                entry = rng.choice(entries)
                call = {
                    "retry": ("rematch", entry.entry_id, clock, policy),
                    "position": ("queue_position", entry.entry_id),
                    "leave_queue": ("leave_queue", entry.entry_id),
                    "queue_entry": ("queue_entry", entry.secret_hash),
                }[op]
            else:
                call = {
                    "come_back": ("come_back", some.participant_id),
                    "members": ("members", room_id),
                    "rooms": ("rooms", 10),
                    "room": ("room", room_id),
                    "participant": ("participant", some.secret_hash),
                }.get(op, ("counts",))
            answers = [await answer(store, call[0], call[1:]) for store in stores]
            assert answers[0] == answers[1] == answers[2], (step, call[0], answers)
            if call[0] == "join" and isinstance(answers[0], tuple) and answers[0][0] == "Joined":
                people.append(call[3])
    finally:
        for s in stores:
            await s.close()
