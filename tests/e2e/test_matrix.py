"""Every tool, through the official SDK client, on each protocol family (the handshake,
2025-11-25, and 2026-07-28) and each transport (stdio processes sharing a SQLite file, and
streamable HTTP): a figure or a test on one of the four says nothing about the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client as FastMCPClient
from fastmcp.exceptions import ToolError
from mcp import Client

from tests.e2e.conftest import MODES, ServerProcess, stdio_params
from tests.e2e.helpers import call, join, texts

pytestmark = pytest.mark.anyio

TRANSPORTS = ["stdio", "http"]


@asynccontextmanager
async def two_clients(transport: str, mode: str, tmp_path: Path) -> AsyncIterator[list[Client]]:
    """Two clients on one store: two `mcp-chat stdio` processes on one SQLite file, or two
    sessions with one `mcp-chat serve`."""
    db_url = f"sqlite:///{tmp_path / 'matrix.db'}"
    async with AsyncExitStack() as stack:
        if transport == "stdio":
            targets: list[Any] = [stdio_params(db_url), stdio_params(db_url)]
        else:
            server = ServerProcess(db_url)
            stack.callback(server.stop)
            targets = [server.url, server.url]
        yield [await stack.enter_async_context(Client(t, mode=mode)) for t in targets]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_tool(transport: str, mode: str, tmp_path: Path) -> None:
    async with two_clients(transport, mode, tmp_path) as (one, two):
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

        # send_message (and its retry), wait_for_message (and a re-read), get_messages
        said = {"room_id": "m", "client_id": made["client_id"], "message": "hello"}
        sent = await call(one, "send_message", **said, message_key="k1")
        again = await call(one, "send_message", **said, message_key="k1")
        assert again["duplicate"] and again["seq"] == sent["seq"]
        heard = await call(two, "wait_for_message", room_id="m", client_id=bob, timeout=5)
        assert texts(heard) == ["hello"] and heard["messages"][-1]["seq"] == sent["seq"]
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

        # enter_queue, wait_for_match (blocked, then woken by a match from the other client),
        # leave_queue
        waiting = await call(one, "enter_queue", display_name="Dee", interests=["go"])
        assert waiting["status"] == "waiting"
        matched = asyncio.create_task(
            call(one, "wait_for_match", client_id=waiting["client_id"], timeout=30)
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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failure_is_a_tool_error_with_its_structured_reason(
    transport: str, mode: str, tmp_path: Path
) -> None:
    async with two_clients(transport, mode, tmp_path) as (one, _):
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
