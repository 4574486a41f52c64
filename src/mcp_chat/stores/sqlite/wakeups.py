"""Cross-process wake-ups for processes that share one SQLite file.

Each process binds a Unix datagram socket in a directory named after the database file;
after a change, a process sends the room id to every other socket there, and the receiver
wakes its waiters for that room at once. A datagram is only a hint: waiters re-read the
store, so a duplicate costs a query and nothing else.

Whoever can enter that directory hears which rooms change (private ones too) and can remove
the sockets, so it lives in a per-user directory only the user can enter, made 0700; one that
someone else owns, or that is open to others, is refused rather than used.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("mcp_chat.stores.wakeups")  # its name before it moved here

_MAX_DATAGRAM = 512
_SETTLED = 1.0
"""Seconds after which a directory's mtime is trusted to have moved past any later change."""


def user_dir() -> Path:
    """The user's directory for wake-up sockets: `/tmp/mcp-chat-wake-<uid>`.

    Every process on one database must find the same one, so it depends on the user alone,
    not on the environment: MCP clients start stdio servers with only a few variables (the
    SDKs pass HOME, PATH, USER and little more), so $XDG_RUNTIME_DIR or $TMPDIR would put a
    server started from a shell and one started by an assistant in different places, where
    they never hear each other. (Versions before this one used `mcp-chat-<uid>`, made open to
    others: a new name rather than refusing every directory they left behind.)"""
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())  # noqa: S108
    return base / f"mcp-chat-wake-{os.geteuid()}"


def rendezvous_dir(db_path: Path, base: Path | None = None) -> Path:
    """A short per-database directory (socket paths are limited to ~104 bytes)."""
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    return (base or user_dir()) / digest


_TRIES = 10
"""Attempts at joining the rendezvous directory while other processes leave it."""


class UnsafeDirectory(RuntimeError):
    """The wake-up directory is not private to this user; the message says what to do."""


def _private_dir(path: Path) -> None:
    """Make `path` a directory only this user can enter, or check that it is one. Raises
    UnsafeDirectory if it is not, FileNotFoundError if it went away meanwhile."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    found = path.lstat()  # not stat: a symlink could lead anywhere
    if not stat.S_ISDIR(found.st_mode):
        raise UnsafeDirectory(
            f"{path} is not a directory (a symlink or a file is in its place). mcp-chat keeps "
            "the sockets that wake processes sharing the database there; remove it (or ask "
            "its owner or an administrator to), and start again: mcp-chat makes it itself."
        )
    if found.st_uid != os.geteuid():
        raise UnsafeDirectory(
            f"{path} belongs to another user (uid {found.st_uid}), who could hear which rooms "
            "change and remove the sockets that wake processes sharing the database. Ask its "
            "owner or an administrator to remove it, and start again: mcp-chat makes it "
            "itself, private to you."
        )
    if found.st_mode & 0o077:
        raise UnsafeDirectory(
            f"{path} is open to other users (mode {oct(stat.S_IMODE(found.st_mode))}): they "
            "could hear which rooms change and remove the sockets that wake processes sharing "
            f"the database. When no mcp-chat process uses it, remove it (rm -r {path}) and "
            "start again: mcp-chat makes it itself, private to you."
        )


class Waker:
    """Sends and receives room-changed hints between processes."""

    def __init__(self, db_path: Path, base: Path | None = None) -> None:
        self._dir = rendezvous_dir(db_path, base)
        self._base = self._dir.parent
        self._sock: socket.socket | None = None
        self._path: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers_stamp = -1
        self._peer_paths: list[str] = []

    def start(self, on_change: Callable[[str], None]) -> None:
        path = self._dir / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        for attempt in range(_TRIES):
            # The last process out removes the directory: between our mkdir and bind, or
            # between mkdir finding it there and checking that it is a directory.
            try:
                # The per-user directory is checked too: whoever could write it could have
                # made the database's directory, or could swap it.
                _private_dir(self._base)
                _private_dir(self._dir)
                sock.bind(str(path))
                break
            except FileNotFoundError:
                if attempt == _TRIES - 1:
                    sock.close()
                    raise
            except BaseException:
                sock.close()
                raise
        self._sock, self._path = sock, path
        self._loop = asyncio.get_running_loop()

        def receive() -> None:
            while True:
                try:
                    data = sock.recv(_MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                on_change(data.decode("utf-8", "replace"))

        self._loop.add_reader(sock.fileno(), receive)

    def _peers(self, own: Path) -> list[str]:
        """The other processes' sockets. The list is read again only when the directory
        changed (its mtime moves whenever a socket is added or removed): a stat, not a scan,
        on every send.

        A file system's clock may tick coarsely (a few milliseconds, on many kernels): a socket
        bound in the same tick as the scan, after it, leaves the mtime where it was, and a
        list kept on that mtime would never name that process, whose waiters would then sleep
        through every change made here. So a list read while the mtime is less than
        `_SETTLED` seconds old is read again at the next send."""
        try:
            stamp = os.stat(self._dir).st_mtime_ns
        except FileNotFoundError:
            return []
        if stamp != self._peers_stamp:
            with os.scandir(self._dir) as found:
                self._peer_paths = [
                    e.path for e in found if e.name != own.name and e.name.endswith(".sock")
                ]
            settled = time.time_ns() - stamp >= _SETTLED * 1e9
            self._peers_stamp = stamp if settled else -1
        return self._peer_paths

    def notify(self, room_id: str) -> None:
        """Tell every other process on this database that `room_id` changed."""
        sock, own = self._sock, self._path
        if sock is None or own is None:
            return
        data = room_id.encode()
        for path in self._peers(own):
            try:
                sock.sendto(data, path)
            except (ConnectionRefusedError, FileNotFoundError):
                # Its process is gone without cleaning up; nobody will bind it again.
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except BlockingIOError:
                log.debug("wake-up queue of a peer is full; it is busy reading already")
            except OSError as exc:
                log.debug("wake-up to a peer failed: %s", exc)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            self._path = None
            # The last process out removes the rendezvous directory (rmdir refuses if not empty).
            with contextlib.suppress(OSError):
                self._dir.rmdir()
