"""The SQLite store (stores/sqlite/): what only it does. Durable across a reopen, processes
on one file woken by datagrams, schema upgrades, and its costs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mcp_chat import messages
from mcp_chat.stores import open_store
from mcp_chat.stores.sqlite import SQLiteStore
from mcp_chat.types import Kind, Participant
from tests.stores_support import enter, person, text, unread_by_reading

pytestmark = pytest.mark.anyio


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
