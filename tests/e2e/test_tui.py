"""The terminal client, driven by Textual's pilot, against real server processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp import Client
from textual.pilot import Pilot
from textual.widgets import Input

from mcp_chat.tui.app import ChatApp
from mcp_chat.tui.link import Seat, stdio_target
from tests.e2e.conftest import ServerProcess, stdio_params
from tests.e2e.helpers import call, hear, join

pytestmark = pytest.mark.anyio


async def shown(app: ChatApp, fragment: str, times: int = 1) -> list[str]:
    """Wait for `times` transcript lines holding `fragment` (the transcript says when it
    changes)."""
    async with asyncio.timeout(30):
        while count(app.transcript.lines(), fragment) < times:
            await app.transcript.changed()
    return app.transcript.lines()


async def type_line(app: ChatApp, pilot: Pilot[None], line: str) -> None:
    app.query_one("#entry", Input).value = line
    await pilot.press("enter")


def count(lines: list[str], fragment: str) -> int:
    return sum(fragment in line for line in lines)


async def test_person_and_agent_chat_across_a_server_restart(db_url: str, held_port: int) -> None:
    first = ServerProcess(db_url, port=held_port)
    app = ChatApp(Seat(first.url, "tui", "Person"))
    second: ServerProcess | None = None
    try:
        async with app.run_test() as pilot:
            await shown(app, "You are in room tui as Person")
            async with Client(first.url) as agent:
                agent_id = await join(agent, "tui", "Agent")
                await shown(app, "Agent joined the room")
                await call(
                    agent, "send_message", room_id="tui", message="hello person", client_id=agent_id
                )
                await shown(app, "Agent  hello person")
                await type_line(app, pilot, "hi agent [bold]x[/bold]")
                got = await hear(agent, "tui", agent_id, "hi agent [bold]x[/bold]")
                assert got["messages"][-1]["sender"] == "Person"
                await shown(app, "Person  hi agent [bold]x[/bold]")  # markup shown as text

            first.kill()
            # Typed while the server is down: kept, and sent once when it is back.
            await type_line(app, pilot, "sent while down")
            second = ServerProcess(db_url, port=held_port)
            async with Client(second.url) as agent:
                await call(
                    agent,
                    "send_message",
                    room_id="tui",
                    message="after restart",
                    client_id=agent_id,
                )
                await hear(agent, "tui", agent_id, "sent while down")
                lines = await shown(app, "after restart")
                await shown(app, "Person  sent while down")
                lines = await shown(app, "Reconnected.")
                assert count(lines, "Lost the connection") == 1

                await type_line(app, pilot, "/who")
                lines = await shown(app, "In room tui (2 of 2 places): Person, Agent")
                for once in ("hello person", "after restart", "sent while down", "Agent joined"):
                    assert count(lines, once) == 1, lines
                await type_line(app, pilot, "/leave")
                await shown(app, "You left room tui")
                left = await call(
                    agent, "wait_for_message", room_id="tui", client_id=agent_id, timeout=30
                )
                assert [m["kind"] for m in left["messages"]] == ["left"]
    finally:
        first.kill()
        if second is not None:
            second.stop()


@asynccontextmanager
async def person_and_agent(
    db_url: str, room: str, invite: str | None = None
) -> AsyncIterator[tuple[ChatApp, Pilot[None], Client, str]]:
    """A window with its own stdio server, and an agent with another, on one SQLite file."""
    app = ChatApp(Seat(stdio_target(db_url), room, "Person", invite=invite))
    async with app.run_test() as pilot:
        await shown(app, f"You are in room {room} as Person")
        async with Client(stdio_params(db_url)) as agent:
            joined = await call(
                agent, "join_room", room_id=room, display_name="Agent", invite=invite
            )
            assert joined["success"], joined
            yield app, pilot, agent, joined["client_id"]


async def test_a_client_with_its_own_stdio_server_chats_through_the_file(db_url: str) -> None:
    async with person_and_agent(db_url, "local") as (app, pilot, agent, agent_id):
        await call(
            agent, "send_message", room_id="local", message="over the file", client_id=agent_id
        )
        await shown(app, "Agent  over the file")
        await type_line(app, pilot, "/history")
        lines = await shown(app, "History:")
        assert count(lines, "over the file") == 1
        await type_line(app, pilot, "and back")
        await hear(agent, "local", agent_id, "and back")
        await type_line(app, pilot, "/quit")
        got = await call(agent, "wait_for_message", room_id="local", client_id=agent_id, timeout=30)
        assert [m["kind"] for m in got["messages"]] == ["left"]


async def test_the_window_says_when_the_other_ends_the_chat(db_url: str) -> None:
    # In a private room, which the window made with its invite.
    async with person_and_agent(db_url, "pair", invite="sesame") as (app, pilot, agent, agent_id):
        await call(agent, "leave_chat", room_id="pair", client_id=agent_id)
        await shown(app, "Agent left the room")
        await shown(app, "The chat has ended")
        await type_line(app, pilot, "still there?")
        await shown(app, "You are not in the room any more")


async def test_the_window_rides_out_a_graceful_restart(db_url: str, held_port: int) -> None:
    """SIGTERM answers the window's blocked wait with server_restarting: it reconnects."""
    first = ServerProcess(db_url, port=held_port)
    app = ChatApp(Seat(first.url, "calm", "Person"))
    second: ServerProcess | None = None
    try:
        async with app.run_test():
            await shown(app, "You are in room calm as Person")
            first.stop()
            assert first.proc.returncode == 0
            second = ServerProcess(db_url, port=held_port)
            async with Client(second.url) as agent:
                agent_id = await join(agent, "calm", "Agent")
                await call(
                    agent, "send_message", room_id="calm", message="still here?", client_id=agent_id
                )
                lines = await shown(app, "Agent  still here?")
                assert not any("restarting" in line for line in lines), lines
    finally:
        first.kill()
        if second is not None:
            second.stop()


