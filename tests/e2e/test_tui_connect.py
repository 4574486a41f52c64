"""The terminal client says why it cannot connect, and tries again only where that can help;
driven by Textual's pilot against real server processes (or none)."""

from __future__ import annotations

import pytest

from mcp_chat.tui.app import ChatApp
from mcp_chat.tui.link import Seat, stdio_target
from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess
from tests.e2e.test_tui import count, link_finished, shown

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
        lines = await shown(app, "The local chat server could not start: ValueError: Unknown")
        await link_finished(app)
        assert app.link.attempts == 1 and app.link.connections == 0
        said = next(line for line in lines if "could not start" in line)
        assert "'postgres'" in said and "Use sqlite:///" in said and "hunter2" not in said
        assert count(lines, "Lost the connection") == 0, lines
