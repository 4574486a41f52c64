"""The store contract, run against every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
from pathlib import Path

import pytest

from mcp_chat import credentials, messages
from mcp_chat.errors import ChatError, Code
from mcp_chat.stores import Store, open_store
from mcp_chat.stores.base import Unseated
from mcp_chat.stores.sqlite import SQLiteStore
from mcp_chat.types import Counts, Draft, Kind, Message, Participant, Pruned

pytestmark = pytest.mark.anyio


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


async def test_sequence_numbers_are_gapless_under_concurrent_appends(store: Store) -> None:
    a = await enter(store, "r", "A", capacity=3)
    b = await enter(store, "r", "B", capacity=3)
    results = await asyncio.gather(
        *(store.append(who.participant_id, text(who, f"m{i}")) for i in range(50) for who in (a, b))
    )
    seqs = sorted(r.message.seq for r in results)
    assert seqs == list(range(3, 103))  # 1 and 2 are the two 'joined' events
    log = await store.history("r", after=0, before=None, limit=500)
    assert [m.seq for m in log] == list(range(1, 103))


async def test_capacity_holds_when_many_join_at_once(store: Store) -> None:
    attempts = [person("duo", f"P{i}") for i in range(8)]
    outcomes = await asyncio.gather(
        *(store.join("duo", 2, p, messages.event_draft(Kind.JOINED, p)) for p in attempts),
        return_exceptions=True,
    )
    joined = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ChatError)]
    assert len(joined) == 2 and len(refused) == 6
    assert all(e.code is Code.ROOM_FULL for e in refused)
    assert len(await store.members("duo")) == 2


async def test_concurrent_claims_never_return_one_message_twice(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(20):
        await store.append(a.participant_id, text(a, f"m{i}"))
    claims = await asyncio.gather(*(store.claim(b.participant_id, None, 3) for _ in range(10)))
    seen = [m.text for c in claims for m in c.messages]
    joined_event = [m for c in claims for m in c.messages if m.kind is Kind.JOINED]
    assert len(joined_event) == 1
    assert sorted(t for t in seen if t.startswith("m")) == sorted(f"m{i}" for i in range(20))
    assert len(seen) == len(set(seen))


async def test_claim_skips_own_messages_and_moves_past_them(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    await store.append(a.participant_id, text(a, "from a"))
    first = await store.claim(a.participant_id, None, 10)
    assert [m.kind for m in first.messages] == [Kind.JOINED]  # B's arrival, not A's own
    assert first.cursor == 3
    assert (await store.claim(a.participant_id, None, 10)).messages == []
    assert await store.unread(b.participant_id) == 2


async def test_claim_after_rereads_from_an_explicit_position(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(3):
        await store.append(a.participant_id, text(a, f"m{i}"))
    everything = await store.claim(b.participant_id, None, 10)
    assert [m.text for m in everything.messages][-3:] == ["m0", "m1", "m2"]
    again = await store.claim(b.participant_id, 3, 10)
    assert [m.text for m in again.messages] == ["m1", "m2"]
    beyond = await store.claim(b.participant_id, 10_000, 10)
    assert beyond.messages == [] and beyond.cursor == 5


async def test_batches_are_bounded_and_say_more_remains(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(7):
        await store.append(a.participant_id, text(a, f"m{i}"))
    first = await store.claim(b.participant_id, None, 4)
    second = await store.claim(b.participant_id, None, 4)
    assert len(first.messages) == 4 and first.has_more
    assert len(second.messages) == 4 and not second.has_more
    # B's own 'joined' (seq 2) is skipped; everything else arrives once, in order.
    assert [m.seq for m in first.messages + second.messages] == [1, *range(3, 10)]


async def test_a_retried_key_returns_the_first_message(store: Store) -> None:
    a = await enter(store, "r", "A")
    first = await store.append(a.participant_id, text(a, "hello", key="k1"))
    again = await store.append(a.participant_id, text(a, "hello", key="k1"))
    other = await store.append(a.participant_id, text(a, "hello", key="k2"))
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.message == first.message
    assert len(await store.history("r", after=0, before=None, limit=10)) == 3


async def test_an_append_counts_what_its_sender_has_not_read(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")  # each has the other's arrival unread
    assert (await store.append(b.participant_id, text(b, "one"))).unread == 1
    assert (await store.append(b.participant_id, text(b, "two", key="k"))).unread == 1
    sent = await store.append(a.participant_id, text(a, "hi"))  # B's arrival, "one", "two"
    assert sent.unread == 3 == await store.unread(a.participant_id)
    await store.claim(b.participant_id, None, 10)
    await store.append(a.participant_id, text(a, "and you?"))
    retried = await store.append(b.participant_id, text(b, "two", key="k"))
    assert retried.duplicate and retried.unread == 1
    await store.append(a.participant_id, text(a, "still there?"))
    retried = await store.append(b.participant_id, text(b, "two", key="k"))
    assert retried.duplicate and retried.unread == 2 == await store.unread(b.participant_id)


async def test_leaving_a_pair_ends_it_and_a_group_lives_on(store: Store) -> None:
    a = await enter(store, "pair", "A")
    await enter(store, "pair", "B")
    left = await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert left.room_ended
    with pytest.raises(ChatError) as gone:
        await store.append(a.participant_id, text(a, "still here?"))
    assert gone.value.code is Code.NOT_IN_ROOM

    g1 = await enter(store, "group", "G1", capacity=3)
    g2 = await enter(store, "group", "G2", capacity=3)
    assert not (
        await store.leave(g1.participant_id, messages.event_draft(Kind.LEFT, g1))
    ).room_ended
    await store.append(g2.participant_id, text(g2, "anyone?"))
    assert (await store.leave(g2.participant_id, messages.event_draft(Kind.LEFT, g2))).room_ended


async def test_history_pages_backwards_and_forwards(store: Store) -> None:
    a = await enter(store, "r", "A")
    for i in range(9):
        await store.append(a.participant_id, text(a, f"m{i}"))
    newest = await store.history("r", after=None, before=None, limit=4)
    assert [m.seq for m in newest] == [7, 8, 9, 10]
    older = await store.history("r", after=None, before=7, limit=4)
    assert [m.seq for m in older] == [3, 4, 5, 6]
    forward = await store.history("r", after=8, before=None, limit=4)
    assert [m.seq for m in forward] == [9, 10]


async def test_rooms_lists_open_rooms_only(store: Store) -> None:
    a = await enter(store, "one", "A")
    await enter(store, "two", "B", capacity=4)
    await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    listed = await store.rooms(limit=10)
    assert [(r.room_id, r.members, r.capacity) for r in listed] == [("two", 1, 4)]


async def test_sqlite_keeps_everything_across_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    first = open_store(url)
    await first.start(lambda _: None)
    a = await enter(first, "r", "A")
    b = await enter(first, "r", "B")
    await first.append(a.participant_id, text(a, "persist me"))
    await first.claim(b.participant_id, None, 1)  # B has read A's 'joined' (seq 1)
    await first.close()

    second = open_store(url)
    await second.start(lambda _: None)
    try:
        again = await second.participant(b.secret_hash)
        assert again is not None and again.cursor == 1
        rest = await second.claim(b.participant_id, None, 10)
        assert [m.text for m in rest.messages] == ["persist me"]
    finally:
        await second.close()


async def test_sqlite_processes_wake_each_other_on_change(tmp_path: Path) -> None:
    """Two stores on one file stand for two processes: a change made through one is announced
    to the other's listener (by datagram, not by polling)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    changed: asyncio.Queue[str] = asyncio.Queue()
    listener, writer = open_store(url), open_store(url)
    await listener.start(changed.put_nowait)
    await writer.start(lambda _: None)
    try:
        a = await enter(writer, "shared-room", "A")
        assert await changed.get() == "shared-room"
        await writer.append(a.participant_id, text(a, "hello"))
        assert await changed.get() == "shared-room"
    finally:
        await writer.close()
        await listener.close()


