"""The short road over stdio (mcp/stdio.py): a real `mcp-chat stdio` process answers plain
send_message and wait_for_message calls itself, byte for byte as the SDK would, on both
protocol families and in both of its loops (pushes on: the handshake era only; off: both
eras), and leaves anything unusual to the SDK. The process runs with a probe
(tests/e2e/stdio_probe.py) that says which calls the road served, and that leaves to the SDK
every request whose id starts "sdk": one process answers one request both ways."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import texts
from tests.e2e.stdio_driver import LIMIT, MODERN_META, PROBE, Stdio, joined, opening
from tests.e2e.test_fastcalls import SCENARIOS, SENDS

pytestmark = pytest.mark.anyio

FAMILIES = {
    # Claude Code with pushes on: server/discover refused, then initialize (handshake-only loop)
    "handshake-pushes": ("on", "handshake"),
    # pushes off, a client that initializes: the dual-era loop, in the handshake era
    "handshake": ("off", "initialize"),
    # pushes off, a client on 2026-07-28: every request carries the envelope
    "modern": ("off", "modern"),
}


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@asynccontextmanager
async def connected(db_url: str, family: str, *extra: str) -> AsyncIterator[Stdio]:
    channel, opening = FAMILIES[family]
    async with Stdio.start(db_url, "--channel", channel, *extra, probe=True) as server:
        if opening == "handshake":
            await server.handshake()
        elif opening == "initialize":
            await server.initialize()
        else:
            server.modern = True
        yield server


async def served_by_the_road(server: Stdio, request_id: str) -> list[str]:
    """The probe's lines up to the one that says the road served `request_id`."""
    lines = [await server.probe()]
    while not lines[-1].endswith(f" {request_id}"):
        lines.append(await server.probe())
    assert lines[-1].startswith("road "), lines
    return lines


async def both_ways(
    server: Stdio, n: int, tool: str, arguments: dict[str, Any]
) -> tuple[bytes, bytes]:
    """One call served by the road, then by the SDK: both answers' lines, less their ids."""
    params = {"name": tool, "arguments": arguments}
    await server.request("tools/call", params, f"road-{n}")
    await served_by_the_road(server, f"road-{n}")
    await server.request("tools/call", params, f"sdk-{n}")
    road = server.lines[f"road-{n}"].replace(f'"road-{n}"'.encode(), b'"ID"')
    sdk = server.lines[f"sdk-{n}"].replace(f'"sdk-{n}"'.encode(), b'"ID"')
    return road, sdk


def neutral(line: bytes) -> bytes:
    """A send's answer with what differs between two sends of one text (seq, id and time of
    the new message) put in a neutral form."""
    for key in ("message_id", "timestamp"):
        for value in re.findall(rb'"' + key.encode() + rb'":"([^"]+)"', line):
            line = line.replace(value, key.upper().encode())
    return re.sub(rb'(seq\\?"):\d+', rb"\1:0", line)


async def nothing_else_took_the_road(server: Stdio) -> None:
    """A plain call last: the probe's lines before it name no call the SDK was to serve."""
    await server.request("ping", {})
    lines = []
    while not server.probed.empty():
        lines.append(server.probed.get_nowait())
    assert not [line for line in lines if line.startswith("road ")], lines


async def test_the_road_answers_byte_for_byte_as_the_sdk(db_url: str, family: str) -> None:
    async with connected(db_url, family, "--max-message-bytes", "64") as server:
        me = await joined(server, "r", "Ann")
        bob = await joined(server, "r", "Bob")
        said = {"room_id": "r", "client_id": bob, "message": 'hi "@Ann" \\ héllo ✓ 🎉\n'}
        await server.request("tools/call", {"name": "send_message", "arguments": said}, "road-0")
        await served_by_the_road(server, "road-0")

        n = 0
        for scenario, arguments in SCENARIOS.items():
            n += 1
            if scenario == "timed out":  # read what is there, so that both calls time out
                unread = {"room_id": "r", "client_id": me, "timeout": 1}
                drain = {"name": "wait_for_message", "arguments": unread}
                await server.request("tools/call", drain, f"road-drain-{n}")
                await served_by_the_road(server, f"road-drain-{n}")
            road, sdk = await both_ways(server, n, "wait_for_message", arguments(me))
            assert road == sdk, scenario

        first = SENDS["a retry of a sent message"](me)
        await server.request("tools/call", {"name": "send_message", "arguments": first}, "road-1k")
        await served_by_the_road(server, "road-1k")
        for scenario, arguments in SENDS.items():
            n += 1
            road, sdk = await both_ways(server, n, "send_message", arguments(me))
            if scenario in ("a message", "no key"):  # two messages: seq, id and time differ
                assert road != sdk and neutral(road) == neutral(sdk), scenario
            else:
                assert road == sdk, scenario
            success = scenario in ("a message", "no key", "a retry of a sent message")
            assert (b'"success":true' in road) is success, (scenario, road)
        await nothing_else_took_the_road(server)


