"""scripts/serve, the README's way to start the server, as a user runs it."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from mcp import Client

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio

SERVE = str(Path(__file__).parents[2] / "scripts" / "serve")
JEMALLOC = glob.glob("/usr/lib/*-linux-gnu/libjemalloc.so.2")


def libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


async def chat_once(url: str) -> None:
    async with Client(url) as a, Client(url) as b:
        alice = await join(a, "r", "Alice")
        bob = await join(b, "r", "Bob")
        await call(a, "send_message", room_id="r", client_id=alice, message="hello")
        got = await call(b, "wait_for_message", room_id="r", client_id=bob, timeout=5)
        assert [m["message"] for m in got["messages"] if m["kind"] == "message"] == ["hello"]


@pytest.mark.skipif(not JEMALLOC, reason="needs jemalloc (apt-get install libjemalloc2)")
async def test_serve_runs_the_server_on_jemalloc_where_it_is_installed() -> None:
    server = ServerProcess("memory://", command=(SERVE,))
    try:
        assert "libjemalloc" in libraries(server.proc.pid)
        await chat_once(server.url)
    finally:
        server.stop()
    assert server.proc.returncode == 0


async def test_serve_keeps_the_usual_allocators_when_asked() -> None:
    server = ServerProcess("memory://", command=(SERVE,), env={"MCP_CHAT_MALLOC": "system"})
    try:
        assert "libjemalloc" not in libraries(server.proc.pid)
        await chat_once(server.url)
    finally:
        server.stop()
    assert server.proc.returncode == 0


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_serve_runs_on_the_event_loop_asked_for(event_loop: str) -> None:
    server = ServerProcess("memory://", command=(SERVE,), env={"MCP_CHAT_EVENT_LOOP": event_loop})
    try:
        await chat_once(server.url)
        assert f"event loop {event_loop})" in server.log
        # What the process runs, not only what it says: uvloop's loop is loaded only if used.
        assert ("/uvloop/loop." in libraries(server.proc.pid)) is (event_loop == "uvloop")
    finally:
        server.stop()
    assert server.proc.returncode == 0


async def test_serve_runs_on_uvloop_by_default() -> None:
    server = ServerProcess("memory://", command=(SERVE,))
    try:
        assert "event loop uvloop)" in server.log
        assert "/uvloop/loop." in libraries(server.proc.pid)
    finally:
        server.stop()