def at(draft: Draft, when: str) -> Draft:
    return dataclasses.replace(draft, timestamp=when)


DAY1, DAY2, DAY3, DAY4 = (f"2026-01-0{d}T12:00:00.000Z" for d in (1, 2, 3, 4))


async def enter_at(
    store: Store, room_id: str, name: str, when: str, capacity: int = 3
) -> Participant:
    p = person(room_id, name)
    joined = await store.join(room_id, capacity, p, at(messages.event_draft(Kind.JOINED, p), when))
    return joined.participant


async def test_counts_open_rooms_and_their_members(store: Store) -> None:
    assert await store.counts() == Counts(0, 0)
    a = await enter(store, "pair", "A")
    await enter(store, "pair", "B")
    await enter(store, "group", "C", capacity=4)
    await store.append(a.participant_id, text(a, "hi"))
    assert await store.counts() == Counts(rooms=2, participants=3)
    await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))  # ends the pair
    assert await store.counts() == Counts(rooms=1, participants=1)


async def test_prune_removes_old_messages_but_keeps_each_rooms_newest(store: Store) -> None:
    a = await enter_at(store, "r", "A", DAY1)
    b = await enter_at(store, "r", "B", DAY1)
    for when in (DAY1, DAY2, DAY3):
        await store.append(a.participant_id, at(text(a, f"said {when}"), when))
    quiet = await enter_at(store, "quiet", "Q", DAY1)
    pruned = await store.prune(messages_before=DAY3, idle_before=None)
    # r loses its two joins and DAY1, DAY2 messages; quiet keeps its only (newest) message.
    assert pruned == Pruned(messages=4, rooms=0)
    assert [m.text for m in await store.history("r", 0, None, 10)] == [f"said {DAY3}"]
    assert len(await store.history("quiet", 0, None, 10)) == 1
    # Sequence numbers go on from where they were; reads past the gap work.
    sent = await store.append(b.participant_id, at(text(b, "later"), DAY4))
    assert sent.message.seq == 6
    claimed = await store.claim(b.participant_id, None, 10)
    assert [m.text for m in claimed.messages] == [f"said {DAY3}"]
    assert await store.participant(quiet.secret_hash) is not None