def unusual(me: str, modern: bool) -> dict[str, dict[str, Any]]:
    def meta(**extra: Any) -> dict[str, Any]:
        return {**MODERN_META, **extra} if modern else extra

    wait = {"room_id": "r", "client_id": me, "timeout": 1}
    send = {"room_id": "r", "client_id": me, "message": "hi"}
    return {
        "a progress token": {
            "name": "wait_for_message",
            "arguments": wait,
            "_meta": meta(progressToken=1),
        },
        "a timeout as a string": {
            "name": "wait_for_message",
            "arguments": {**wait, "timeout": "1"},
        },
        "an unknown argument": {"name": "wait_for_message", "arguments": {**wait, "colour": "red"}},
        "a missing argument": {"name": "wait_for_message", "arguments": {"client_id": me}},
        "other _meta": {"name": "wait_for_message", "arguments": wait, "_meta": meta(trace="x")},
        "a send with a progress token": {
            "name": "send_message",
            "arguments": send,
            "_meta": meta(progressToken=2),
        },
        "a message that is a number": {"name": "send_message", "arguments": {**send, "message": 5}},
        "a send with an unknown argument": {
            "name": "send_message",
            "arguments": {**send, "to": "Bob"},
        },
        "another tool": {
            "name": "list_participants",
            "arguments": {"room_id": "r", "client_id": me},
        },
    }


REFUSED = {
    "an unknown argument",
    "a missing argument",
    "a message that is a number",
    "a send with an unknown argument",
}


async def test_unusual_calls_are_left_to_the_sdk(db_url: str, family: str) -> None:
    async with connected(db_url, family) as server:
        me = await joined(server, "r", "Ann")
        for case, params in unusual(me, server.modern).items():
            answer = await server.request("tools/call", params)
            result = answer.get("result", {})
            if "structuredContent" in result:
                assert result["structuredContent"]["success"] is (case not in REFUSED), case
            else:
                assert case in REFUSED and (result.get("isError") or "error" in answer), case
        await nothing_else_took_the_road(server)


async def test_a_cancelled_wait_ends_and_is_not_answered(db_url: str, family: str) -> None:
    async with connected(db_url, family) as server:
        me = await joined(server, "r", "Ann")

        def wait(timeout: int) -> dict[str, Any]:
            arguments = {"room_id": "r", "client_id": me, "timeout": timeout}
            return {"name": "wait_for_message", "arguments": arguments}

        for request_id in ("road-c", "sdk-c"):  # the road cancels a wait as the SDK does
            held = server.ask("tools/call", wait(120), request_id)
            lines = [await server.probe()]
            while lines[-1] != "blocked r":
                lines.append(await server.probe())
            assert (f"road wait_for_message {request_id}" in lines) is (request_id == "road-c")
            server.send(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": request_id, "reason": "the user pressed Esc"},
                }
            )
            assert await server.probe() == "unblocked r"  # (a 120 s wait: only a cancel ends it)
            answer = await server.request("tools/call", wait(1))
            assert answer["result"]["structuredContent"]["timed_out"] is True
            assert not held.done() and request_id not in server.lines
            held.cancel()


async def test_with_fast_calls_off_every_call_goes_through_the_sdk(
    db_url: str, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_CHAT_FAST_CALLS", "false")
    async with connected(db_url, family) as server:
        me = await joined(server, "r", "Ann")
        bob = await joined(server, "r", "Bob")
        await server.tool("send_message", room_id="r", client_id=bob, message="hello")
        answer = await server.tool("wait_for_message", room_id="r", client_id=me, after=0)
        assert texts(answer) == ["hello"]
        await server.tool("wait_for_message", room_id="r", client_id=me, timeout=1)
        assert await server.probe() == "blocked r"  # (the timed-out wait, through the SDK)
        await nothing_else_took_the_road(server)


async def test_a_server_writing_to_a_file_answers_through_the_sdks_transport(
    db_url: str, tmp_path: Path
) -> None:
    """stdout a regular file (the event loop cannot write one as a pipe): the SDK's own
    transport reads and writes, as before the road."""
    out = tmp_path / "answers.jsonl"
    lines = opening("file")
    with out.open("wb") as stdout:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, PROBE, "--store", db_url, "--channel", "off"),
            stdin=asyncio.subprocess.PIPE,
            stdout=stdout,
        )
    assert proc.stdin is not None
    proc.stdin.write("".join(json.dumps(line) + "\n" for line in lines).encode())
    async with asyncio.timeout(LIMIT):
        while len(answers := out.read_text().splitlines()) < 2:
            await asyncio.sleep(0.05)  # (a file: nothing to await but its growing)
        client = json.loads(answers[1])["result"]["structuredContent"]["client_id"]
        send = {"room_id": "q", "client_id": client, "message": "to a file"}
        call = {"name": "send_message", "arguments": send}
        proc.stdin.write(
            (
                json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
                + "\n"
            ).encode()
        )
        while len(answers := out.read_text().splitlines()) < 3:
            await asyncio.sleep(0.05)
        proc.stdin.close()
        assert await proc.wait() == 0
    assert json.loads(answers[2])["result"]["structuredContent"]["success"] is True


async def test_a_line_longer_than_any_buffer_is_read_and_refused(db_url: str) -> None:
    """70 MiB in one line (the SDK's own reader has no limit either): the send is refused as
    too long, and the server goes on serving."""
    async with connected(db_url, "handshake") as server:
        me = await joined(server, "r", "Ann")
        huge = {"room_id": "r", "client_id": me, "message": "x" * (70 * 1024 * 1024)}
        answer = await server.request("tools/call", {"name": "send_message", "arguments": huge})
        assert answer["result"]["structuredContent"]["code"] == "message_too_large"
        sent = await server.tool("send_message", room_id="r", client_id=me, message="after")
        assert sent["success"] is True
