"""The short road's tools (mcp/road.py), taken from the input schemas FastMCP registered."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat.app import build
from mcp_chat.config import Settings
from mcp_chat.mcp.road import BODIES, FastTool


def test_the_road_takes_its_tools_from_their_input_schemas() -> None:
    """The tools' arguments, which are required and their defaults come from FastMCP's
    registration; a constraint the road cannot check exactly refuses to build it."""
    parts = build(Settings(store="memory://", default_wait=42))
    served = asyncio.run(parts.server.list_tools(run_middleware=False))
    schemas = {t.name: t.to_mcp_tool().input_schema for t in served}
    tools = {
        name: FastTool.of(name, schemas[name], body, blocks)
        for name, (body, blocks) in BODIES.items()
    }
    wait = tools["wait_for_message"]
    assert wait.required == {"room_id", "client_id"}
    assert wait.defaults == {"timeout": 42, "after": None, "mentions_only": False}
    assert wait.arguments["after"](None) and wait.arguments["after"](3)
    assert not wait.arguments["after"](True) and not wait.arguments["timeout"](float("inf"))
    assert tools["send_message"].required == {"room_id", "client_id", "message"}

    constrained = {**schemas["send_message"]}
    constrained["properties"] = {
        **constrained["properties"],
        "message": {"type": "string", "minLength": 1},
    }
    with pytest.raises(ValueError, match="minLength"):
        FastTool.of("send_message", constrained, *BODIES["send_message"])
