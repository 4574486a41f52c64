"""The embedded default store: one SQLite file, durable, shareable by processes on one machine.

An operation runs at once on the event loop's own connection when the database is free: a
few statements take microseconds, less than a hop to another thread. The operations of the
first task to use the store in a loop iteration each run in their own transaction and commit
at once, so a lone caller never waits. Other tasks' operations in the same iteration (a
burst) share one transaction whose commit runs in the next iteration (group commit): each
runs inside its own savepoint, so a failing one is undone alone, one commit (the bulk of the
cost) serves them all, and none learns its outcome before that commit.

That connection never waits for a lock (busy timeout 0) and never checkpoints: when another
process or the worker holds the write lock, or operations are already queued, the operation
goes to a worker thread with its own connection, which waits for locks, so the event loop
never blocks on one. Operations that queue up while the worker is busy are run together in
the same way, in one transaction with a savepoint each. The worker also checkpoints the
write-ahead log every few seconds.

A database file deleted (or replaced) under a running server would take everything written
since with it at the next start, while the open connections go on writing happily into the
unlinked file. So after each commit of an operation that wrote, and of each batch, the store
looks at the path (a stat: about 2 µs, against 60 or more for a lone append and its commit),
and from the moment the file there is not the one opened, every operation fails: the caller is
told store_unavailable instead of being told that its message is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from asyncio import current_task
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mcp_chat import errors, matching, mentions, presence, reading, rooms
from mcp_chat.errors import StartupError
from mcp_chat.matching import MatchPolicy
from mcp_chat.stores.base import ChangeListener, Outage, Store, Unseated
from mcp_chat.stores.wakeups import Waker
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

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room_id    TEXT PRIMARY KEY,
    capacity   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    ended      INTEGER NOT NULL DEFAULT 0,
    invite_hash TEXT
);
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    secret_hash    TEXT NOT NULL UNIQUE,
    cursor         INTEGER NOT NULL DEFAULT 0,
    joined_at      TEXT NOT NULL,
    left_room      INTEGER NOT NULL DEFAULT 0,
    joined_order   INTEGER NOT NULL,
    last_seen      REAL NOT NULL DEFAULT 0,
    gone           INTEGER NOT NULL DEFAULT 0,
    settled        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS participants_by_room ON participants (room_id, left_room);
CREATE TABLE IF NOT EXISTS messages (
    room_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    message_id  TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    msg_key     TEXT,
    mentions    TEXT,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_key
    ON messages (sender_id, msg_key) WHERE msg_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue (
    entry_id     TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    interests    TEXT NOT NULL,
    entered_at   REAL NOT NULL,
    last_seen    REAL NOT NULL,
    room_id      TEXT
);
CREATE INDEX IF NOT EXISTS queue_waiting ON queue (room_id, entered_at);
CREATE TABLE IF NOT EXISTS readiness (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at REAL NOT NULL
);
"""

# What a participant has not read is kept, not counted: counting the log past its read
# position on every send would cost as much as it has left unread. `settled` is how many of
# the room's seqs it need not read (read, its own, or removed), so its unread is the room's
# last_seq less that: a message from anyone else raises last_seq and leaves `settled`, one of
# its own raises both (_insert_message), a read settles what it took (claim). Where that is not
# known (a re-read from elsewhere, retention, an upgrade), it is set from a count:
_SETTLED = (
    "(SELECT last_seq FROM rooms r WHERE r.room_id = participants.room_id)"
    " - (SELECT count(*) FROM messages m WHERE m.room_id = participants.room_id"
    " AND m.seq > participants.cursor AND m.sender_id != participants.participant_id)"
)

# Steps from each older schema version to the next; the tables above are the newest shape.
_MIGRATIONS = {
    1: """
ALTER TABLE rooms ADD COLUMN invite_hash TEXT;
ALTER TABLE participants ADD COLUMN last_seen REAL NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN gone INTEGER NOT NULL DEFAULT 0;
""",
    2: f"""
ALTER TABLE participants ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
UPDATE participants SET settled = {_SETTLED} WHERE left_room = 0;
""",
    # The ids a message addresses, as a JSON list; NULL (the rows from before, and most
    # messages) for none.
    3: """
ALTER TABLE messages ADD COLUMN mentions TEXT;
""",
}