async def test_prune_removes_idle_rooms_with_their_people_and_messages(store: Store) -> None:
    old = await enter_at(store, "old", "Old", DAY1)
    await store.append(old.participant_id, at(text(old, "long ago"), DAY2))
    fresh = await enter_at(store, "fresh", "Fresh", DAY1)
    await store.append(fresh.participant_id, at(text(fresh, "just now"), DAY4))
    pruned = await store.prune(messages_before=None, idle_before=DAY3)
    assert pruned == Pruned(messages=2, rooms=1)
    assert await store.room("old") is None
    assert await store.participant(old.secret_hash) is None
    assert await store.history("old", 0, None, 10) == []
    assert await store.room("fresh") is not None
    assert await store.counts() == Counts(rooms=1, participants=1)
    assert len(await store.history("fresh", 0, None, 10)) == 2
    # The id of a removed room is free again.
    await enter(store, "old", "Newcomer")


async def test_prune_with_nothing_to_do_changes_nothing(store: Store) -> None:
    a = await enter_at(store, "r", "A", DAY3)
    await store.append(a.participant_id, at(text(a, "recent"), DAY4))
    assert await store.prune(messages_before=None, idle_before=None) == Pruned(0, 0)
    assert await store.prune(messages_before=DAY1, idle_before=DAY1) == Pruned(0, 0)
    assert await store.counts() == Counts(1, 1)
    assert len(await store.history("r", 0, None, 10)) == 2


