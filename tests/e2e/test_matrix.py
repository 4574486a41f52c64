"""Every tool, through the official SDK client, on each protocol family (the handshake,
2025-11-25, and 2026-07-28) and each transport (stdio processes sharing a SQLite file, and
streamable HTTP): a figure or a test on one of the four says nothing about the others.

Each test runs four times, its id naming the transport and the family, e.g.
`test_every_tool[stdio-handshake-2025-11-25]`: every tool (join_room, list_rooms,
list_participants, send_message and its retry, wait_for_message woken and re-read,
get_messages, leave_chat, enter_queue, wait_for_match woken, leave_queue), progress on both
waits, the family's subscriptions (resources/subscribe or subscriptions/listen), the
structured failure, and kill -9 losing nothing acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client as FastMCPClient
from fastmcp.exceptions import ToolError
from mcp import Client, StdioServerParameters, types
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import ServerProcess, stdio_params
from tests.e2e.helpers import Updates, call, join, progress_wait, texts

pytestmark = pytest.mark.anyio

TRANSPORTS = ["stdio", "http"]
FAMILIES = {"handshake-2025-11-25": "legacy", "modern-2026-07-28": "2026-07-28"}
"""Test id: the SDK client's mode."""
KEEPALIVE = {"MCP_CHAT_KEEPALIVE": "0.05"}
"""A progress notification every 50 ms while a wait blocks: the first one says it blocks."""

matrix = pytest.mark.parametrize(
    ("transport", "mode"),
    [
        pytest.param(t, mode, id=f"{t}-{family}")
        for t in TRANSPORTS
        for family, mode in FAMILIES.items()
    ],
)


class Place:
    """Where the clients of one case connect: `mcp-chat stdio` processes (each client its
    own) on one SQLite file, or one `mcp-chat serve`. `kill()` is kill -9 of every server
    process; the next client starts afresh on the same file."""

    def __init__(self, transport: str, tmp_path: Path) -> None:
        self.transport, self.tmp_path = transport, tmp_path
        self.db_url = f"sqlite:///{tmp_path / 'matrix.db'}"
        self.server: ServerProcess | None = None
        self.pidfiles: list[Path] = []

    def target(self) -> Any:
        if self.transport == "http":
            if self.server is None:
                self.server = ServerProcess(self.db_url, env=KEEPALIVE)
            return self.server.url
        params = stdio_params(self.db_url)
        pidfile = self.tmp_path / f"stdio-{len(self.pidfiles)}.pid"
        self.pidfiles.append(pidfile)
        # The shell writes its pid and becomes the server (exec), so that the test can kill it.
        return StdioServerParameters(
            command="/bin/sh",
            args=["-c", f'echo $$ > "{pidfile}" && exec "$0" "$@"', sys.executable, *params.args],
            env={**(params.env or {}), **KEEPALIVE},
        )

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server = None
        for pidfile in self.pidfiles:
            with suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            assert "Traceback" not in self.server.log, self.server.log


@asynccontextmanager
async def place(transport: str, tmp_path: Path) -> AsyncIterator[Place]:
    where = Place(transport, tmp_path)
    try:
        yield where
    finally:
        where.stop()


@matrix
async def test_every_tool(transport: str, mode: str, tmp_path: Path) -> None:
    async with place(transport, tmp_path) as where, AsyncExitStack() as stack:
        one = await stack.enter_async_context(Client(where.target(), mode=mode))
        two = await stack.enter_async_context(Client(where.target(), mode=mode))
        expected = "2025-11-25" if mode == "legacy" else mode
        assert one.session.protocol_version == expected

        # join_room, list_rooms, list_participants
        made = await call(one, "join_room", room_id="m", display_name="Ann", capacity=3)
        assert made["success"] and made["created"] and made["capacity"] == 3
        bob = await join(two, "m", "Bob")
        cat = await join(one, "m", "Cat")
        listed = await call(two, "list_rooms")
        assert [(r["room_id"], r["members"]) for r in listed["rooms"]] == [("m", 3)]
        who = await call(two, "list_participants", room_id="m", client_id=bob)
        assert [m["display_name"] for m in who["members"]] == ["Ann", "Bob", "Cat"]
        assert [m["presence"] for m in who["members"]] == ["present"] * 3
        caught_up = await call(two, "wait_for_message", room_id="m", client_id=bob, timeout=1)
        assert [(m["kind"], m["sender"]) for m in caught_up["messages"]][-1] == ("joined", "Cat")

        # wait_for_message, blocked (its progress says so) and woken by a send from the other
        # client; send_message and its retry; a re-read; get_messages
        woken, _ = await progress_wait(two, "wait_for_message", room_id="m", client_id=bob)
        said = {"room_id": "m", "client_id": made["client_id"], "message": "hello"}
        sent = await call(one, "send_message", **said, message_key="k1")
        again = await call(one, "send_message", **said, message_key="k1")
        assert again["duplicate"] and again["seq"] == sent["seq"]
        heard = await woken
        assert texts(heard) == ["hello"] and not heard["timed_out"]
        assert heard["messages"][-1]["seq"] == sent["seq"]
        reread = await call(
            two, "wait_for_message", room_id="m", client_id=bob, timeout=5, after=sent["seq"] - 1
        )
        assert texts(reread) == ["hello"]
        page = await call(one, "get_messages", room_id="m", client_id=cat, limit=2)
        assert [m["seq"] for m in page["messages"]] == [sent["seq"] - 1, sent["seq"]]
        assert page["has_older"]

        # leave_chat: the others hear of it; the room of three lives on
        left = await call(one, "leave_chat", room_id="m", client_id=cat)
        assert left["success"] and not left["room_ended"]
        heard = await call(two, "wait_for_message", room_id="m", client_id=bob, timeout=5)
        assert [(m["kind"], m["sender"]) for m in heard["messages"]] == [("left", "Cat")]

        # enter_queue, wait_for_match (blocked, its progress says so, then woken by a match
        # from the other client), leave_queue
        waiting = await call(one, "enter_queue", display_name="Dee", interests=["go"])
        assert waiting["status"] == "waiting"
        matched, _ = await progress_wait(
            one, "wait_for_match", client_id=waiting["client_id"], timeout=60
        )
        partner = await call(two, "enter_queue", display_name="Eve", interests=["go"])
        assert partner["status"] == "matched"
        got = await matched
        assert got["status"] == "matched" and got["room_id"] == partner["room_id"]
        quitter = await call(two, "enter_queue", display_name="Fay")
        assert quitter["status"] == "waiting"
        gone = await call(two, "leave_queue", client_id=quitter["client_id"])
        assert gone["success"]
        after = await call(two, "wait_for_match", client_id=quitter["client_id"], timeout=1)
        assert after["success"] is False and after["code"] == "not_in_queue"


