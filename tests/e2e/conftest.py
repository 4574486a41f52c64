"""Real server processes for end-to-end tests: HTTP on a free port, or stdio under a client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import StdioServerParameters

from tests.conftest import port_holder

_LISTENING = re.compile(r"Uvicorn running on http://[0-9.]+:(\d+)")

MODES = ["legacy", "2026-07-28"]
"""The handshake protocol family (initialize, 2025-11-25) and the 2026-07-28 one."""


class ServerProcess:
    """`mcp-chat serve` on 127.0.0.1 (or the `--host` in `extra`; it is called on
    127.0.0.1 all the same) and a port the OS picks (or `port`, e.g. one the test holds, to
    come back where it was); its stderr is kept."""

    def __init__(
        self,
        store_url: str,
        *extra: str,
        env: dict[str, str] | None = None,
        port: int = 0,
        command: tuple[str, ...] = (sys.executable, "-m", "mcp_chat", "serve"),
    ) -> None:
        self.proc = subprocess.Popen(
            [
                *command,
                "--port",
                str(port),
                "--store",
                store_url,
                *extra,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.url = ""
        self.lines: list[str] = []
        self._port: int | None = None
        self._ready = threading.Event()
        self._more = threading.Condition()  # a line came, or the log ended
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout=30) or self._port is None:
            self.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        self.port: int = self._port
        self.base: str = f"http://127.0.0.1:{self._port}"
        self.url = f"{self.base}/mcp"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._more:
                self.lines.append(line)
                self._more.notify_all()
            if self._port is None and (found := _LISTENING.search(line)):
                self._port = int(found.group(1))
                self._ready.set()
        with self._more:
            self._ended = True
            self._more.notify_all()
        self._ready.set()

    def wait_logged(self, fragment: str, timeout: float = 30) -> str:
        """The first line of the log that holds `fragment`, once the server writes it (a
        blocking call: from async code, through asyncio.to_thread)."""

        def found() -> str | None:
            return next((line for line in self.lines if fragment in line), None)

        with self._more:
            self._more.wait_for(lambda: found() is not None or self._ended, timeout)
            line = found()
        if line is None:
            raise AssertionError(f"{fragment!r} not logged:\n{self.log}")
        return line

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM, then wait for a clean exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self._reader.join(timeout=10)

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._reader.join(timeout=10)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chat.db'}"


@pytest.fixture
def http_server(db_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url)
    yield server
    server.stop()


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port that this test holds for its servers (see `port_holder`): a server
    restarted after another's exit comes back where it was, and no other process on the
    machine can take the port in between."""
    with port_holder() as holder:
        port: int = holder.getsockname()[1]
        yield port


def stdio_params(store_url: str, *extra: str, channel: str = "off") -> StdioServerParameters:
    """`mcp-chat stdio` for the official SDK client, which reads with wait_for_message and
    does not show channel pushes: those are off unless `channel` says otherwise (a push
    would take the messages its waits are for)."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_chat", "stdio", "--store", store_url, "--channel", channel, *extra],
        env={**os.environ},
    )
