"""`mcp-chat chat`, the command itself, in a real terminal (tmux): its arguments reach the
window and the room, /help lists the commands, Ctrl+Q leaves the room and closes."""

from __future__ import annotations

import asyncio
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from mcp import Client

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


class Terminal:
    """A tmux server of the test's own (its own socket) running one command in an 80x30
    terminal; when the command ends the pane says `exited with N`."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"mcp-chat-test-{secrets.token_hex(4)}"
        shell = f"{shlex.join(command)}; echo exited with $?; exec cat"
        self.tmux("new-session", "-d", "-x", "80", "-y", "30", "sh", "-c", shell)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J")

    async def shows(self, fragment: str) -> str:
        """The screen, once it shows `fragment` (a terminal says nothing when it changes:
        this reads it again every 50 ms)."""
        async with asyncio.timeout(30):
            while fragment not in (screen := self.screen()):
                await asyncio.sleep(0.05)
        return screen

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


async def test_the_chat_command_joins_with_its_arguments_helps_and_quits_on_ctrl_q(
    http_server: ServerProcess, terminals: list[Terminal]
) -> None:
    command = [sys.executable, "-m", "mcp_chat", "chat", "--url", http_server.url]
    command += ["--room", "standup", "--name", "Ada", "--capacity", "3"]
    window = Terminal(command)
    terminals.append(window)
    await window.shows("You are in room standup as Ada")

    async with Client(http_server.url) as agent:
        joined = await call(agent, "join_room", room_id="standup", display_name="Agent")
        assert joined["success"] and not joined["created"], joined
        assert joined["capacity"] == 3  # --capacity made the room
        who = await call(
            agent, "list_participants", room_id="standup", client_id=joined["client_id"]
        )
        assert [m["display_name"] for m in who["members"]] == ["Ada", "Agent"]

        window.keys("/help", "Enter")
        screen = await window.shows("/help      this list")
        assert "/who       who is in the room" in screen

        window.keys("C-q")
        await window.shows("exited with 0")
        # It left the room on its way out: the agent is told.
        agent_id = joined["client_id"]
        while True:
            heard = await call(
                agent, "wait_for_message", room_id="standup", client_id=agent_id, timeout=30
            )
            kinds = [(m["kind"], m["sender"]) for m in heard["messages"]]
            if ("left", "Ada") in kinds:
                break
            assert not heard["timed_out"], heard


async def test_the_chat_command_sizes_a_new_room_only(
    http_server: ServerProcess, terminals: list[Terminal]
) -> None:
    """--capacity sizes a room the window creates; an existing room keeps its own."""
    async with Client(http_server.url) as agent:
        await join(agent, "pair", "Agent")  # a room of two, made first
        command = [sys.executable, "-m", "mcp_chat", "chat", "--url", http_server.url]
        window = Terminal([*command, "--room", "pair", "--name", "Bo", "--capacity", "5"])
        terminals.append(window)
        await window.shows("You are in room pair as Bo")
        rooms = await call(agent, "list_rooms")
        assert [(r["room_id"], r["capacity"]) for r in rooms["rooms"]] == [("pair", 2)]
