"""Mentions through real MCP clients: over streamable HTTP on both protocol families, and
over stdio. A mentioned message carries `mentions`; `wait_for_message(mentions_only=true)`
returns up to the first message that mentions the caller, and no further."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest
from mcp import Client

from tests.e2e.conftest import MODES, ServerProcess, stdio_params
from tests.e2e.helpers import call, texts

pytestmark = pytest.mark.anyio


async def joined(client: Client, room: str, name: str) -> tuple[str, str]:
    """Join; the client_id and the participant_id."""
    got = await call(client, "join_room", room_id=room, display_name=name, capacity=3)
    assert got["success"], got
    return got["client_id"], got["participant_id"]


async def mentions_and_mentions_only(ann_side: Client, bob_side: Client) -> tuple[str, str]:
    """Ann mentions Bob Lee in room 'team'; Bob's client_id and participant_id."""
    ann, _ = await joined(ann_side, "team", "Ann")
    bob, bob_pid = await joined(bob_side, "team", "Bob Lee")

    async def say(text: str) -> None:
        sent = await call(ann_side, "send_message", room_id="team", client_id=ann, message=text)
        assert sent["success"], sent

    async def wait_mentioned(timeout: float = 60) -> dict[str, Any]:
        got = await call(
            bob_side,
            "wait_for_message",
            room_id="team",
            client_id=bob,
            timeout=timeout,
            mentions_only=True,
        )
        assert got["success"], got
        return got

    for text in ("plain", "@bob lee, look", "after"):
        await say(text)
    got = await wait_mentioned()
    assert texts(got) == ["plain", "@bob lee, look"] and got["unread"] == 1
    said = {m["message"]: m for m in got["messages"]}
    assert said["@bob lee, look"]["mentions"] == [bob_pid]
    assert "mentions" not in said["plain"]  # left out when it mentions nobody

    # "after" is unread but mentions nobody: this wait returns only with the next mention.
    waiting = asyncio.create_task(wait_mentioned())
    await say("@Bob Lee again")
    got = await waiting
    assert texts(got) == ["after", "@Bob Lee again"] and got["unread"] == 0

    page = await call(bob_side, "get_messages", room_id="team", client_id=bob)
    assert [m.get("mentions") for m in page["messages"] if not m["system"]] == [
        None,
        [bob_pid],
        None,
        [bob_pid],
    ]
    return bob, bob_pid


@pytest.mark.parametrize("mode", MODES)
async def test_mentions_over_http_and_on_the_page(http_server: ServerProcess, mode: str) -> None:
    async with (
        Client(http_server.url, mode=mode) as a,
        Client(http_server.url, mode=mode) as b,
        httpx2.AsyncClient(base_url=http_server.base, timeout=30) as page,
    ):
        bob, bob_pid = await mentions_and_mentions_only(a, b)
        # The page's history and its event stream show them too.
        history = await page.get("/api/rooms/team/messages", headers={"X-Client-Id": bob})
        shown = [m.get("mentions") for m in history.json()["messages"] if not m["system"]]
        assert shown == [None, [bob_pid], None, [bob_pid]]
        async with page.stream(
            "GET", "/api/rooms/team/events?after=0", headers={"X-Client-Id": bob}
        ) as events:
            async for line in events.aiter_lines():
                if line.startswith("data: "):
                    streamed = json.loads(line[6:])["messages"]
                    break
        assert [m.get("mentions") for m in streamed if not m["system"]] == shown


@pytest.mark.parametrize("mode", MODES)
async def test_mentions_over_stdio(db_url: str, mode: str) -> None:
    params = stdio_params(db_url)
    async with Client(params, mode=mode) as a, Client(params, mode=mode) as b:
        await mentions_and_mentions_only(a, b)