async def link_finished(app: ChatApp) -> None:
    """Wait until the window's link worker has ended (it ends only when the link stops
    trying: left, refused or ended)."""
    assert app.link_worker is not None
    async with asyncio.timeout(30):
        await app.link_worker.wait()


@pytest.mark.parametrize("capacity", [2, 3])
async def test_leave_ends_quietly(http_server: ServerProcess, capacity: int) -> None:
    """After /leave the window says so and stays idle: the link ends, having opened one
    connection, and nothing about losing it is shown."""
    app = ChatApp(Seat(http_server.url, "t1", "Person", capacity=capacity))
    async with app.run_test() as pilot:
        await shown(app, "You are in room t1 as Person")
        async with Client(http_server.url) as agent:
            agent_id = await join(agent, "t1", "Agent")
            if capacity == 3:
                await join(agent, "t1", "Third")
            await shown(app, "Agent joined the room")
            await type_line(app, pilot, "/leave")
            lines = await shown(app, "You left room t1.")
            await link_finished(app)
            assert app.link.connections == 1
            lines = app.transcript.lines()
            assert count(lines, "Lost the connection") == count(lines, "Reconnected") == 0
            assert "left the room" in str(app.query_one("#bar").render())
            left = await call(
                agent, "wait_for_message", room_id="t1", client_id=agent_id, timeout=30
            )
            assert [m["sender"] for m in left["messages"] if m["kind"] == "left"] == ["Person"]


async def gone_from(db_url: str, room: str, *names: str) -> list[str]:
    """Agents join `room`, each with its own stdio server on the file, and their processes
    end (each marks its participant gone as it stops). Their client_ids."""
    client_ids = []
    for name in names:
        async with Client(stdio_params(db_url)) as agent:
            client_ids.append(await join(agent, room, name))
    return client_ids


