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


SILENCE = {
    "MCP_CHAT_HEARTBEAT": "0.05",
    "MCP_CHAT_AWAY_AFTER": "0.5",
    "MCP_CHAT_GONE_AFTER": "4",
}
"""Signs of life written (and the silent swept) every 50 ms; away after half a second of
silence, gone after four."""


async def presences(client: Client, room: str, client_id: str) -> dict[str, str]:
    who = await call(client, "list_participants", room_id=room, client_id=client_id)
    return {m["display_name"]: m["presence"] for m in who["members"]}


async def test_on_2026_07_28_the_silent_are_away_then_gone_and_marked_once_across_instances(
    redis_url: str,
) -> None:
    """2026-07-28 has no sessions: a participant who says nothing is away, then gone (the
    room hears 'disconnected'), through two instances on one Redis whose sweeps both run;
    the room hears it once. Then a word from them is 'returned'."""
    a = ServerProcess(redis_url, env=SILENCE)
    b = ServerProcess(redis_url, env=SILENCE)
    try:
        async with Client(a.url) as silent, Client(b.url) as talker:
            assert silent.session.protocol_version == "2026-07-28"
            ann = await join(silent, "quiet", "Ann")
            bob = await join(talker, "quiet", "Bob")
            async with asyncio.timeout(30):  # Bob asks (a sign of life) until Ann is away
                while (seen := await presences(talker, "quiet", bob))["Ann"] != "away":
                    assert seen == {"Ann": "present", "Bob": "present"}, seen
                    await asyncio.sleep(0.05)
            events = await events_until(talker, "quiet", bob, "disconnected")
            assert [(m["kind"], m["sender"]) for m in events if m["system"]][-1] == (
                "disconnected",
                "Ann",
            )
            assert [m["kind"] for m in events].count("disconnected") == 1
            assert await presences(talker, "quiet", bob) == {"Ann": "gone", "Bob": "present"}
            # Twenty more sweeps on each instance (a wait of one second) add nothing.
            more = await call(talker, "wait_for_message", room_id="quiet", client_id=bob, timeout=1)
            assert more["timed_out"] and more["messages"] == [], more
            back = await call(silent, "send_message", room_id="quiet", client_id=ann, message="hi")
            assert back["success"], back
            events = await events_until(talker, "quiet", bob, "message")
            assert [(m["kind"], m["sender"]) for m in events] == [
                ("returned", "Ann"),
                ("message", "Ann"),
            ]
    finally:
        a.stop()
        b.stop()
