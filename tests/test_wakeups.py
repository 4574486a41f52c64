"""The directory where processes sharing one SQLite file wake each other: private to the user,
or refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_chat.stores import open_store
from mcp_chat.stores.sqlite import wakeups
from mcp_chat.stores.sqlite.wakeups import Waker, rendezvous_dir

pytestmark = pytest.mark.anyio

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    """Where a test's per-user directory goes: short (a socket path must fit in ~104 bytes,
    and pytest's tmp_path is long), and never the real one, which other tests use meanwhile."""
    parent = Path(tempfile.mkdtemp(prefix="mcw-", dir="/tmp"))
    yield parent / "user"
    shutil.rmtree(parent)


def refusal(db: Path, base: Path) -> str:
    """Start a waker on `db` with `base` as the per-user directory; the error it refuses with."""

    async def start() -> None:
        waker = Waker(db, base)
        try:
            waker.start(lambda _: None)
        finally:
            waker.close()

    with pytest.raises(RuntimeError) as refused:
        asyncio.run(start())
    return str(refused.value)


def test_a_user_directory_owned_by_another_user_is_refused(tmp_path: Path, base: Path) -> None:
    base.mkdir(mode=0o700)
    os.chown(base, NOBODY, NOBODY)
    message = refusal(tmp_path / "chat.db", base)
    assert str(base) in message
    assert f"uid {NOBODY}" in message and "remove it" in message


def test_a_user_directory_open_to_others_is_refused(tmp_path: Path, base: Path) -> None:
    base.mkdir()
    base.chmod(0o777)
    message = refusal(tmp_path / "chat.db", base)
    assert str(base) in message
    assert "0o777" in message and "remove it" in message


def test_a_database_directory_made_by_another_user_is_refused(tmp_path: Path, base: Path) -> None:
    """Someone who could write the per-user directory once may have left a directory for a
    database in it; it is refused as well, whatever its mode."""
    db = tmp_path / "chat.db"
    base.mkdir(mode=0o700)
    planted = rendezvous_dir(db, base)
    planted.mkdir(mode=0o700)
    os.chown(planted, NOBODY, NOBODY)
    assert str(planted) in refusal(db, base)


def test_a_symlink_in_place_of_the_user_directory_is_refused(tmp_path: Path, base: Path) -> None:
    elsewhere = base.parent / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    base.symlink_to(elsewhere)
    message = refusal(tmp_path / "chat.db", base)
    assert str(base) in message and "not a directory" in message


async def test_the_directories_are_made_private(tmp_path: Path, base: Path) -> None:
    db = tmp_path / "chat.db"
    waker = Waker(db, base)
    waker.start(lambda _: None)
    try:
        for made in (base, rendezvous_dir(db, base)):
            found = made.lstat()
            assert stat.S_ISDIR(found.st_mode)
            assert stat.S_IMODE(found.st_mode) == 0o700
            assert found.st_uid == os.geteuid()
    finally:
        waker.close()


async def test_a_sqlite_store_refuses_to_start_on_an_unsafe_directory(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeups, "user_dir", lambda: base)
    base.mkdir()
    base.chmod(0o755)
    store = open_store(f"sqlite:///{tmp_path / 'chat.db'}")
    with pytest.raises(RuntimeError, match="open to other users"):
        await store.start(lambda _: None)
    await store.close()


def test_the_default_user_directory_is_the_same_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Processes on one file must meet in one place. MCP clients start stdio servers with a
    handful of variables (the SDKs pass HOME, PATH, USER...), so the place cannot come from
    XDG_RUNTIME_DIR or TMPDIR, which one process may have and the other not."""
    before = wakeups.user_dir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/12345")
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    assert wakeups.user_dir() == before


@pytest.mark.parametrize("removed", ["the database's directory", "both directories"])
async def test_a_directory_removed_between_mkdir_and_bind_is_made_again(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch, removed: str
) -> None:
    """The last process out of the rendezvous directory removes it (rmdir); a process that
    has just made it, or found it there, may then bind into nothing. It makes it again and
    binds, and hears the others."""
    db = tmp_path / "chat.db"
    first_dir = rendezvous_dir(db, base)
    real = wakeups._private_dir
    removals: list[Path] = []

    def then_removed(path: Path) -> None:
        real(path)
        if path == first_dir and not removals:  # the other process leaves, just now
            first_dir.rmdir()
            if removed == "both directories":
                base.rmdir()
            removals.append(path)

    monkeypatch.setattr(wakeups, "_private_dir", then_removed)
    heard: asyncio.Queue[str] = asyncio.Queue()
    late, other = Waker(db, base), Waker(db, base)
    try:
        late.start(heard.put_nowait)
        assert removals == [first_dir]
        other.start(lambda _: None)
        assert sorted(p.suffix for p in first_dir.iterdir()) == [".sock", ".sock"]
        other.notify("room-1")
        async with asyncio.timeout(10):
            assert await heard.get() == "room-1"
    finally:
        late.close()
        other.close()


async def test_a_process_that_binds_in_the_same_clock_tick_as_a_scan_is_heard(
    tmp_path: Path, base: Path
) -> None:
    """A coarse file-system clock: the directory's mtime stays where it was when a socket was
    bound just after another process listed the directory (set back here, as such a clock
    leaves it). The newcomer still hears that process's changes."""
    db = tmp_path / "chat.db"
    sender, first, late = Waker(db, base), Waker(db, base), Waker(db, base)
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        sender.start(lambda _: None)
        first.start(lambda _: None)
        sender.notify("room-0")  # lists the directory: `first` only
        directory = rendezvous_dir(db, base)
        before = os.stat(directory).st_mtime_ns
        late.start(heard.put_nowait)
        os.utime(directory, ns=(before, before))  # the same tick
        sender.notify("room-1")
        async with asyncio.timeout(10):
            assert await heard.get() == "room-1"
    finally:
        for waker in (sender, first, late):
            waker.close()