async def test_the_last_sqlite_process_out_removes_its_wakeup_directory(tmp_path: Path) -> None:
    from mcp_chat.stores.sqlite.wakeups import rendezvous_dir

    db = tmp_path / "tidy.db"
    first, second = open_store(f"sqlite:///{db}"), open_store(f"sqlite:///{db}")
    await first.start(lambda _: None)
    await second.start(lambda _: None)
    await first.close()
    assert rendezvous_dir(db).is_dir()  # the second process still listens there
    await second.close()
    assert not rendezvous_dir(db).exists()


async def test_sqlite_undoes_a_failed_operation_alone_within_a_batch(tmp_path: Path) -> None:
    """Concurrent operations share one transaction; one that fails halfway (here: a duplicate
    participant, refused after its 'joined' message was written) leaves no trace, and the
    others are committed."""
    store = open_store(f"sqlite:///{tmp_path / 'batch.db'}")
    await store.start(lambda _: None)
    try:
        a = await enter(store, "r", "A", capacity=5)
        twice = person("r", "Twice")
        event = messages.event_draft(Kind.JOINED, twice)
        outcomes = await asyncio.gather(
            *(store.append(a.participant_id, text(a, f"m{i}")) for i in range(10)),
            store.join("r", 5, twice, event),
            store.join("r", 5, twice, event),
            *(store.append(a.participant_id, text(a, f"n{i}")) for i in range(10)),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failures) == 1
        log = await store.history("r", after=0, before=None, limit=100)
        assert [m.seq for m in log] == list(range(1, 23))
        assert sum(m.kind is Kind.JOINED and m.sender_name == "Twice" for m in log) == 1
    finally:
        await store.close()


async def test_a_process_that_starts_later_is_woken_too(tmp_path: Path) -> None:
    """The writer learns of new listeners although it already announced changes before."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    writer = open_store(url)
    await writer.start(lambda _: None)
    a = await enter(writer, "room", "A")  # announced to nobody: no other process yet
    changed: asyncio.Queue[str] = asyncio.Queue()
    late = open_store(url)
    await late.start(changed.put_nowait)
    try:
        await writer.append(a.participant_id, text(a, "hello, newcomer"))
        assert await changed.get() == "room"
    finally:
        await late.close()
        await writer.close()


async def unread_by_reading(store: Store, p: Participant) -> int:
    """What `unread` must say, worked out the slow way: the log past the read position."""
    now = await store.participant(p.secret_hash)
    assert now is not None
    past = await store.history(p.room_id, after=now.cursor, before=None, limit=100_000)
    return sum(m.sender_id != p.participant_id for m in past)


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


async def test_sqlite_work_per_send_does_not_grow_with_what_the_sender_has_not_read(
    tmp_path: Path,
) -> None:
    """An append says how much its sender has not read; working that out must not read the
    unread messages one by one, or a sender that never reads makes every send slower (it did:
    50 such senders brought the store from 28,000 appends a second to 750). Counted in SQLite
    VM steps, which do not depend on the machine's speed."""
    store = open_store(f"sqlite:///{tmp_path / 'steps.db'}")
    await store.start(lambda _: None)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    async def steps_of_a_send(p: Participant) -> int:
        nonlocal steps
        steps = 0
        assert isinstance(store, SQLiteStore)
        store.db.set_progress_handler(count, 1)
        try:
            await store.append(p.participant_id, text(p, "one more"))
            await store.unread(p.participant_id)
        finally:
            store.db.set_progress_handler(None, 1)
        return steps

    try:
        talker = await enter(store, "r", "Talker")
        quiet = await enter(store, "r", "Quiet")  # never reads
        for i in range(20):
            await store.append(talker.participant_id, text(talker, f"m{i}"))
        few = await steps_of_a_send(quiet)
        for i in range(2_000):
            await store.append(talker.participant_id, text(talker, f"n{i}"))
        many = await steps_of_a_send(quiet)
        assert (await store.append(quiet.participant_id, text(quiet, "?"))).unread == 2_021
        assert many < few * 2, (few, many)
    finally:
        await store.close()


