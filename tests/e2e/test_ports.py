"""The port a test holds for its servers (`held_port`): while one server is gone and the next
not yet started, no one else can take it (the system gives it to no `bind(0)` or outgoing
connection either: it is bound), and the next server comes back on it."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess


def test_a_held_port_is_kept_from_others_between_two_servers(
    held_port: int, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'p.db'}"
    first = ServerProcess(db_url, port=held_port)
    first.kill()
    with socket.socket() as other, pytest.raises(OSError) as taken:
        other.bind(("127.0.0.1", held_port))
    assert taken.value.errno == errno.EADDRINUSE
    second = ServerProcess(db_url, port=held_port)
    try:
        assert second.port == held_port
    finally:
        second.stop()
