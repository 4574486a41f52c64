"""The terminal client in the random queue, driven by Textual's pilot, with an agent over MCP
entering the queue too."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_chat.tui.app import ChatApp
from mcp_chat.tui.link import Seat, stdio_target
from tests.e2e.conftest import ServerProcess, stdio_params
from tests.e2e.helpers import call, hear
from tests.e2e.test_tui import count, link_finished, shown, type_line

pytestmark = pytest.mark.anyio


async def enter(agent: Client, name: str, *interests: str) -> dict[str, Any]:
    entered = await call(agent, "enter_queue", display_name=name, interests=list(interests))
    assert entered["success"], entered
    return entered


async def test_the_window_waits_through_a_graceful_restart_is_matched_and_chats(
    db_url: str,
    held_port: int,
) -> None:
    first = ServerProcess(db_url, port=held_port)
    app = ChatApp(Seat(first.url, None, "Person", interests=("chess", "go")))
    second: ServerProcess | None = None
    try:
        async with app.run_test() as pilot:
            await shown(app, "Waiting for a partner (position 1)…")
            client_id = app.link.client_id
            # The server stops (gracefully) while the window waits: it carries on, same id.
            first.stop()
            await shown(app, "Lost the connection")
            second = ServerProcess(db_url, port=held_port)
            await shown(app, "Reconnected.")
            await shown(app, "Waiting for a partner (position 1)…")
            async with Client(second.url) as agent:
                matched = await enter(agent, "Agent", "chess")
                assert matched["status"] == "matched", matched
                assert matched["partner"]["display_name"] == "Person"
                room, agent_id = matched["room_id"], matched["client_id"]
                lines = await shown(app, f"You are in room {room} as Person")
                assert app.link.client_id == client_id
                assert count(lines, "Matched with Agent.") == 1
                assert count(lines, "entering it again") == count(lines, "restarting") == 0

                await call(agent, "send_message", room_id=room, message="hi", client_id=agent_id)
                await shown(app, "Agent  hi")
                await type_line(app, pilot, "hello stranger")
                await hear(agent, room, agent_id, "hello stranger")
                await type_line(app, pilot, "/who")
                await shown(app, f"In room {room} (2 of 2 places): ")
                await type_line(app, pilot, "/quit")
                left = await call(
                    agent, "wait_for_message", room_id=room, client_id=agent_id, timeout=30
                )
                assert [m["kind"] for m in left["messages"]] == ["left"]
    finally:
        first.kill()
        if second is not None:
            second.stop()


async def test_dropped_from_the_queue_the_window_enters_again_and_leave_leaves(
    db_url: str,
) -> None:
    # Each window with its own stdio server, the agent with another, on one SQLite file.
    app = ChatApp(Seat(stdio_target(db_url), None, "Person"))
    async with Client(stdio_params(db_url)) as agent:
        async with app.run_test() as pilot:
            await shown(app, "Waiting for a partner (position 1)…")
            await type_line(app, pilot, "anyone?")
            await shown(app, "Not sent: no partner yet")
            dropped = app.link.client_id
            # As when the server drops a silent entry: the window is told, and enters again.
            left = await call(agent, "leave_queue", client_id=dropped)
            assert left["success"], left
            await shown(app, "entering it again")
            await shown(app, "Waiting for a partner (position 1)…", times=2)
            assert app.link.client_id not in (None, dropped)

            await type_line(app, pilot, "/leave")
            await shown(app, "You left the queue")
            later = await enter(agent, "Agent")
            assert later["status"] == "waiting" and later["position"] == 1, later

        # A window entering while the agent waits is matched at once.
        second = ChatApp(Seat(stdio_target(db_url), None, "Second"))
        async with second.run_test():
            await shown(second, "Matched with Agent.")
            room = second.link.room_id
            await shown(second, f"You are in room {room} as Second")
            found = await call(agent, "wait_for_match", client_id=later["client_id"], timeout=30)
            assert found["room_id"] == room and found["partner"]["display_name"] == "Second"


async def test_leave_while_waiting_ends_quietly(http_server: ServerProcess) -> None:
    app = ChatApp(Seat(http_server.url, None, "Person"))
    async with app.run_test() as pilot:
        await shown(app, "Waiting for a partner (position 1)…")
        await type_line(app, pilot, "/leave")
        await shown(app, "You left the queue.")
        await link_finished(app)
        assert app.link.connections == 1
        lines = app.transcript.lines()
        assert count(lines, "Lost the connection") == count(lines, "Reconnected") == 0
    async with Client(http_server.url) as agent:
        later = await enter(agent, "Agent")
        assert later["status"] == "waiting" and later["position"] == 1, later


async def test_next_after_a_chat_ends_waits_for_someone_else_with_the_same_interests(
    http_server: ServerProcess,
) -> None:
    app = ChatApp(Seat(http_server.url, None, "Person", interests=("chess", "go")))
    async with app.run_test() as pilot, Client(http_server.url) as agent:
        await shown(app, "Waiting for a partner (position 1)…")
        first = await enter(agent, "Agent", "go")
        assert first["status"] == "matched", first
        await shown(app, "Agent was matched with you: you share an interest, go. Say hello!")
        await call(agent, "leave_chat", room_id=first["room_id"], client_id=first["client_id"])
        await shown(app, "The chat has ended. /next to chat with someone else")
        old_link = app.link

        await type_line(app, pilot, "/next")
        await shown(app, "Looking for someone else to chat with…")
        await shown(app, "Waiting for a partner (position 1)…", times=2)
        assert app.link is not old_link
        second = await enter(agent, "Second", "chess")
        assert second["status"] == "matched" and second["partner"]["display_name"] == "Person"
        lines = await shown(app, "Second was matched with you: you share an interest, chess.")
        assert app.link.room_id == second["room_id"] != first["room_id"]
        await shown(app, f"You are in room {second['room_id']} as Person")
        await call(
            agent,
            "send_message",
            room_id=second["room_id"],
            message="hi",
            client_id=second["client_id"],
        )
        await shown(app, "Second  hi")
        assert count(lines, "Lost the connection") == 0, lines