async def test_sqlite_counts_unread_when_it_opens_a_database_of_the_previous_schema(
    tmp_path: Path,
) -> None:
    """Schema 2 kept no unread count; opening such a file counts it once for everyone."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    first = open_store(url)
    await first.start(lambda _: None)
    a = await enter(first, "r", "A")
    b = await enter(first, "r", "B")
    for i in range(5):
        await first.append(a.participant_id, text(a, f"m{i}"))
    await first.claim(b.participant_id, None, 2)
    await first.close()
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("ALTER TABLE participants DROP COLUMN settled")
        db.execute("ALTER TABLE messages DROP COLUMN mentions")  # schema 4's
        db.execute("PRAGMA user_version = 2")
    db.close()

    second = open_store(url)
    await second.start(lambda _: None)
    try:
        assert await second.unread(b.participant_id) == 4 == await unread_by_reading(second, b)
        assert await second.unread(a.participant_id) == 1  # B's arrival
    finally:
        await second.close()


async def test_a_peek_moves_nothing_and_says_where_the_read_position_is(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    for i in range(4):
        await store.append(a.participant_id, text(a, f"m{i}"))  # seqs 3..6
    await store.claim(b.participant_id, None, 2)  # A's 'joined' and m0
    peeked = await store.peek(b.participant_id, None, 2)
    assert [m.text for m in peeked.messages] == ["m1", "m2"] and peeked.has_more
    assert peeked.cursor == 3 and not peeked.ended
    further = await store.peek(b.participant_id, 4, 10)
    assert [m.text for m in further.messages] == ["m2", "m3"] and not further.has_more
    assert await store.unread(b.participant_id) == 3
    assert [m.text for m in (await store.claim(b.participant_id, None, 10)).messages] == [
        "m1",
        "m2",
        "m3",
    ]


async def test_a_claim_through_a_seq_takes_nothing_past_it(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    await store.append(b.participant_id, text(b, "own"))  # seq 3
    for i in range(4):
        await store.append(a.participant_id, text(a, f"m{i}"))  # seqs 4..7
    first = await store.claim(b.participant_id, None, 10, through=5)
    assert [m.seq for m in first.messages] == [1, 4, 5]
    assert first.cursor == 5 and not first.has_more
    assert await store.unread(b.participant_id) == 2
    behind = await store.claim(b.participant_id, None, 10, through=4)  # never moves back
    assert behind.messages == [] and behind.cursor == 5
    assert await store.unread(b.participant_id) == 2
    short = await store.claim(b.participant_id, None, 1, through=7)
    assert [m.seq for m in short.messages] == [6] and short.has_more
    assert await store.unread(b.participant_id) == 1
    reread = await store.claim(b.participant_id, 0, 10, through=4)  # from elsewhere
    assert [m.seq for m in reread.messages] == [1, 4] and reread.cursor == 4
    assert await store.unread(b.participant_id) == 3
    rest = await store.claim(b.participant_id, None, 10)
    assert [m.seq for m in rest.messages] == [5, 6, 7]
    assert await store.unread(b.participant_id) == 0


async def test_a_stored_message_keeps_whom_it_mentions(store: Store) -> None:
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")
    to_b = (b.participant_id,)
    sent = await store.append(a.participant_id, messages.text_draft(a, "@B hi", None, to_b))
    plain = await store.append(a.participant_id, text(a, "plain"))
    keyed = await store.append(a.participant_id, messages.text_draft(a, "@B k", "k", to_b))
    again = await store.append(a.participant_id, messages.text_draft(a, "@B k", "k", to_b))
    assert sent.message.mentions == to_b == keyed.message.mentions == again.message.mentions
    assert plain.message.mentions == ()

    def mentioned(found: list[Message]) -> dict[str, tuple[str, ...]]:
        return {m.text: m.mentions for m in found if m.kind is Kind.MESSAGE}

    expected = {"@B hi": to_b, "plain": (), "@B k": to_b}
    assert mentioned(await store.history("r", after=0, before=None, limit=10)) == expected
    assert mentioned((await store.peek(b.participant_id, None, 10)).messages) == expected
    assert mentioned((await store.claim(b.participant_id, None, 10)).messages) == expected
    stored = await store.keyed(a.participant_id, "k")
    assert stored is not None and stored.mentions == to_b


async def test_sqlite_opens_a_database_of_schema_3_whose_messages_mention_nobody(
    tmp_path: Path,
) -> None:
    """Schema 3 had no mentions column: its rows read as mentioning nobody, and new
    messages keep theirs."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    first = open_store(url)
    await first.start(lambda _: None)
    a = await enter(first, "r", "A")
    b = await enter(first, "r", "B")
    await first.append(a.participant_id, text(a, "@B from before"))
    await first.close()
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("ALTER TABLE messages DROP COLUMN mentions")
        db.execute("PRAGMA user_version = 3")
    db.close()

    second = open_store(url)
    await second.start(lambda _: None)
    try:
        old = await second.history("r", after=0, before=None, limit=10)
        assert [(m.text, m.mentions) for m in old][-1] == ("@B from before", ())
        new = messages.text_draft(a, "@B now", None, (b.participant_id,))
        await second.append(a.participant_id, new)
        claimed = await second.claim(b.participant_id, None, 10)
        assert [(m.text, m.mentions) for m in claimed.messages][-2:] == [
            ("@B from before", ()),
            ("@B now", (b.participant_id,)),
        ]
    finally:
        await second.close()
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    db.close()