_MESSAGE_COLUMNS = (
    "room_id, seq, message_id, sender_id, sender_name, kind, body, created_at, mentions"
)
_PARTICIPANT_COLUMNS = (
    "participant_id, room_id, display_name, secret_hash, cursor, joined_at, left_room,"
    " last_seen, gone"
)
_ROOM_COLUMNS = "room_id, capacity, created_at, last_seq, ended, invite_hash"
_QUEUE_COLUMNS = "entry_id, secret_hash, display_name, interests, entered_at, last_seen, room_id"


def path_from_url(url: str) -> Path:
    """`sqlite:///abs/path.db` -> /abs/path.db; `sqlite:///rel.db` -> ./rel.db is not allowed
    to be ambiguous, so a relative path is taken relative to the working directory."""
    parts = urlsplit(url)
    raw = unquote(parts.netloc + parts.path)
    if not raw or raw == "/":
        raise StartupError(f"no file path in store URL {url!r}: use sqlite:///path/to/file.db.")
    # sqlite:////abs -> '//abs'; sqlite:///abs -> '/abs' (as SQLAlchemy reads it: absolute).
    return Path(raw.replace("//", "/", 1) if raw.startswith("//") else raw)


def _message(row: sqlite3.Row) -> Message:
    return Message(
        room_id=row["room_id"],
        seq=row["seq"],
        message_id=row["message_id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        kind=Kind(row["kind"]),
        text=row["body"],
        timestamp=row["created_at"],
        mentions=tuple(json.loads(row["mentions"])) if row["mentions"] else (),
    )


def _participant(row: sqlite3.Row) -> Participant:
    return Participant(
        participant_id=row["participant_id"],
        room_id=row["room_id"],
        display_name=row["display_name"],
        secret_hash=row["secret_hash"],
        cursor=row["cursor"],
        joined_at=row["joined_at"],
        left=bool(row["left_room"]),
        last_seen=row["last_seen"],
        gone=bool(row["gone"]),
    )


def _room(row: sqlite3.Row) -> Room:
    return Room(
        room_id=row["room_id"],
        capacity=row["capacity"],
        created_at=row["created_at"],
        last_seq=row["last_seq"],
        ended=bool(row["ended"]),
        invite_hash=row["invite_hash"],
    )


def _entry(row: sqlite3.Row) -> QueueEntry:
    return QueueEntry(
        entry_id=row["entry_id"],
        secret_hash=row["secret_hash"],
        display_name=row["display_name"],
        interests=tuple(json.loads(row["interests"])),
        entered_at=row["entered_at"],
        last_seen=row["last_seen"],
        room_id=row["room_id"],
    )


class SQLiteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-chat-sqlite")
        self._db: sqlite3.Connection | None = None  # the worker's
        self._inline: sqlite3.Connection | None = None  # the event loop's
        self._local = threading.local()  # .db: the connection of the thread running
        self._checkpoints: asyncio.Task[None] | None = None
        self._waker = Waker(path)
        self._lock = threading.Lock()
        self._pending: list[_Operation] = []
        self._flush_scheduled = False
        self._batch: _Batch | None = None  # open on the loop's connection, not yet committed
        self._turn_taker: asyncio.Task[Any] | None = None  # committed alone this iteration
        self._outage = Outage("SQLite", log)
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._lost = False  # the file at the path is not the one opened (any more)

    # -- plumbing ---------------------------------------------------------------------------

    async def _query(self, fn: Callable[..., T], *args: Any) -> T:
        """`_run` for an operation that only reads. Reads go on when writes fail (a full disk,
        a read-only file), so one that succeeds does not end an outage: the log would say
        "back" and "failing" again at every read between two failed writes."""
        return await self._run(fn, *args, reads_only=True)

    async def _run(self, fn: Callable[..., T], *args: Any, reads_only: bool = False) -> T:
        call = functools.partial(fn, *args) if args else fn
        try:
            if self._lost:
                raise self._gone()
            if self._inline is not None and not self._pending:
                try:
                    if self._batch is None and self._turn_taker in (None, current_task()):
                        result: T = self._run_alone(call)
                        return self._passed(result, reads_only)
                    future = self._run_batched(call)
                except _Busy:
                    pass  # someone holds the write lock: the worker will wait for it
                else:
                    result = await future
                    return self._passed(result, reads_only)
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            with self._lock:
                self._pending.append((call, future, loop))
                schedule, self._flush_scheduled = not self._flush_scheduled, True
            if schedule:
                self._executor.submit(self._flush)
            result = await future
            return self._passed(result, reads_only)
        except sqlite3.OperationalError as exc:
            self._outage.failed(exc)
            raise _unavailable() from exc

    def _passed(self, result: T, reads_only: bool) -> T:
        return result if reads_only and self._outage.failing else self._outage.passed(result)

    def _check_file(self) -> None:
        """After a commit (of an operation that wrote, or of a batch): raise DatabaseFileGone
        if the file at the path is no longer the one the connections write to (deleted, or
        replaced). Its inode number cannot go to a new file meanwhile: the open connections
        keep the inode allocated."""
        if not self._lost:
            try:
                found = os.stat(self.path)
                self._lost = (found.st_dev, found.st_ino) != self._file_id
            except FileNotFoundError:
                self._lost = True
        if self._lost:
            raise self._gone()

    def _gone(self) -> DatabaseFileGone:
        return DatabaseFileGone(
            f"the database file {self.path} was deleted or replaced while this server had it "
            "open: what it stored from then on would be lost at the next start, so it stores "
            "nothing more. Restart the server"
        )

    def _checked(self, outcomes: list[_Outcome]) -> list[_Outcome]:
        """A batch's outcomes once committed: all failures if the file turns out gone."""
        try:
            self._check_file()
        except DatabaseFileGone as exc:
            return [(future, None, exc) for future, _, _ in outcomes]
        return outcomes

    def _begin(self) -> sqlite3.Connection:
        db = self._inline
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise _Busy from exc
            raise
        return db

    def _run_alone(self, fn: Callable[[], T]) -> T:
        """An operation of the loop's first task to use the store in this iteration: its own
        transaction, committed at once, so that a lone caller (the usual case) answers without
        waiting, even for several operations in a row."""
        db = self._begin()
        changes = db.total_changes
        try:
            result = fn()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if db.total_changes != changes:  # a read needs no look at the file
            self._check_file()
        if self._turn_taker is None:
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._turn_taker = current_task()
        return result

    def _next_turn(self) -> None:
        self._turn_taker = None

    def _run_batched(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run `fn` on the loop's connection in the open batch, or in a new one, and answer
        the future that the batch's commit settles in the loop's next iteration."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._batch is None:
            self._begin()
            self._batch = _Batch([])
            loop.call_soon(self._commit, self._batch)
        assert self._inline is not None
        self._batch.outcomes.append(self._batch.run(self._inline, fn, future))
        return future

    def _commit(self, batch: _Batch) -> None:
        if batch is not self._batch:
            return  # close() committed it already
        self._batch = None
        assert self._inline is not None
        _settle(self._checked(batch.commit(self._inline)))

    def _open(self, busy_ms: int) -> sqlite3.Connection:
        """A connection in WAL mode that waits `busy_ms` for locks. Runs on the worker."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        # Turning a fresh file to WAL needs it to itself, and SQLite answers "locked" at
        # once, without waiting, while another process opens the same file: retry a while.
        deadline = time.monotonic() + _OPEN_PATIENCE
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    db.close()
                    raise
                time.sleep(0.002)
        db.execute(f"PRAGMA busy_timeout = {busy_ms}")
        # NORMAL in WAL mode: a commit survives the process being killed; only a power loss
        # may take the last transactions.
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _connect(self) -> None:
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            log.info("made the directory %s for the database", self.path.parent)
        db = self._open(busy_ms=10_000)
        with _write(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer mcp-chat (schema {version}); "
                    "upgrade mcp-chat to open it."
                )
            fresh = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
            for step in range(version if version and not fresh else SCHEMA_VERSION, SCHEMA_VERSION):
                for statement in filter(str.strip, _MIGRATIONS[step].split(";")):
                    db.execute(statement)
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)  # each is idempotent (IF NOT EXISTS)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db = self._local.db = db

    def _flush(self) -> None:
        """On the worker: run every pending operation in one transaction, then hand each its
        outcome on its event loop in one callback."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        together = _Batch([])
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            together.error = exc  # each operation fails with it, unrun
        for fn, future, _ in batch:
            together.outcomes.append(together.run(self.db, fn, future))
        outcomes = self._checked(together.commit(self.db))
        for loop in {loop for _, _, loop in batch}:
            mine = [o for o in outcomes if o[0].get_loop() is loop]
            loop.call_soon_threadsafe(_settle, mine)

    @property
    def db(self) -> sqlite3.Connection:
        """The connection of the thread running: the worker's, or the event loop's."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        assert db is not None, "store not started"
        return db

    async def start(self, on_change: ChangeListener) -> None:
        # First, so that an unsafe wake-up directory is refused before the file is touched.
        self._waker.start(on_change)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._connect)
        inline = await loop.run_in_executor(self._executor, self._open, 0)
        inline.execute("PRAGMA wal_autocheckpoint = 0")  # the worker checkpoints, off the loop
        self._inline = self._local.db = inline
        found = os.stat(self.path)
        self._file_id = (found.st_dev, found.st_ino)
        self._checkpoints = asyncio.create_task(self._checkpoint_now_and_then())

    async def _checkpoint_now_and_then(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_CHECKPOINT_EVERY)
            with contextlib.suppress(sqlite3.Error):
                await loop.run_in_executor(self._executor, self._checkpoint)

    def _checkpoint(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def close(self) -> None:
        # First, before any await lets another batch begin: commit the open batch, if any.
        if self._inline is not None:
            if self._batch is not None:
                self._commit(self._batch)
            self._inline.close()
            self._inline = self._local.db = None
        self._waker.close()
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        if self._db is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._checkpoint)
            await loop.run_in_executor(self._executor, self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    # -- helpers that run on the worker thread --------------------------------------------------

    def _member(self, participant_id: str) -> Participant:
        row = self.db.execute(
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            raise errors.unknown_client()
        participant = _participant(row)
        if participant.left:
            raise errors.left_room(participant.room_id)
        return participant

    def _member_room(self, participant_id: str) -> str:
        """The room of a current participant (the hot path's lighter `_member`)."""
        row = self.db.execute(
            "SELECT room_id, left_room FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            raise errors.unknown_client()
        if row[1]:
            raise errors.left_room(row[0])
        return str(row[0])

    def _room_row(self, room_id: str) -> Room | None:
        row = self.db.execute(
            f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return None if row is None else _room(row)

    def _set_aside(self, room_id: str) -> None:
        """Keep an ended conversation, with everyone who was in it, under `rooms.archive_id`
        (each table's room_id; a queue entry keeps pointing at the room it was matched into)."""
        archive = rooms.archive_id(room_id)
        for table in ("rooms", "messages", "participants", "queue"):
            self.db.execute(
                f"UPDATE {table} SET room_id = ? WHERE room_id = ?",  # the names are the four above
                (archive, room_id),
            )

    def _active_members(self, room_id: str) -> list[Participant]:
        rows = self.db.execute(
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants "
            "WHERE room_id = ? AND left_room = 0 ORDER BY joined_order",
            (room_id,),
        ).fetchall()
        return [_participant(r) for r in rows]

    def _insert_room(self, room: Room) -> None:
        self.db.execute(
            "INSERT INTO rooms (room_id, capacity, created_at, invite_hash) VALUES (?, ?, ?, ?)",
            (room.room_id, room.capacity, room.created_at, room.invite_hash),
        )

    def _insert_participant(self, participant: Participant, order: int) -> None:
        self.db.execute(
            "INSERT INTO participants (participant_id, room_id, display_name, secret_hash,"
            " cursor, joined_at, joined_order, last_seen) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
            (
                participant.participant_id,
                participant.room_id,
                participant.display_name,
                participant.secret_hash,
                participant.joined_at,
                order,
                participant.last_seen,
            ),
        )
        # A newcomer reads from the start: all that others said before it is unread.
        self._count_settled(participant.participant_id)

    def _count_settled(self, participant_id: str) -> None:
        self.db.execute(
            f"UPDATE participants SET settled = {_SETTLED} WHERE participant_id = ?",
            (participant_id,),
        )

    def _append(self, room: Room, draft: Draft) -> Message:
        seq = room.last_seq + 1
        self._insert_message(room.room_id, seq, draft)
        self.db.execute("UPDATE rooms SET last_seq = ? WHERE room_id = ?", (seq, room.room_id))
        return Message.from_draft(room.room_id, seq, draft)

    def _insert_message(self, room_id: str, seq: int, draft: Draft) -> int | None:
        """Store the message; its sender need not read it. Returns the sender's `settled`
        (None when the sender is not in the room yet: a 'joined' event comes first)."""
        self.db.execute(
            "INSERT INTO messages (room_id, seq, message_id, sender_id, sender_name, kind, body,"
            " created_at, msg_key, mentions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                room_id,
                seq,
                draft.message_id,
                draft.sender_id,
                draft.sender_name,
                draft.kind.value,
                draft.text,
                draft.timestamp,
                draft.key,
                json.dumps(draft.mentions) if draft.mentions else None,
            ),
        )
        row = self.db.execute(
            "UPDATE participants SET settled = settled + 1 WHERE participant_id = ?"
            " RETURNING settled",
            (draft.sender_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    # -- the interface ----------------------------------------------------------------------------

    async def join(
        self,
        room_id: str,
        capacity: int,
        participant: Participant,
        event: Draft,
        invite_hash: str | None = None,
    ) -> Joined:
        def run() -> Joined:
            with _write(self.db):
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
                f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE secret_hash = ?",
                (secret_hash,),
            ).fetchone()
            return None if row is None else _participant(row)

        return await self._query(run)

    async def keyed(self, participant_id: str, key: str) -> Message | None:
        def run() -> Message | None:
            row = self.db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender_id = ? AND msg_key = ?",
                (participant_id, key),
            ).fetchone()
            return None if row is None else _message(row)

        return await self._run(run)

    async def append(self, participant_id: str, draft: Draft) -> Appended:
        def run() -> Appended:
            with _write(self.db):
                if draft.key is not None:
                    self._member_room(participant_id)
                    row = self.db.execute(
                        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
                        " WHERE sender_id = ? AND msg_key = ?",
                        (participant_id, draft.key),
                    ).fetchone()
                    if row is not None:
                        return Appended(_message(row), True, self._unread(participant_id))
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
            with _write(self.db):
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
            with _read(self.db):
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
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
            " AND seq <= ? AND sender_id != ? ORDER BY seq LIMIT ?",
            (room.room_id, span.start, span.end, participant.participant_id, limit + 1),
        ).fetchall()
        rows, has_more = reading.cut(rows, limit)
        taken = [_message(r) for r in rows]
        cursor = reading.cursor_after(span, taken, has_more)
        return Claim(taken, cursor, has_more, room.ended, room.room_id), span.end

    async def unread(self, participant_id: str) -> int:
        def run() -> int:
            with _read(self.db):
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
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (room_id, after, limit),
                ).fetchall()
                return [_message(r) for r in rows]
            rows = self.db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq < ?"
                " ORDER BY seq DESC LIMIT ?",
                (room_id, before if before is not None else 2**62, limit),
            ).fetchall()
            return [_message(r) for r in reversed(rows)]

        return await self._query(run)

    async def leave(self, participant_id: str, event: Draft) -> Left:
        def run() -> Left:
            with _write(self.db):
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
            with _write(self.db):
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
                if rooms.listed(_room(r), r["seated"])
            ]

        return await self._query(run)

    async def counts(self) -> Counts:
        def run() -> Counts:
            with _read(self.db):
                rooms, participants = self.db.execute(
                    "SELECT count(*), coalesce(sum((SELECT count(*) FROM participants p"
                    "   WHERE p.room_id = r.room_id AND p.left_room = 0)), 0)"
                    " FROM rooms r WHERE r.ended = 0"
                ).fetchone()
                return Counts(int(rooms), int(participants))

        return await self._query(run)

    async def prune(self, messages_before: str | None, idle_before: str | None) -> Pruned:
        def run() -> Pruned:
            removed_messages = removed_rooms = 0
            if messages_before is not None:
                # Only a database that uses retention pays for this index on every append.
                self.db.execute(
                    "CREATE INDEX IF NOT EXISTS messages_by_time ON messages (created_at)"
                )
            with _write(self.db):
                if messages_before is not None:
                    removed = self.db.execute(
                        "DELETE FROM messages WHERE created_at < ? AND seq <"
                        " (SELECT r.last_seq FROM rooms r WHERE r.room_id = messages.room_id)"
                        " RETURNING room_id",
                        (messages_before,),
                    ).fetchall()
                    removed_messages += len(removed)
                    # What was removed unread is no longer there to read.
                    self.db.executemany(
                        f"UPDATE participants SET settled = {_SETTLED}"
                        " WHERE room_id = ? AND left_room = 0",
                        [(room_id,) for room_id in {row[0] for row in removed}],
                    )
                if idle_before is not None:
                    idle = [
                        (row[0],)
                        for row in self.db.execute(
                            "SELECT r.room_id FROM rooms r LEFT JOIN messages m"
                            " ON m.room_id = r.room_id AND m.seq = r.last_seq"
                            " WHERE coalesce(m.created_at, r.created_at) < ?",
                            (idle_before,),
                        )
                    ]
                    for table in ("messages", "participants", "queue"):
                        before = self.db.total_changes
                        self.db.executemany(f"DELETE FROM {table} WHERE room_id = ?", idle)
                        if table == "messages":
                            removed_messages += self.db.total_changes - before
                    self.db.executemany("DELETE FROM rooms WHERE room_id = ?", idle)
                    removed_rooms = len(idle)
            return Pruned(removed_messages, removed_rooms)

        return await self._run(run)

    # -- the random-pairing queue -------------------------------------------------------------

    def _waiting(self) -> list[QueueEntry]:
        rows = self.db.execute(
            f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE room_id IS NULL ORDER BY entered_at"
        ).fetchall()
        return [_entry(r) for r in rows]

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
            with _write(self.db):
                self.db.execute(
                    f"INSERT INTO queue ({_QUEUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
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
            with _write(self.db):
                pair = matching.on_retry(entry_id, self._waiting(), now, policy)
                return None if pair is None else self._pair(*pair, now)

        matched = await self._run(run)
        self._pair_notices(matched)
        return matched

    async def queue_entry(self, secret_hash: str) -> QueueEntry | None:
        def run() -> QueueEntry | None:
            row = self.db.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE secret_hash = ?", (secret_hash,)
            ).fetchone()
            return None if row is None else _entry(row)

        return await self._query(run)

    async def queue_position(self, entry_id: str) -> int:
        def run() -> int:
            return matching.position(entry_id, self._waiting())

        return await self._query(run)

    async def leave_queue(self, entry_id: str) -> bool:
        def run() -> bool:
            with _write(self.db):
                gone = self.db.execute(
                    "DELETE FROM queue WHERE entry_id = ? AND room_id IS NULL", (entry_id,)
                )
                return gone.rowcount > 0

        return await self._run(run)

    # -- presence --------------------------------------------------------------------------------

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
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE participant_id = ?",
            (participant_id,),
        ).fetchone()
        if row is None:
            return None
        participant = _participant(row)
        room = self._room_row(participant.room_id)
        assert room is not None
        return participant, room

    async def touch(self, seen: Mapping[str, float]) -> list[Message]:
        def run() -> list[Message]:
            events: list[Message] = []
            with _write(self.db):
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
                    if found is not None and not found[0].left:
                        with contextlib.suppress(errors.ChatError):  # no seat: it stays gone
                            if event := self._come_back(found[0]):
                                events.append(event)
            return events

        return await self._announced(run)

    async def come_back(self, participant_id: str) -> Message | None:
        def run() -> list[Message]:
            with _write(self.db):
                event = self._come_back(self._member(participant_id))
                return [] if event is None else [event]

        events = await self._announced(run)
        return events[0] if events else None

    def _come_back(self, participant: Participant) -> Message | None:
        room = self._room_row(participant.room_id)
        assert room is not None
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
            with _write(self.db):
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
            with _write(self.db):
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

    async def _announced(self, fn: Callable[[], list[Message]]) -> list[Message]:
        events = await self._run(fn)
        for room_id in {m.room_id for m in events}:
            self._waker.notify(room_id)
        return events


_CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoints of the write-ahead log into the database file."""
_OPEN_PATIENCE = 10.0
"""Seconds a new connection keeps trying to put the file in WAL mode."""


class _Busy(Exception):
    """The database's write lock is held elsewhere right now."""


class DatabaseFileGone(sqlite3.OperationalError):
    """The database file was deleted or replaced under the open connections. An
    OperationalError, as SQLite's own failures to store are: the caller gets
    store_unavailable, and the log says why once."""


def _unavailable() -> errors.ChatError:
    return errors.ChatError(
        errors.Code.STORE_UNAVAILABLE,
        "The message store is busy or unavailable right now; nothing was changed. "
        "Try the same call again in a moment.",
    )


_Operation = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]
"""An operation's future, and its result or its error."""


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue  # its caller went away; what it did stands (or was undone) regardless
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


@dataclasses.dataclass
class _Batch:
    """Operations sharing one open transaction (group commit, on the loop's connection or the
    worker's): the outcome of each, handed out only once that transaction is committed."""

    outcomes: list[_Outcome]
    error: sqlite3.Error | None = None
    """Why the transaction broke (a savepoint could not be taken or undone), if it did."""

    def run(
        self, db: sqlite3.Connection, fn: Callable[[], Any], future: asyncio.Future[Any]
    ) -> _Outcome:
        """Run `fn` within the batch, in its own savepoint: if it fails, it alone is undone."""
        if self.error is None:
            try:
                db.execute("SAVEPOINT operation")
                try:
                    result = fn()
                except BaseException as exc:
                    db.execute("ROLLBACK TO operation")
                    db.execute("RELEASE operation")
                    if not isinstance(exc, Exception):
                        raise
                    return future, None, exc
                db.execute("RELEASE operation")
                return future, result, None
            except sqlite3.Error as exc:
                self.error = exc
        return future, None, self.error

    def commit(self, db: sqlite3.Connection) -> list[_Outcome]:
        """Commit, and each operation's outcome; if the transaction cannot be committed, it
        is rolled back and every operation fails with the reason."""
        try:
            if self.error is not None:
                raise self.error
            db.execute("COMMIT")
            return self.outcomes
        except Exception as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            return [(future, None, exc) for future, _, _ in self.outcomes]


class _Transaction:
    """BEGIN IMMEDIATE (writes) or BEGIN (a consistent read) ... COMMIT, ROLLBACK on error.
    Inside a batch, the batch's transaction and the operation's savepoint stand in for it."""

    def __init__(self, db: sqlite3.Connection, mode: str) -> None:
        self._db, self._mode = db, mode
        self._own = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._own = True
            self._db.execute(f"BEGIN {self._mode}")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._own:
            self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _write(db: sqlite3.Connection) -> _Transaction:
    return _Transaction(db, "IMMEDIATE")


def _read(db: sqlite3.Connection) -> _Transaction:
    return _Transaction(db, "DEFERRED")
