"""What the README promises of a server process, each through a real transport: the limits'
codes, MCP_CHAT_FAST_CALLS=false, retention by --message-max-age and --idle-max-age."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from mcp_chat.messages import stamp
from mcp_chat.stores import open_store
from tests.e2e.conftest import ServerProcess, stdio_params
from tests.e2e.helpers import call, join, progress_wait, texts
from tests.stores_support import DAY1, DAY2, at, enter_at, text

pytestmark = pytest.mark.anyio

LIMITS = (
    "--max-rooms", "1",
    "--max-message-bytes", "16",
    "--rate-messages", "2",
    "--rate-window", "3600",
    "--max-waits", "1",
)  # fmt: skip


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_each_limit_answers_its_code_through_a_real_transport(
    transport: str, db_url: str
) -> None:
    async with AsyncExitStack() as stack:
        if transport == "http":
            server = ServerProcess(db_url, *LIMITS, env={"MCP_CHAT_KEEPALIVE": "0.05"})
            stack.callback(server.stop)
            target: Any = server.url
        else:
            target = stdio_params(db_url, *LIMITS)
            target.env = {**(target.env or {}), "MCP_CHAT_KEEPALIVE": "0.05"}
        client = await stack.enter_async_context(Client(target))
        other = await stack.enter_async_context(Client(target))
        ann = await join(client, "only", "Ann")
        bob = await join(other, "only", "Bob")

        def refused(result: dict[str, Any], code: str) -> None:
            assert result["success"] is False and result["code"] == code, result
            assert result["error"].endswith("."), result  # a sentence saying what to do

        refused(
            await call(client, "join_room", room_id="second", display_name="Cy"), "too_many_rooms"
        )
        said = {"room_id": "only", "client_id": ann}
        refused(await call(client, "send_message", **said, message="x" * 17), "message_too_large")
        for i in range(2):
            assert (await call(client, "send_message", **said, message=f"m{i}"))["success"]
        limited = await call(client, "send_message", **said, message="m2")
        refused(limited, "rate_limited")
        assert "second" in limited["error"]  # says how long to wait

        read = await call(other, "wait_for_message", room_id="only", client_id=bob, timeout=1)
        assert texts(read) == ["m0", "m1"]
        waiting, _ = await progress_wait(other, "wait_for_message", room_id="only", client_id=bob)
        refused(
            await call(other, "wait_for_message", room_id="only", client_id=bob, timeout=1),
            "too_many_waits",
        )
        assert (await call(client, "leave_chat", room_id="only", client_id=ann))["success"]
        assert [m["kind"] for m in (await waiting)["messages"]] == ["left"]


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.mark.parametrize("fast", ["true", "false"])
async def test_fast_calls_can_be_turned_off(fast: str, db_url: str) -> None:
    """A 2026-07-28 wait that blocks: the fast path streams its answer at once; the SDK, which
    answers alone with MCP_CHAT_FAST_CALLS=false, answers in JSON. The result is the same."""
    server = ServerProcess(db_url, env={"MCP_CHAT_FAST_CALLS": fast})
    try:
        async with Client(server.url) as client, httpx2.AsyncClient() as http:
            me = await join(client, "r", "Ann")
            await call(client, "wait_for_message", room_id="r", client_id=me, timeout=1)
            arguments = {"room_id": "r", "client_id": me, "timeout": 1}
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "_meta": MODERN_META,
                    "name": "wait_for_message",
                    "arguments": arguments,
                },
            }
            answer = await http.post(
                server.url,
                content=json.dumps(body),
                headers={
                    "Accept": "application/json, text/event-stream",
                    "Content-Type": "application/json",
                    "Mcp-Protocol-Version": "2026-07-28",
                    "Mcp-Method": "tools/call",
                    "Mcp-Name": "wait_for_message",
                },
                timeout=30,
            )
        assert answer.status_code == 200
        kind = answer.headers["content-type"]
        assert kind.startswith("text/event-stream" if fast == "true" else "application/json")
        payload = answer.text
        if kind.startswith("text/event-stream"):
            payload = [ln for ln in payload.split("\n") if ln.startswith("data: ")][-1][6:]
        result = json.loads(payload)["result"]["structuredContent"]
        assert result["success"] and result["timed_out"] and result["messages"] == []
    finally:
        server.stop()


async def test_retention_flags_remove_old_messages_and_idle_rooms(tmp_path: Path) -> None:
    """A file with an idle room (its last word on day two) and a room whose first message is
    old and whose last is new; served with --message-max-age 3600 --idle-max-age 86400, the
    idle room and the old message go, the rest stays."""
    db_url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(db_url)
    await store.start(lambda _: None)
    try:
        idle = await enter_at(store, "idle", "B", DAY1)
        await store.append(idle.participant_id, at(text(idle, "day two"), DAY2))
        talk = await enter_at(store, "talk", "A", DAY1)
        await store.append(talk.participant_id, at(text(talk, "old"), DAY1))
        now = stamp(datetime.now(UTC) - timedelta(seconds=5))
        await store.append(talk.participant_id, at(text(talk, "new"), now))
    finally:
        await store.close()

    server = ServerProcess(
        db_url,
        "--message-max-age",
        "3600",
        "--idle-max-age",
        "86400",
        "--retention-interval",
        "0.05",
    )
    try:
        line = await asyncio.to_thread(server.wait_logged, "retention removed")
        # idle: its 'joined' and 'day two'; talk: its 'joined' (day one) and 'old'
        assert "messages=4 rooms=1" in line, line
        async with Client(server.url) as client:
            rooms = await call(client, "list_rooms")
            assert [r["room_id"] for r in rooms["rooms"]] == ["talk"]
            reader = await join(client, "talk", "Cy")
            history = await call(client, "get_messages", room_id="talk", client_id=reader)
            assert texts(history) == ["new"]
            again = await call(client, "join_room", room_id="idle", display_name="Dee")
            assert again["created"], again  # the idle room was removed: this one is new
    finally:
        server.stop()


async def test_a_room_gone_under_its_member_is_room_not_found(tmp_path: Path) -> None:
    """room_not_found is reached only in a race: the room removed (by retention, say) between
    the check of the caller's seat and the read of the room. The test removes the room's row
    from the SQLite file itself between two calls, and asks through the MCP client and the
    page's endpoint."""
    db = tmp_path / "race.db"
    server = ServerProcess(f"sqlite:///{db}")
    try:
        async with Client(server.url) as client, httpx2.AsyncClient() as http:
            ann = await join(client, "short", "Ann")
            assert (await call(client, "list_participants", room_id="short", client_id=ann))[
                "success"
            ]
            with sqlite3.connect(db) as raw:
                assert raw.execute("DELETE FROM rooms").rowcount == 1
            raw.close()
            lost = await call(client, "list_participants", room_id="short", client_id=ann)
            assert lost["success"] is False and lost["code"] == "room_not_found", lost
            assert "short" in lost["error"]
            page = await http.get(
                f"{server.base}/api/rooms/short/members", headers={"X-Client-Id": ann}
            )
            assert page.status_code == 404 and page.json()["code"] == "room_not_found"
    finally:
        server.stop()
