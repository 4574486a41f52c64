"""Cross-process wake-ups for processes that share one SQLite file.

Each process binds a Unix datagram socket in a directory named after the database file;
after a change, a process sends the room id to every other socket there, and the receiver
wakes its waiters for that room at once. A datagram is only a hint: waiters re-read the
store, so a duplicate costs a query and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_MAX_DATAGRAM = 512


def rendezvous_dir(db_path: Path) -> Path:
    """A short per-database directory (socket paths are limited to ~104 bytes)."""
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())  # noqa: S108
    return base / f"mcp-chat-{os.getuid()}" / digest


_TRIES = 10
"""Attempts at joining the rendezvous directory while other processes leave it."""


class Waker:
    """Sends and receives room-changed hints between processes."""

    def __init__(self, db_path: Path) -> None:
        self._dir = rendezvous_dir(db_path)
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
                self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                sock.bind(str(path))
                break
            except (FileNotFoundError, FileExistsError):
                if attempt == _TRIES - 1:
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
        on every send."""
        try:
            stamp = os.stat(self._dir).st_mtime_ns
        except FileNotFoundError:
            return []
        if stamp != self._peers_stamp:
            with os.scandir(self._dir) as found:
                self._peer_paths = [
                    e.path for e in found if e.name != own.name and e.name.endswith(".sock")
                ]
            self._peers_stamp = stamp
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
