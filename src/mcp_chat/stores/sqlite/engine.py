"""How the SQLite store runs its operations: on the event loop's connection, or a worker's.

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
import logging
import os
import sqlite3
import threading
import time
from asyncio import current_task
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from mcp_chat import errors
from mcp_chat.stores.base import ChangeListener, Outage, Store
from mcp_chat.stores.sqlite import schema
from mcp_chat.stores.sqlite.wakeups import Waker

T = TypeVar("T")
log = logging.getLogger("mcp_chat.stores.sqlite")


class Engine(Store):
    """The connections, the group commit and the worker thread, under the operations (which
    run `fn`s on `db` through `_run`, or `_query` for those that only read)."""

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
        with write_tx(db):
            schema.migrate(db, self.path)
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


def write_tx(db: sqlite3.Connection) -> _Transaction:
    return _Transaction(db, "IMMEDIATE")


def read_tx(db: sqlite3.Connection) -> _Transaction:
    return _Transaction(db, "DEFERRED")