async def test_a_window_takes_a_seat_left_by_the_gone(db_url: str) -> None:
    first, _ = await gone_from(db_url, "duo", "Ann", "Ben")
    app = ChatApp(Seat(stdio_target(db_url), "duo", "Person"))
    async with app.run_test() as pilot:
        await shown(app, "You are in room duo as Person")  # "Room 'duo' is full" before
        await type_line(app, pilot, "/who")
        await shown(app, "In room duo (1 of 2 places): Ann (gone), Ben (gone), Person")
        async with Client(stdio_params(db_url)) as agent:
            await join(agent, "duo", "Cy")
            await shown(app, "Cy joined the room")
            # Ann comes back to a full room: refused, and she stays gone.
            back = await call(
                agent, "send_message", room_id="duo", message="I'm back", client_id=first
            )
            assert back["code"] == "room_full" and "while you were gone" in back["error"], back
            await type_line(app, pilot, "/who")
            await shown(app, "In room duo (2 of 2 places): Ann (gone), Ben (gone), Person, Cy")


async def test_after_a_restart_that_forgot_the_room_the_window_joins_it_again(
    held_port: int,
) -> None:
    first = ServerProcess("memory://", port=held_port)
    app = ChatApp(Seat(first.url, "mem", "Person"))
    second: ServerProcess | None = None
    try:
        async with app.run_test() as pilot:
            await shown(app, "You are in room mem as Person")
            old_id = app.link.client_id
            first.kill()
            await shown(app, "Lost the connection")
            await type_line(app, pilot, "typed while it was down")
            second = ServerProcess("memory://", port=held_port)  # remembers nothing
            lines = await shown(app, "you joined room mem again as Person")
            assert app.link.client_id not in (None, old_id)
            async with Client(second.url) as agent:
                agent_id = await join(agent, "mem", "Agent")
                await hear(agent, "mem", agent_id, "typed while it was down")
                await call(agent, "send_message", room_id="mem", message="hi", client_id=agent_id)
                await shown(app, "Agent  hi")
                await type_line(app, pilot, "hello again")
                await hear(agent, "mem", agent_id, "hello again")
            lines = await shown(app, "Person  hello again")
            assert count(lines, "joined room mem again") == 1, lines
            assert count(lines, "typed while it was down") == 1, lines
            assert not any("client_id" in line or "join_room" in line for line in lines), lines
    finally:
        first.kill()
        if second is not None:
            second.stop()


async def test_a_full_room_is_explained_in_the_windows_own_words(db_url: str) -> None:
    async with Client(stdio_params(db_url)) as agent:
        await join(agent, "full", "Ann")
        await join(agent, "full", "Ben")
        app = ChatApp(Seat(stdio_target(db_url), "full", "Person"))
        async with app.run_test():
            lines = await shown(app, "Room full is full. Start the window with another --room")
            await link_finished(app)
            assert not any("room_id" in line for line in lines), lines


HOSTILE = (
    "**bold** and *em* and `code` <script>alert(1)</script> [x](javascript:alert(1)) "
    "[docs](https://example.com/a?b=1) <img src=x onerror=alert(1)> [red]not rich[/red]\n\n"
    "- one\n- two\n\n```\nprint('hi')\n```"
)


async def test_messages_are_safe_markdown_in_the_window(db_url: str) -> None:
    async with person_and_agent(db_url, "md") as (app, _, agent, agent_id):
        await call(agent, "send_message", room_id="md", message=HOSTILE, client_id=agent_id)
        await shown(app, "print('hi')")
        text = next(t for t in app.transcript.texts() if "print('hi')" in t.plain)
        assert text.plain.endswith(
            "Agent  bold and em and code <script>alert(1)</script> [x](javascript:alert(1)) "
            "docs (https://example.com/a?b=1) <img src=x onerror=alert(1)> [red]not rich[/red]\n"
            "• one\n• two\nprint('hi')"
        ), text.plain

        def style_of(fragment: str) -> str:
            at = text.plain.index(fragment)
            return " ".join(str(s.style) for s in text.spans if s.start <= at < s.end)

        assert "bold" in style_of("bold and")
        assert "italic" in style_of("em and")
        assert "link https://example.com/a?b=1" in style_of("docs")
        assert "link" not in style_of("[x](javascript")  # only http(s) and mailto link
        assert style_of("<script>") == ""  # raw HTML is text
        assert style_of("[red]") == ""  # and so is Rich markup
