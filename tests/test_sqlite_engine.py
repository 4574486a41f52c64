"""Group commit on the SQLite store's event-loop connection: the first operation of a turn of
the loop commits at once; the ones after it in the same turn share one transaction, each in
its own savepoint, and learn their outcome only once that transaction is committed."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mcp_chat import messages
from mcp_chat.errors import ChatError, Code
from mcp_chat.stores.sqlite import SQLiteStore
from mcp_chat.types import Appended, Kind
from tests.stores_support import enter, person, text

pytestmark = pytest.mark.anyio

JOINED = "A joined the room."


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(path)
    await store.start(lambda _: None)
    try:
        yield store
    finally:
        await store.close()


def inline(store: SQLiteStore) -> sqlite3.Connection:
    """The connection the store runs operations on, on the event loop."""
    db = store._inline
    assert db is not None
    return db


def traced(store: SQLiteStore) -> list[str]:
    """Every statement the store's event-loop connection runs from now on."""
    statements: list[str] = []
    inline(store).set_trace_callback(statements.append)
    return statements


async def texts(store: SQLiteStore, room_id: str) -> list[tuple[int, str]]:
    log = await store.history(room_id, after=0, before=None, limit=1000)
    return [(m.seq, m.text) for m in log]


async def test_a_lone_caller_commits_at_once_without_waiting_a_turn(tmp_path: Path) -> None:
    async with opened(tmp_path / "chat.db") as store:
        a = await enter(store, "r", "A")
        turns: list[int] = []
        asyncio.get_running_loop().call_soon(turns.append, 1)
        statements = traced(store)
        sent = await store.append(a.participant_id, text(a, "hello"))
        again = await store.append(a.participant_id, text(a, "again"))
        assert turns == []  # both answered within this turn of the loop
        assert statements.count("COMMIT") == 2 and statements[-1] == "COMMIT"
        assert not inline(store).in_transaction
        assert (sent.message.seq, again.message.seq) == (2, 3)


async def test_appends_issued_in_one_turn_share_one_commit(tmp_path: Path) -> None:
    async with opened(tmp_path / "chat.db") as store:
        a = await enter(store, "r", "A")
        statements = traced(store)
        results = await asyncio.gather(
            *(store.append(a.participant_id, text(a, f"m{i}")) for i in range(50))
        )
        # The first commits alone; the other 49 share one transaction.
        assert statements.count("BEGIN IMMEDIATE") == 2
        assert statements.count("COMMIT") == 2
        assert [r.message.seq for r in results] == list(range(2, 52))
        assert await texts(store, "r") == [(1, JOINED)] + [(i + 2, f"m{i}") for i in range(50)]


async def test_a_failing_operation_fails_alone_and_the_rest_of_its_batch_is_committed(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path / "chat.db") as store:
        a = await enter(store, "r", "A", capacity=4)
        await enter(store, "r", "B", capacity=4)
        c = await enter(store, "r", "C", capacity=4)
        await store.leave(c.participant_id, messages.event_draft(Kind.LEFT, c))  # seq 4
        twice = person("r", "Twice")
        joined = messages.event_draft(Kind.JOINED, twice)
        statements = traced(store)
        outcomes = await asyncio.gather(
            *(store.append(a.participant_id, text(a, f"m{i}")) for i in range(5)),
            store.append("p-nobody", text(a, "who am I?")),
            store.append(c.participant_id, text(c, "I left")),
            store.join("r", 4, twice, joined),
            # Refused only after its 'joined' message was written: that write is undone.
            store.join("r", 4, twice, joined),
            *(store.append(a.participant_id, text(a, f"n{i}")) for i in range(5)),
            return_exceptions=True,
        )
        assert statements.count("COMMIT") == 2  # m0 alone, then all the others
        unknown, left, _, again = outcomes[5:9]
        assert isinstance(unknown, ChatError) and unknown.code is Code.UNKNOWN_CLIENT
        assert isinstance(left, ChatError) and left.code is Code.NOT_IN_ROOM
        assert isinstance(again, sqlite3.IntegrityError)
        fine = outcomes[:5] + outcomes[7:8] + outcomes[9:]
        assert not any(isinstance(o, BaseException) for o in fine)
        log = await texts(store, "r")
        assert [seq for seq, _ in log] == list(range(1, 16))
        assert [t for _, t in log[4:]] == [
            *(f"m{i}" for i in range(5)),
            "Twice joined the room.",
            *(f"n{i}" for i in range(5)),
        ]


async def test_when_the_commit_fails_every_operation_of_the_batch_fails(tmp_path: Path) -> None:
    """A deferred foreign key is checked at COMMIT: the message 'poison' leaves a dangling
    reference behind (through a trigger), so every statement succeeds and the COMMIT fails.
    Nobody has been told of success before, and nothing of the batch stays."""
    async with opened(tmp_path / "chat.db") as store:
        a = await enter(store, "r", "A")
        db = inline(store)
        db.executescript(
            """
            CREATE TABLE audit_parent (id INTEGER PRIMARY KEY);
            CREATE TABLE audit (parent INTEGER REFERENCES audit_parent (id)
                                DEFERRABLE INITIALLY DEFERRED);
            CREATE TRIGGER audit_poison AFTER INSERT ON messages WHEN NEW.body = 'poison'
            BEGIN INSERT INTO audit VALUES (1); END;
            """
        )
        db.execute("PRAGMA foreign_keys = ON")
        outcomes = await asyncio.gather(
            *(store.append(a.participant_id, text(a, f"m{i}")) for i in range(3)),
            store.append(a.participant_id, text(a, "poison")),
            *(store.append(a.participant_id, text(a, f"n{i}")) for i in range(3)),
            return_exceptions=True,
        )
        first, *batch = outcomes
        assert isinstance(first, Appended)  # it went first, alone
        assert all(isinstance(o, sqlite3.IntegrityError) for o in batch), outcomes
        assert await texts(store, "r") == [(1, JOINED), (2, "m0")]
        after = await store.append(a.participant_id, text(a, "after"))
        assert after.message.seq == 3


