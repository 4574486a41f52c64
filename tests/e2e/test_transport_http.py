"""Streamable HTTP with the official SDK client, for both protocol families."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client

from tests.e2e.conftest import MODES, ServerProcess
from tests.e2e.helpers import call, join, texts, until_blocked

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", MODES)
async def test_two_clients_chat_over_http(http_server: ServerProcess, mode: str) -> None:
    async with Client(http_server.url, mode=mode) as a, Client(http_server.url, mode=mode) as b:
        expected = "2025-11-25" if mode == "legacy" else mode
        assert a.session.protocol_version == expected
        alice = await join(a, "http-room", "Alice")
        blocked = asyncio.create_task(
            call(a, "wait_for_message", room_id="http-room", client_id=alice, timeout=60)
        )
        await until_blocked(http_server.base, 1)
        bob = await join(b, "http-room", "Bob")
        arrived = await blocked
        assert [m["kind"] for m in arrived["messages"]] == ["joined"]
        await call(b, "wait_for_message", room_id="http-room", client_id=bob, timeout=1)

        blocked = asyncio.create_task(
            call(b, "wait_for_message", room_id="http-room", client_id=bob, timeout=60)
        )
        await until_blocked(http_server.base, 1)
        sent = await call(a, "send_message", room_id="http-room", message="ping", client_id=alice)
        assert sent["success"]
        got = await blocked
        assert texts(got) == ["ping"] and not got["timed_out"]


async def test_nothing_acknowledged_is_lost_when_the_server_is_killed(db_url: str) -> None:
    first = ServerProcess(db_url)
    try:
        async with Client(first.url) as a, Client(first.url) as b:
            alice = await join(a, "durable", "Alice")
            bob = await join(b, "durable", "Bob")
            for i in range(5):
                sent = await call(
                    a, "send_message", room_id="durable", message=f"m{i}", client_id=alice
                )
                assert sent["success"]
            early = await call(b, "get_messages", room_id="durable", client_id=bob)
            assert len(early["messages"]) == 7
            read = await call(b, "wait_for_message", room_id="durable", client_id=bob, timeout=1)
            assert texts(read) == [f"m{i}" for i in range(5)]
            await call(a, "send_message", room_id="durable", message="after read", client_id=alice)
    finally:
        first.kill()

    second = ServerProcess(db_url)
    try:
        async with Client(second.url) as a, Client(second.url) as b:
            # Same client ids, same read position: only the unread message comes back.
            rest = await call(b, "wait_for_message", room_id="durable", client_id=bob, timeout=1)
            assert texts(rest) == ["after read"]
            more = await call(
                a, "send_message", room_id="durable", message="again", client_id=alice
            )
            assert more["success"] and more["seq"] == 9
            who = await call(b, "list_participants", room_id="durable", client_id=bob)
            assert [m["display_name"] for m in who["members"]] == ["Alice", "Bob"]
    finally:
        second.stop()
