"""stdio: two MCP clients each start their own server process on one SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from mcp import Client

from tests.e2e.conftest import MODES, stdio_params
from tests.e2e.helpers import call, join, texts, wait_when_blocked
from tests.e2e.stdio_driver import opening

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", MODES)
async def test_two_stdio_processes_chat_through_one_file(db_url: str, mode: str) -> None:
    params = stdio_params(db_url)
    # A progress notification every 50 ms while a wait blocks: the first one tells the test
    # that the wait is blocked before it sends (or the send could meet the wait's first read).
    params.env = {**(params.env or {}), "MCP_CHAT_KEEPALIVE": "0.05"}
    async with Client(params, mode=mode) as a, Client(params, mode=mode) as b:
        expected = "2025-11-25" if mode == "legacy" else mode
        assert a.session.protocol_version == expected
        alice = await join(a, "across", "Alice")
        # Alice blocks in her process; Bob's join in the other process must wake her. There is
        # no polling behind a wait, so without a cross-process wake-up this times out instead.
        blocked, progressed = wait_when_blocked(a, "across", alice)
        await progressed.wait()
        bob = await join(b, "across", "Bob")
        woke = await blocked
        assert not woke["timed_out"] and woke["messages"][0]["sender"] == "Bob"

        await call(b, "wait_for_message", room_id="across", client_id=bob, timeout=1)
        for round_no in range(3):
            blocked, progressed = wait_when_blocked(b, "across", bob)
            await progressed.wait()
            await call(a, "send_message", room_id="across", message=f"r{round_no}", client_id=alice)
            got = await blocked
            assert texts(got) == [f"r{round_no}"]


async def test_a_stdio_server_reopens_its_file_with_everything_kept(db_url: str) -> None:
    params = stdio_params(db_url)
    async with Client(params) as a:
        alice = await join(a, "kept", "Alice")
        await call(a, "send_message", room_id="kept", message="still here", client_id=alice)
    async with Client(params) as a:
        history = await call(a, "get_messages", room_id="kept", client_id=alice)
        assert texts(history) == ["still here"]


def test_a_stdio_server_writes_nothing_to_stderr_at_its_default_level(db_url: str) -> None:
    """Claude Code records every stderr line of a stdio server as an error."""
    env = {k: v for k, v in os.environ.items() if k != "MCP_CHAT_LOG_LEVEL"}
    lines = opening("quiet")
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_chat", "stdio", "--store", db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("".join(json.dumps(line) + "\n" for line in lines))
    server.stdin.flush()
    answers = [json.loads(server.stdout.readline()) for _ in range(2)]
    _, stderr = server.communicate(timeout=60)  # closes stdin: the client is done
    assert [a.get("id") for a in answers] == [1, 2]
    assert answers[1]["result"]["structuredContent"]["success"] is True
    assert stderr == ""


def _request(server: subprocess.Popen[str], ident: int, method: str, params: Any) -> Any:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(
        json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}) + "\n"
    )
    server.stdin.flush()
    while True:  # notifications (a channel push) may come first
        answer = json.loads(server.stdout.readline())
        if answer.get("id") == ident:
            return answer


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_a_stdio_server_stops_at_once_on_a_signal_and_loses_nothing(
    db_url: str, stop: signal.Signals
) -> None:
    """Claude Code stops a stdio server with SIGINT, and with SIGTERM 100 ms later; the client
    keeps stdin open meanwhile. The server exits cleanly, the room hears it went, nothing
    it acknowledged is lost."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_chat", "stdio", "--store", db_url, "--channel", "off"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _request(
            server,
            1,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "claude-code", "version": "0"},
            },
        )
        async with Client(stdio_params(db_url), mode="legacy") as other:
            bob = await join(other, "bye", "Bob")
            joined = _request(
                server,
                2,
                "tools/call",
                {"name": "join_room", "arguments": {"room_id": "bye", "display_name": "Ann"}},
            )
            ann = joined["result"]["structuredContent"]["client_id"]
            said = {"room_id": "bye", "client_id": ann, "message": "last words"}
            sent = _request(server, 3, "tools/call", {"name": "send_message", "arguments": said})
            assert sent["result"]["structuredContent"]["success"]
            server.send_signal(stop)  # stdin stays open, as the client leaves it
            assert server.wait(timeout=30) == 0
            assert server.stderr is not None and server.stderr.read() == ""
            heard: list[tuple[str, str]] = []
            while ("disconnected", "Ann") not in heard:
                got = await call(
                    other, "wait_for_message", room_id="bye", client_id=bob, timeout=30
                )
                assert not got["timed_out"], got
                heard += [
                    (m["kind"], m["message"] if m["kind"] == "message" else m["sender"])
                    for m in got["messages"]
                ]
            assert ("message", "last words") in heard
    finally:
        if server.poll() is None:
            server.kill()