async def test_an_interrupted_commit_answers_store_unavailable_to_the_whole_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's progress handler interrupts the COMMIT statement, which leaves the transaction
    open: the store rolls it back and tells every operation of the batch to try again. The
    log says why, once, and once more when calls succeed again."""
    caplog.set_level(logging.INFO, logger="mcp_chat.stores.sqlite")
    async with opened(tmp_path / "chat.db") as store:
        a = await enter(store, "r", "A")
        db = inline(store)
        statements = traced(store)
        # Interrupt the batch's COMMIT (the first append commits alone, before it).
        batch_commit = ["RELEASE operation", "COMMIT"]
        db.set_progress_handler(lambda: int(statements[-2:] == batch_commit), 1)
        outcomes = await asyncio.gather(
            *(store.append(a.participant_id, text(a, f"m{i}")) for i in range(5)),
            return_exceptions=True,
        )
        db.set_progress_handler(None, 1)
        assert statements.count("COMMIT") == 2
        assert isinstance(outcomes[0], Appended)
        for outcome in outcomes[1:]:
            assert isinstance(outcome, ChatError) and outcome.code is Code.STORE_UNAVAILABLE
        failing = [r for r in caplog.records if r.getMessage().startswith("SQLite calls failing")]
        assert len(failing) == 1 and "interrupted" in failing[0].getMessage()
        assert await texts(store, "r") == [(1, JOINED), (2, "m0")]
        assert (await store.append(a.participant_id, text(a, "again"))).message.seq == 3
        assert [r.getMessage() for r in caplog.records].count("SQLite calls succeed again") == 1


async def test_a_caller_cancelled_while_awaiting_the_commit_leaves_the_batch_whole(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path / "chat.db") as store:
        a = await enter(store, "r", "A")
        sends = [
            asyncio.create_task(store.append(a.participant_id, text(a, f"m{i}"))) for i in range(5)
        ]
        await asyncio.sleep(0)  # one turn: each has run its operation; four await the commit
        assert inline(store).in_transaction
        sends[2].cancel()
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        assert isinstance(outcomes[2], asyncio.CancelledError)
        assert [o.message.seq for o in outcomes if isinstance(o, Appended)] == [2, 3, 5, 6]
        # What the cancelled caller did stands, like everything else in its batch.
        assert await texts(store, "r") == [(1, JOINED)] + [(i + 2, f"m{i}") for i in range(5)]


async def test_close_commits_an_open_batch(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with opened(path) as store:
        a = await enter(store, "r", "A")
        sends = [
            asyncio.create_task(store.append(a.participant_id, text(a, f"m{i}"))) for i in range(5)
        ]
        await asyncio.sleep(0)  # one turn: each has run its operation; four await the commit
        assert inline(store).in_transaction
    # Closed: the batch was committed first, and its callers told so.
    async with asyncio.timeout(10):  # (not for timing: a lost batch would leave them waiting)
        outcomes = await asyncio.gather(*sends)
    assert [o.message.seq for o in outcomes] == [2, 3, 4, 5, 6]
    async with opened(path) as again:
        assert await texts(again, "r") == [(1, JOINED)] + [(i + 2, f"m{i}") for i in range(5)]


async def test_operations_committed_after_the_file_was_deleted_answer_store_unavailable(
    tmp_path: Path,
) -> None:
    """Whichever way an operation is committed (alone, in a batch on the loop's connection,
    or on the worker's while another process holds the write lock), if the file was deleted
    meanwhile, its caller is not told that anything was kept."""
    path = tmp_path / "chat.db"
    async with opened(path) as store:
        a = await enter(store, "r", "A")
        # A batch: the first append commits alone; the others wait for the batch's commit.
        sends = [
            asyncio.create_task(store.append(a.participant_id, text(a, f"m{i}"))) for i in range(4)
        ]
        await asyncio.sleep(0)  # one turn: each has run its operation
        assert inline(store).in_transaction
        path.unlink()
        first, *batch = await asyncio.gather(*sends, return_exceptions=True)
        assert isinstance(first, Appended)  # committed before the file went
        for outcome in batch:
            assert isinstance(outcome, ChatError) and outcome.code is Code.STORE_UNAVAILABLE
        # From then on, every operation, reads too.
        with pytest.raises(ChatError) as read:
            await store.history("r", after=0, before=None, limit=10)
        assert read.value.code is Code.STORE_UNAVAILABLE


async def test_an_operation_on_the_worker_after_the_file_was_deleted_fails(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    async with opened(path) as store:
        a = await enter(store, "r", "A")
        other = sqlite3.connect(path, isolation_level=None)  # another process, as it were
        other.execute("BEGIN IMMEDIATE")
        send = asyncio.create_task(store.append(a.participant_id, text(a, "m")))
        await asyncio.sleep(0)  # it found the lock taken and went to the worker, which waits
        path.unlink()
        other.execute("COMMIT")
        other.close()
        with pytest.raises(ChatError) as refused:
            await send
        assert refused.value.code is Code.STORE_UNAVAILABLE
