"""`mcp-chat stdio` with a probe, for tests/e2e/test_stdio_road.py: it says on stderr (lines
starting "probe ") each call the short road serves and each wait that blocks and ends, and it leaves
to the SDK every call whose JSON-RPC id is a string starting "sdk" (so that a test can have one
request served both ways by one process, and compare the bytes).

Run as: python tests/e2e/stdio_probe.py [mcp-chat stdio arguments...]"""

from __future__ import annotations

import sys
from typing import Any

from mcp_chat.cli import main
from mcp_chat.mcp import stdio
from mcp_chat.mcp.road import Call
from mcp_chat.signals import RoomSignals


def say(line: str) -> None:
    sys.stderr.write(f"probe {line}\n")
    sys.stderr.flush()


served, waited, found = stdio.StdioRoad._serve, RoomSignals.wait, stdio.StdioRoad._call


async def serve(self: stdio.StdioRoad, call: Call) -> None:
    say(f"road {call.tool.name} {call.request_id}")
    await served(self, call)


async def wait(self: RoomSignals, room_id: str, *args: Any) -> Any:
    say(f"blocked {room_id}")
    try:
        return await waited(self, room_id, *args)
    finally:
        say(f"unblocked {room_id}")


def call_of(self: stdio.StdioRoad, decoded: dict[str, Any]) -> Call | None:
    request_id = decoded.get("id")
    if isinstance(request_id, str) and request_id.startswith("sdk"):
        return None
    return found(self, decoded)


stdio.StdioRoad._serve = serve  # type: ignore[method-assign]
stdio.StdioRoad._call = call_of  # type: ignore[method-assign]
RoomSignals.wait = wait  # type: ignore[method-assign, assignment]

if __name__ == "__main__":
    main(["stdio", *sys.argv[1:]])
