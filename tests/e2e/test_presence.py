"""Random pairing and presence across real processes and transports."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp import Client

from tests.e2e.conftest import ServerProcess, stdio_params
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio


async def events_until(client: Client, room: str, client_id: str, kind: str) -> list[Any]:
    """Wait for messages until one of `kind` arrives; every wait blocks, none polls."""
    seen: list[Any] = []
    while not any(m["kind"] == kind for m in seen):
        got = await call(client, "wait_for_message", room_id=room, client_id=client_id, timeout=30)
        assert got["success"] and not got["timed_out"], got
        seen += got["messages"]
    return seen


async def test_many_clients_entering_the_queue_at_once(http_server: ServerProcess) -> None:
    async def enter(i: int) -> dict[str, Any]:
        async with Client(http_server.url) as c:
            entered = await call(c, "enter_queue", display_name=f"P{i}")
            if entered["status"] == "waiting":
                return await call(c, "wait_for_match", client_id=entered["client_id"], timeout=5)
            return entered

    results = await asyncio.gather(*(enter(i) for i in range(15)))
    rooms: dict[str, list[str]] = {}
    for r in results:
        assert r["success"], r
        if r["status"] == "matched":
            rooms.setdefault(r["room_id"], []).append(r["participant_id"])
    assert sorted(len(m) for m in rooms.values()) == [2] * 7
    assert sum(r["status"] == "waiting" for r in results) == 1


@pytest.mark.parametrize("mode", ["legacy"])
async def test_closing_an_http_session_tells_the_room(
    http_server: ServerProcess, mode: str
) -> None:
    async with Client(http_server.url, mode=mode) as stays:
        alice = await join(stays, "presence", "Alice")
        async with Client(http_server.url, mode=mode) as leaves:
            bob = await join(leaves, "presence", "Bob")
        events = await events_until(stays, "presence", alice, "disconnected")
        assert [(m["kind"], m["sender"]) for m in events][-1] == ("disconnected", "Bob")
        who = await call(stays, "list_participants", room_id="presence", client_id=alice)
        assert [m["presence"] for m in who["members"]] == ["present", "gone"]
        # Bob comes back with his client_id on a new session and carries on; Alice is told.
        async with Client(http_server.url, mode=mode) as returns:
            back = await call(
                returns, "send_message", room_id="presence", message="back!", client_id=bob
            )
            assert back["success"]
            events = await events_until(stays, "presence", alice, "returned")
            assert [(m["kind"], m["sender"]) for m in events if m["kind"] != "message"] == [
                ("returned", "Bob")
            ]
            who = await call(stays, "list_participants", room_id="presence", client_id=alice)
            assert [m["presence"] for m in who["members"]] == ["present", "present"]


async def test_a_stdio_client_that_exits_is_reported_gone(db_url: str) -> None:
    params = stdio_params(db_url)
    async with Client(params) as stays:
        ann = await call(stays, "enter_queue", display_name="Ann")
        async with Client(params) as leaves:
            ben = await call(leaves, "enter_queue", display_name="Ben")
            assert ben["status"] == "matched"
        # Ben's process has ended; Ann's process learns of it through the shared file.
        room = ben["room_id"]
        events = await events_until(stays, room, ann["client_id"], "disconnected")
        assert [(m["kind"], m["sender"]) for m in events] == [
            ("matched", "Ben"),
            ("disconnected", "Ben"),
        ]
