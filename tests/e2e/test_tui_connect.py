"""The terminal client says why it cannot connect, and tries again only where that can help;
driven by Textual's pilot against real server processes (or none)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_chat.cli import chat_app
from mcp_chat.tui.app import ChatApp
from mcp_chat.tui.link import Seat, stdio_target
from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import hear, join
from tests.e2e.test_tui import count, link_finished, shown, type_line

pytestmark = pytest.mark.anyio


async def test_refused_it_says_so_keeps_trying_and_joins_once_the_server_is_up(
    db_url: str,
) -> None:
    port = free_port()
    app = ChatApp(Seat(f"http://127.0.0.1:{port}/mcp", "early", "Person"))
    server: ServerProcess | None = None
    try:
        async with app.run_test():
            lines = await shown(
                app, f"nothing is listening at 127.0.0.1:{port} (connection refused)"
            )
            assert count(lines, "Trying again") == 1, lines
            first_attempts = app.link.attempts
            server = ServerProcess(db_url, port=port)
            lines = await shown(app, "You are in room early as Person")
            assert app.link.attempts > first_attempts  # it kept trying, and that helped
            assert app.link.connections == 1
            assert count(lines, "connection refused") == 1, lines  # said once, not per attempt
            assert count(lines, "Lost the connection") == 0, lines
            assert count(lines, "Connected.") == 1, lines
    finally:
        if server is not None:
            server.stop()


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("{base}/nope", "Nothing answers at {base}/nope (404 Not Found): check the path"),
        ("127.0.0.1:{port}/mcp", "'127.0.0.1:{port}/mcp' is not a server address"),
        ("http://no-such-host.invalid/mcp", "The host name 'no-such-host.invalid' is not known"),
    ],
)
async def test_a_wrong_address_is_explained_and_not_retried(
    http_server: ServerProcess, address: str, said: str
) -> None:
    places = {"base": http_server.base, "port": http_server.port}
    app = ChatApp(Seat(address.format(**places), "nowhere", "Person"))
    async with app.run_test():
        lines = await shown(app, said.format(**places))
        await link_finished(app)
        assert app.link.attempts <= 1 and app.link.connections == 0
        assert count(lines, "Not trying again") == 1, lines
        assert count(lines, "Trying again") == count(lines, "Lost the connection") == 0, lines
        assert "not connected" in str(app.query_one("#bar").render())


async def test_a_bad_store_url_shows_the_local_servers_error_and_stops() -> None:
    app = ChatApp(Seat(stdio_target("postgres://ada:hunter2@db/x"), "local", "Person"))
    async with app.run_test():
        lines = await shown(app, "The local chat server could not start: unknown store URL")
        await link_finished(app)
        assert app.link.attempts == 1 and app.link.connections == 0
        said = next(line for line in lines if "could not start" in line)
        assert "'postgres'" in said and "use sqlite:///" in said and "hunter2" not in said
        assert count(lines, "Lost the connection") == 0, lines


TOKEN = "tok-7be1c0d4a9f2e6358"


@pytest.fixture
def locked(db_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, env={"MCP_CHAT_AUTH_TOKEN": TOKEN})
    yield server
    server.stop()


def shows_no_token(app: ChatApp) -> None:
    assert TOKEN not in "\n".join(app.transcript.lines())
    assert TOKEN not in str(app.query_one("#bar").render())
    assert TOKEN not in repr(app.link.seat)


@pytest.mark.parametrize(
    ("token", "said"),
    [
        (None, "needs an access token (401 Unauthorized)"),
        (TOKEN + "x", "did not accept the access token (401 Unauthorized)"),
    ],
    ids=["missing", "wrong"],
)
async def test_a_missing_or_wrong_token_is_explained_and_not_retried(
    locked: ServerProcess, monkeypatch: pytest.MonkeyPatch, token: str | None, said: str
) -> None:
    monkeypatch.delenv("MCP_CHAT_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("MCP_CHAT_AUTH_TOKEN_FILE", raising=False)
    if token is not None:
        monkeypatch.setenv("MCP_CHAT_AUTH_TOKEN", token)
    app = chat_app(["--url", locked.url, "--room", "locked", "--name", "Person"])
    async with app.run_test():
        lines = await shown(app, said)
        await link_finished(app)
        assert app.link.attempts == 1 and app.link.connections == 0
        assert count(lines, "Not trying again") == 1, lines
        shows_no_token(app)


async def test_the_token_from_a_file_or_the_variable_lets_the_window_in(
    locked: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MCP_CHAT_AUTH_TOKEN_FILE", raising=False)
    monkeypatch.setenv("MCP_CHAT_AUTH_TOKEN", TOKEN + "-stale")  # the file's flag wins
    path = tmp_path / "token"
    path.write_text(f"# for the team server\n{TOKEN}\n")
    by_file = chat_app(
        ["--url", locked.url, "--room", "locked", "--name", "Ada", "--auth-token-file", str(path)]
    )
    async with by_file.run_test() as pilot:
        await shown(by_file, "You are in room locked as Ada")
        async with agent_with_token(locked.url) as agent:
            agent_id = await join(agent, "locked", "Agent")
            await type_line(by_file, pilot, "hello, locked room")
            await hear(agent, "locked", agent_id, "hello, locked room")
        shows_no_token(by_file)
    monkeypatch.setenv("MCP_CHAT_AUTH_TOKEN", TOKEN)
    by_variable = chat_app(["--url", locked.url, "--room", "other", "--name", "Bo"])
    async with by_variable.run_test():
        await shown(by_variable, "You are in room other as Bo")
        shows_no_token(by_variable)
    assert TOKEN not in locked.log


@asynccontextmanager
async def agent_with_token(url: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as agent,
    ):
        yield agent


def test_token_flags_go_with_url_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        chat_app(["--store", "memory://", "--auth-token", TOKEN])
    assert "go with --url" in capsys.readouterr().err
