"""What an attack on a running server got through, tried again over real HTTP on 127.0.0.1
with both protocol families: each of these failed before its fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client

from tests.e2e.conftest import MODES, ServerProcess
from tests.e2e.helpers import RawSession, call, join, texts

pytestmark = pytest.mark.anyio


def refused_as_invalid(answer: dict[str, Any], mode: str) -> bool:
    """The tool's invalid_argument, or, where the SDK parses the request (the handshake
    family), its JSON-RPC parse error: it refuses a lone surrogate escape outright."""
    if "rpc_error" in answer and mode == "legacy":
        return bool(answer["rpc_error"]["code"] == -32700)
    return answer["success"] is False and answer["code"] == "invalid_argument"


@pytest.fixture
def memory_server() -> Iterator[ServerProcess]:
    server = ServerProcess("memory://", "--rate-joins", "0")
    yield server
    server.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_a_lone_surrogate_is_refused_and_the_messages_around_it_arrive(
    memory_server: ServerProcess, mode: str
) -> None:
    room = f"poison-{mode}"
    async with (
        Client(memory_server.url, mode=mode) as client,
        httpx2.AsyncClient() as http,
        RawSession(http, memory_server.url, mode) as raw,
    ):
        alice = await join(client, room, "Alice")
        bob = await join(client, room, "Bob")
        await call(client, "send_message", room_id=room, client_id=alice, message="one")
        bad = {"room_id": room, "client_id": alice, "message": "bad \ud800 text"}
        for tool, arguments in (
            ("send_message", bad),
            ("send_message", {**bad, "message": "ok", "message_key": "k\udc00"}),
            ("enter_queue", {"display_name": "Eve", "interests": ["go\ud800"]}),
            ("join_room", {"display_name": "Eve", "room_id": "x", "invite": "i\ud800"}),
            ("join_room", {"display_name": "Ev\ud800e", "room_id": "x"}),
        ):
            assert refused_as_invalid(await raw.call_tool(tool, arguments), mode), (tool, arguments)
        await call(client, "send_message", room_id=room, client_id=alice, message="two")
        got = await call(client, "wait_for_message", room_id=room, client_id=bob, timeout=5)
        assert texts(got) == ["one", "two"]
        history = await call(client, "get_messages", room_id=room, client_id=alice)
        assert [m["message"] for m in history["messages"] if not m["system"]] == ["one", "two"]
        page = await http.get(
            f"{memory_server.base}/api/rooms/{room}/messages", headers={"X-Client-Id": bob}
        )
        assert page.status_code == 200


@pytest.mark.parametrize("mode", MODES)
async def test_an_invite_does_not_open_a_public_room_made_first(
    memory_server: ServerProcess, mode: str
) -> None:
    room = f"team-secret-{mode}"
    async with (
        Client(memory_server.url, mode=mode) as spy,
        Client(memory_server.url, mode=mode) as team,
    ):
        await join(spy, room, "Spy")
        refused = await call(
            team, "join_room", room_id=room, display_name="Ann", invite="our-invite"
        )
        assert refused["success"] is False and refused["code"] == "room_not_private"


@pytest.mark.parametrize("mode", MODES)
async def test_a_room_left_at_once_can_be_joined_again(
    memory_server: ServerProcess, mode: str
) -> None:
    room = f"lobby-{mode}"
    async with Client(memory_server.url, mode=mode) as client:
        spoiler = await join(client, room, "Spoiler")
        left = await call(client, "leave_chat", room_id=room, client_id=spoiler)
        assert left["room_ended"]
        again = await call(client, "join_room", room_id=room, display_name="Ann")
        assert again["success"] and again["created"]
        assert [m["display_name"] for m in again["members"]] == ["Ann"]


async def test_joins_from_one_address_are_limited(db_url: str) -> None:
    server = ServerProcess(db_url, "--rate-joins", "3", "--rate-window", "3600")
    try:
        async with (
            Client(server.url, mode="legacy") as legacy,
            Client(server.url, mode="2026-07-28") as modern,
            httpx2.AsyncClient() as http,
        ):
            await join(legacy, "a", "A")
            await join(modern, "b", "B")
            page = await http.post(f"{server.base}/api/join", json={"display_name": "C"})
            assert page.status_code == 200
            for client in (legacy, modern):
                refused = await call(client, "join_room", room_id="d", display_name="D")
                assert refused["success"] is False and refused["code"] == "rate_limited"
                assert "nothing was joined" in refused["error"]
                queued = await call(client, "enter_queue", display_name="E")
                assert queued["code"] == "rate_limited"
            page = await http.post(f"{server.base}/api/join", json={"display_name": "F"})
            assert page.status_code == 429 and page.json()["code"] == "rate_limited"
            listed = await call(legacy, "list_rooms")
            assert sorted(r["room_id"] for r in listed["rooms"])[:2] == ["a", "b"]
            assert len(listed["rooms"]) == 3  # and the page's generated one; nothing more
    finally:
        server.stop()