async def test_a_leave_that_ends_a_pair_addresses_the_one_left_behind(store: Store) -> None:
    a = await enter(store, "duo", "A")
    b = await enter(store, "duo", "B")
    left = await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert left.room_ended and left.message.mentions == (b.participant_id,)
    logged = await store.history("duo", after=0, before=None, limit=10)
    assert logged[-1].mentions == (b.participant_id,)

    x = await enter(store, "group", "X", capacity=3)
    await enter(store, "group", "Y", capacity=3)
    lives_on = await store.leave(x.participant_id, messages.event_draft(Kind.LEFT, x))
    assert not lives_on.room_ended and lives_on.message.mentions == ()


async def test_a_gone_members_seat_is_free_and_it_comes_back_only_to_a_free_one(
    store: Store,
) -> None:
    a = await enter(store, "trio", "A", capacity=3)
    b = await enter(store, "trio", "B", capacity=3)
    c = await enter(store, "trio", "C", capacity=3)
    await store.disconnect([a.participant_id])
    d = await enter(store, "trio", "D", capacity=3)  # A's seat
    with pytest.raises(ChatError) as full:
        await enter(store, "trio", "E", capacity=3)
    assert full.value.code is Code.ROOM_FULL

    # A calls again: no free seat. Its calls are refused, and it stays gone.
    with pytest.raises(Unseated):
        await store.append(a.participant_id, text(a, "I'm back"))
    with pytest.raises(Unseated):
        await store.claim(a.participant_id, None, 10)
    with pytest.raises(ChatError) as refused:
        await store.come_back(a.participant_id)
    assert refused.value.code is Code.ROOM_FULL
    assert await store.touch({a.participant_id: time.time()}) == []
    assert [p.gone for p in await store.members("trio")] == [True, False, False, False]

    # A seat frees up: A takes it, and the room is told.
    await store.leave(d.participant_id, messages.event_draft(Kind.LEFT, d))
    back = await store.come_back(a.participant_id)
    assert back is not None and (back.kind, back.sender_id) == (Kind.RETURNED, a.participant_id)
    assert await store.come_back(a.participant_id) is None  # nothing more to do
    await store.append(a.participant_id, text(a, "I'm back"))
    got = await store.claim(b.participant_id, None, 10)
    assert [m.kind for m in got.messages][-3:] == [Kind.LEFT, Kind.RETURNED, Kind.MESSAGE]
    assert await store.touch({c.participant_id: time.time()}) == []


