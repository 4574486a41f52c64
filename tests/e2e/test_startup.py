"""Start-up errors as a person meets them: one or two lines that say what is wrong and what
to do, a non-zero exit, no traceback and nothing that claims the server started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_chat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    err = done.stderr
    assert done.returncode == 2, err
    assert "Traceback" not in err and "startup complete" not in err and "Uvicorn running" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2, err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("command", ["serve", "stdio"])
def test_an_unknown_store_url_is_one_line_and_hides_its_password(command: str) -> None:
    done = run(command, "--store", "postgres://admin:hunter2@db/chat")
    refused(done, "unknown store URL scheme 'postgres'", "sqlite:///")
    assert "hunter2" not in done.stderr


def test_a_port_in_use_is_one_line_that_says_so() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run("serve", "--port", str(port), "--store", "memory://")
    refused(done, f"127.0.0.1:{port}", "in use", "--port")


def test_a_store_that_cannot_open_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = run("serve", "--port", "0", "--store", f"sqlite:///{blocker}/chat.db")
    refused(done, "cannot open the store", "--store")


def test_an_unreadable_token_file_and_a_bad_setting_are_one_line_each(tmp_path: Path) -> None:
    refused(
        run("serve", "--store", "memory://", "--auth-token-file", str(tmp_path / "missing")),
        "cannot read the token file",
    )
    refused(
        run("serve", "--store", "memory://", env={"MCP_CHAT_HEARTBEAT": "100"}),
        "heartbeat",
    )


def test_a_missing_database_directory_is_made_and_the_log_says_where(tmp_path: Path) -> None:
    where = tmp_path / "new" / "dir"
    server = ServerProcess(f"sqlite:///{where / 'chat.db'}")
    try:
        assert (where / "chat.db").exists()
    finally:
        server.stop()
    assert f"made the directory {where} for the database" in server.log