@matrix
async def test_subscriptions_of_the_family(transport: str, mode: str, tmp_path: Path) -> None:
    """The handshake family subscribes with resources/subscribe and is told by
    notifications/resources/updated; 2026-07-28 opens a subscriptions/listen stream."""
    updates = Updates()
    async with place(transport, tmp_path) as where, AsyncExitStack() as stack:
        one = await stack.enter_async_context(
            Client(where.target(), mode=mode, message_handler=updates)
        )
        two = await stack.enter_async_context(Client(where.target(), mode=mode))
        ann = await call(one, "join_room", room_id="s", display_name="Ann")
        bob = await join(two, "s", "Bob")
        uri = ann["transcript_uri"]

        async def say(text: str) -> None:
            assert (await call(two, "send_message", room_id="s", client_id=bob, message=text))[
                "success"
            ]

        async with asyncio.timeout(30):
            if mode == "legacy":
                await one.subscribe_resource(uri)
                await say("one")
                assert await updates.uris.get() == uri
                with pytest.raises(MCPError):
                    await one.subscribe_resource("chat://rooms/s/mcr_nope/messages")
            else:
                async with one.listen(resource_subscriptions=[uri]) as stream:
                    await say("one")
                    assert getattr(await anext(stream), "uri", None) == uri
                with pytest.raises(MCPError):
                    async with one.listen(resource_subscriptions=["chat://rooms/s/mcr_x/messages"]):
                        pass
        read = await one.read_resource(uri)
        content = read.contents[0]
        assert isinstance(content, types.TextResourceContents) and '"one"' in content.text


@matrix
async def test_a_failure_is_a_tool_error_with_its_structured_reason(
    transport: str, mode: str, tmp_path: Path
) -> None:
    async with place(transport, tmp_path) as where, Client(where.target(), mode=mode) as one:
        ok = await one.call_tool("join_room", {"room_id": "e", "display_name": "Ann"})
        assert ok.is_error is False
        for tool, args, code in (
            (
                "send_message",
                {"room_id": "e", "client_id": "mcc_nobody", "message": "hi"},
                "unknown_client",
            ),
            (
                "wait_for_message",
                {"room_id": "e", "client_id": "mcc_nobody", "timeout": 1},
                "unknown_client",
            ),
            ("join_room", {"room_id": "-bad-", "display_name": "Ann"}, "invalid_argument"),
            ("send_message", {"room_id": "e"}, "invalid_argument"),  # missing arguments
        ):
            failed = await one.call_tool(tool, args)
            assert failed.is_error is True, (tool, failed)
            data = failed.structured_content
            assert data is not None and data["success"] is False and data["code"] == code


@matrix
async def test_kill_9_loses_nothing_acknowledged(transport: str, mode: str, tmp_path: Path) -> None:
    async with place(transport, tmp_path) as where:
        stack = AsyncExitStack()
        one = await stack.enter_async_context(Client(where.target(), mode=mode))
        two = await stack.enter_async_context(Client(where.target(), mode=mode))
        ann = await join(one, "k", "Ann")
        bob = await join(two, "k", "Bob")
        for i in range(3):
            sent = await call(one, "send_message", room_id="k", client_id=ann, message=f"m{i}")
            assert sent["success"] and sent["seq"] == 3 + i  # after the two 'joined'
        read = await call(two, "wait_for_message", room_id="k", client_id=bob, timeout=1)
        assert texts(read) == ["m0", "m1", "m2"]
        last = await call(one, "send_message", room_id="k", client_id=ann, message="unread")
        assert last["success"]
        where.kill()
        with suppress(Exception, asyncio.CancelledError):  # their servers died under them
            await stack.aclose()

        async with Client(where.target(), mode=mode) as three:
            # The same client ids, the same read position: only the unread message is new.
            rest = await call(three, "wait_for_message", room_id="k", client_id=bob, timeout=1)
            assert texts(rest) == ["unread"]
            more = await call(three, "send_message", room_id="k", client_id=ann, message="on")
            assert more["success"] and more["seq"] == last["seq"] + 1
            history = await call(three, "get_messages", room_id="k", client_id=bob)
            assert texts(history) == ["m0", "m1", "m2", "unread", "on"]


async def test_fastmcp_clients_raise_on_a_failure(tmp_path: Path) -> None:
    """`fastmcp.Client.call_tool(raise_on_error=True)`, its default, raises for a failure."""
    server = ServerProcess(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        async with FastMCPClient(server.url) as client:
            with pytest.raises(ToolError, match="client_id is not known"):
                await client.call_tool(
                    "send_message", {"room_id": "e", "client_id": "mcc_x", "message": "hi"}
                )
    finally:
        server.stop()