async def test_a_gone_member_comes_back_at_a_sign_of_life_only_to_a_free_seat(
    store: Store,
) -> None:
    a = await enter(store, "duo", "A")
    await enter(store, "duo", "B")
    await store.disconnect([a.participant_id])
    events = await store.touch({a.participant_id: time.time()})
    assert [(m.kind, m.sender_id) for m in events] == [(Kind.RETURNED, a.participant_id)]
    await store.disconnect([a.participant_id])
    await enter(store, "duo", "C")
    assert await store.touch({a.participant_id: time.time()}) == []  # C has the seat


async def test_a_pair_whose_members_are_gone_takes_two_newcomers(store: Store) -> None:
    a = await enter(store, "duo", "A")
    b = await enter(store, "duo", "B")
    await store.disconnect([a.participant_id, b.participant_id])
    assert [r.room_id for r in await store.rooms(limit=10)] == []  # nobody is there
    c = await enter(store, "duo", "C")
    listed = await store.rooms(limit=10)
    assert [(r.room_id, r.members, r.capacity) for r in listed] == [("duo", 1, 2)]
    d = await enter(store, "duo", "D")
    await store.append(c.participant_id, text(c, "hi D"))
    assert "hi D" in [m.text for m in (await store.claim(d.participant_id, None, 10)).messages]
    # A, gone and seatless, gives up its place: the pair of C and D goes on.
    left = await store.leave(a.participant_id, messages.event_draft(Kind.LEFT, a))
    assert not left.room_ended
    await store.append(d.participant_id, text(d, "still here"))
    # One of the pair leaves: it ends, as a pair does.
    assert (await store.leave(c.participant_id, messages.event_draft(Kind.LEFT, c))).room_ended


async def test_rooms_lists_only_rooms_with_someone_not_gone(store: Store) -> None:
    for i in range(12):  # more empty rooms than the page of the listing, all newer
        ghost = await enter(store, f"ghost-{i:02}", "G", capacity=3)
        await store.disconnect([ghost.participant_id])
    lively = await enter(store, "lively", "L", capacity=3)
    gone = await enter(store, "lively", "M", capacity=3)
    await store.disconnect([gone.participant_id])
    for i in range(12):
        ghost = await enter(store, f"later-{i:02}", "G", capacity=3)
        await store.disconnect([ghost.participant_id])
    listed = await store.rooms(limit=5)
    assert [(r.room_id, r.members) for r in listed] == [("lively", 1)]
    await store.leave(lively.participant_id, messages.event_draft(Kind.LEFT, lively))
    assert await store.rooms(limit=5) == []


async def test_a_short_claim_leaves_the_read_position_at_the_last_message_taken(
    store: Store,
) -> None:
    """When more remains, the read position stops at the last message taken, not past the
    reader's own messages after it (the memory store moved past them; SQLite and Redis did
    not: `reading.cursor_after`)."""
    a = await enter(store, "r", "A")
    b = await enter(store, "r", "B")  # seqs 1, 2
    await store.append(a.participant_id, text(a, "m0"))  # 3
    await store.append(b.participant_id, text(b, "own"))  # 4
    await store.append(a.participant_id, text(a, "m1"))  # 5
    short = await store.claim(b.participant_id, None, 2)
    assert [m.seq for m in short.messages] == [1, 3] and short.has_more
    assert short.cursor == 3
    assert (await store.peek(b.participant_id, None, 10)).cursor == 3
    assert (await store.participant(b.secret_hash)).cursor == 3  # type: ignore[union-attr]
    rest = await store.claim(b.participant_id, None, 2)
    assert [m.seq for m in rest.messages] == [5] and rest.cursor == 5
