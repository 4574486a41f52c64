"""Calling tools with the official SDK client and reading their structured results."""

from __future__ import annotations

from typing import Any

from mcp import Client


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    data = result.structured_content
    assert isinstance(data, dict), result
    return data


async def join(client: Client, room_id: str, name: str) -> str:
    joined = await call(client, "join_room", room_id=room_id, display_name=name)
    assert joined["success"], joined
    client_id = joined["client_id"]
    assert isinstance(client_id, str)
    return client_id


def texts(result: dict[str, Any]) -> list[str]:
    return [m["message"] for m in result["messages"] if not m["system"]]


async def hear(client: Client, room_id: str, client_id: str, wanted: str) -> dict[str, Any]:
    """Wait (as `client_id`) until a message with the wanted text arrives; that result."""
    while True:
        got = await call(
            client, "wait_for_message", room_id=room_id, client_id=client_id, timeout=30
        )
        assert got["success"], got
        if wanted in texts(got):
            return got
