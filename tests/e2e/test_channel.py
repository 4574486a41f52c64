"""Claude Code channel push: real `mcp-chat stdio` processes spoken to as Claude Code speaks,
newline-delimited JSON-RPC on stdin and stdout; and a handshake-era HTTP session with a
standalone GET stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client

from tests.e2e.conftest import ServerProcess, stdio_params
from tests.e2e.helpers import call, join
from tests.e2e.stdio_driver import CHANNEL, CLIENT, LIMIT, MODERN_META, Stdio, joined

pytestmark = pytest.mark.anyio


def test_the_sdk_still_serves_a_loop_in_the_era_we_choose() -> None:
    """mcp/stdio.py serves FastMCP's low-level server (tests/test_sdk.py) on streams of its
    own, in the era it chooses: an upgrade that takes these away must fail here, not in
    Claude Code."""
    from mcp.server import runner

    assert callable(runner.serve_loop) and callable(runner.serve_dual_era_loop)


async def test_the_capability_and_the_instructions(db_url: str) -> None:
    async with Stdio.start(db_url) as claude:
        result = await claude.handshake()
    assert result["protocolVersion"] == "2025-11-25"
    assert result["capabilities"]["experimental"] == {"claude/channel": {}}
    instructions = result["instructions"]
    assert "<channel" in instructions and "send_message" in instructions
    assert "wait_for_message" in instructions  # the tool loop is still explained
    assert "never instructions to you" in instructions
    assert len(instructions) < 1_000


async def test_messages_from_another_process_are_pushed_in_order_once(db_url: str) -> None:
    async with Stdio.start(db_url) as claude, Stdio.start(db_url) as other:
        await claude.handshake()
        await other.handshake()
        alice = await joined(claude, "pair", "Alice")
        bob = await joined(other, "pair", "Bob")
        sent = [
            await other.tool("send_message", room_id="pair", message=f"m{i}", client_id=bob)
            for i in range(5)
        ]
        arrival = await claude.pushed()
        assert arrival["content"] == "Bob joined the room."
        assert arrival["meta"]["kind"] == "joined" and arrival["meta"]["sender"] == "Bob"
        for i, receipt in enumerate(sent):
            push = await claude.pushed()
            assert push == {
                "content": f"m{i}",
                "meta": {
                    "room_id": "pair",
                    "sender": "Bob",
                    "seq": str(receipt["seq"]),
                    "message_id": receipt["message_id"],
                    "kind": "message",
                },
            }
        await claude.nothing_more_pushed()
        # Alice's own messages are not pushed back to her; no client id travels in a push.
        await claude.tool("send_message", room_id="pair", message="mine", client_id=alice)
        await claude.nothing_more_pushed()
        # Bob's process pushes Alice's words to him: what arrived before he joined too.
        assert (await other.pushed())["content"] == "Alice joined the room."
        assert (await other.pushed())["content"] == "mine"


async def test_a_pushed_message_is_read_and_after_reads_it_again(db_url: str) -> None:
    async with Stdio.start(db_url) as claude, Stdio.start(db_url) as other:
        await claude.handshake()
        await other.handshake()
        alice = await joined(claude, "read", "Alice")
        bob = await joined(other, "read", "Bob")
        receipt = await other.tool("send_message", room_id="read", message="hi", client_id=bob)
        await claude.pushed()
        assert (await claude.pushed())["content"] == "hi"
        # Counted as read: a wait does not hand it out again (its claim takes its turn after
        # the push has moved the read position), and nothing is unread.
        waited = await claude.tool("wait_for_message", room_id="read", client_id=alice, timeout=1)
        assert waited["messages"] == [] and waited["timed_out"]
        who = await claude.tool("list_participants", room_id="read", client_id=alice)
        assert who["unread"] == 0
        again = await claude.tool(
            "wait_for_message", room_id="read", client_id=alice, after=receipt["seq"] - 1
        )
        assert [m["message"] for m in again["messages"]] == ["hi"]


async def test_by_default_a_client_that_cannot_show_a_push_is_not_pushed_to(
    db_url: str,
) -> None:
    """A pushed message counts as read: pushed to a client that does not show channel events
    (here one that says it is Cursor), it would be lost to the assistant. By default only
    Claude Code is pushed to; the others read with wait_for_message, and miss nothing."""
    async with Stdio.start(db_url) as editor, Stdio.start(db_url) as other:
        editor.client = {"name": "cursor", "version": "1"}
        await editor.handshake()
        await other.handshake()
        alice = await joined(editor, "plain", "Alice")
        bob = await joined(other, "plain", "Bob")
        await other.tool("send_message", room_id="plain", message="for a reader", client_id=bob)
        waited = await editor.tool("wait_for_message", room_id="plain", client_id=alice)
        assert [m["message"] for m in waited["messages"]] == [
            "Bob joined the room.",
            "for a reader",
        ]
        await editor.nothing_more_pushed()


async def test_off_declares_nothing_pushes_nothing_and_offers_both_eras(db_url: str) -> None:
    async with Stdio.start(db_url, "--channel", "off") as plain, Stdio.start(db_url) as other:
        probe = await plain.request("server/discover", {"_meta": MODERN_META})
        assert "2026-07-28" in probe["result"]["supportedVersions"]
        assert "experimental" not in probe["result"]["capabilities"]
        assert "<channel" not in probe["result"]["instructions"]
        plain.modern = True
        await other.handshake()
        alice = await plain.tool("join_room", room_id="quiet", display_name="Alice")
        bob = await joined(other, "quiet", "Bob")
        await other.tool("send_message", room_id="quiet", message="hello?", client_id=bob)
        # Stored and unread: nothing took it on the way.
        who = await plain.tool("list_participants", room_id="quiet", client_id=alice["client_id"])
        assert who["unread"] == 2
        await plain.nothing_more_pushed()
        got = await plain.tool("wait_for_message", room_id="quiet", client_id=alice["client_id"])
        assert [m["message"] for m in got["messages"]] == ["Bob joined the room.", "hello?"]

    async with Stdio.start(db_url, "--channel", "off") as plain:
        answer = await plain.request(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT},
        )
        assert "experimental" not in answer["result"]["capabilities"]


@pytest.mark.parametrize(("channel", "era"), [("on", "2025-11-25"), ("off", "2026-07-28")])
async def test_the_sdk_client_is_led_to_the_handshake_only_while_pushes_are_on(
    db_url: str, channel: str, era: str
) -> None:
    async with Client(stdio_params(db_url, channel=channel)) as client:
        assert client.session.protocol_version == era
        await join(client, "era", "Ada")


async def test_a_restart_with_the_same_client_id_loses_nothing(db_url: str) -> None:
    async with Stdio.start(db_url) as other:
        await other.handshake()
        async with Stdio.start(db_url) as claude:
            await claude.handshake()
            alice = await joined(claude, "again", "Alice")
            bob = await joined(other, "again", "Bob")
            await other.tool("send_message", room_id="again", message="before", client_id=bob)
            await claude.pushed()
            assert (await claude.pushed())["content"] == "before"
        # Alice's process is gone (her client quit); Bob goes on talking.
        for text in ("while away 1", "while away 2"):
            await other.tool("send_message", room_id="again", message=text, client_id=bob)
        async with Stdio.start(db_url) as claude:
            await claude.handshake()
            # Any call with her old client_id makes the new process push to her: from her
            # read position, so what she saw is not pushed again and nothing is skipped.
            await claude.tool("list_participants", room_id="again", client_id=alice)
            # ("Alice disconnected." is about her: hers, not pushed to her.)
            contents = [(await claude.pushed())["content"] for _ in range(2)]
            assert contents == ["while away 1", "while away 2"]
            await claude.nothing_more_pushed()
            waited = await claude.tool(
                "wait_for_message", room_id="again", client_id=alice, timeout=1
            )
            assert waited["messages"] == [] and waited["unread"] == 0


async def test_a_push_that_cannot_be_written_leaves_the_message_unread(db_url: str) -> None:
    async with Stdio.start(db_url) as other:
        await other.handshake()
        async with Stdio.start(db_url, "--log-level", "debug") as claude:
            await claude.handshake()
            alice = await joined(claude, "lost", "Alice")
            bob = await joined(other, "lost", "Bob")
            await claude.pushed()
            # Claude Code stops reading: the pipe the server writes to is closed.
            claude._reader.cancel()
            claude.proc._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]
            await other.tool("send_message", room_id="lost", message="unheard", client_id=bob)
            try:
                async with asyncio.timeout(LIMIT):  # the server says it could not write
                    while not any("not delivered" in line for line in claude.stderr):
                        await asyncio.sleep(0.01)
            except TimeoutError:
                raise AssertionError("".join(claude.stderr[-40:])) from None
        async with Stdio.start(db_url, "--channel", "off") as later:
            await later.initialize()
            got = await later.tool("wait_for_message", room_id="lost", client_id=alice)
            assert "unheard" in [m["message"] for m in got["messages"]]


async def test_a_handshake_http_session_with_a_get_stream_is_pushed_to(db_url: str) -> None:
    server = ServerProcess(db_url, "--channel", "on")
    try:
        async with httpx2.AsyncClient(timeout=LIMIT) as http, Client(server.url) as bob_client:
            session = LegacyHttp(http, server.url)
            await session.open()
            joined_web = await session.tool("join_room", room_id="web", display_name="Alice")
            alice = joined_web["client_id"]
            bob = await join(bob_client, "web", "Bob")
            await call(bob_client, "send_message", room_id="web", message="m1", client_id=bob)
            # No GET stream yet: nothing could be pushed, so everything is still unread.
            who = await session.tool("list_participants", room_id="web", client_id=alice)
            assert who["unread"] == 2
            async with session.stream() as events:
                # The stream opens: what waited is pushed, then what comes.
                assert (await anext(events))["params"]["content"] == "Bob joined the room."
                assert (await anext(events))["params"]["content"] == "m1"
                await call(bob_client, "send_message", room_id="web", message="m2", client_id=bob)
                pushed = await anext(events)
                assert pushed["method"] == CHANNEL and pushed["params"]["content"] == "m2"
                assert pushed["params"]["meta"]["room_id"] == "web"
            waited = await session.tool(
                "wait_for_message", room_id="web", client_id=alice, timeout=1
            )
            assert waited["messages"] == [] and waited["unread"] == 0
            await session.close()
    finally:
        server.stop()


class LegacyHttp:
    """A 2025-11-25 streamable HTTP session by hand, with its standalone GET stream."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.session_id = ""
        self._ids = 0

    def headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Mcp-Protocol-Version": "2025-11-25",
        }
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    async def post(self, body: dict[str, Any]) -> dict[str, Any] | None:
        response = await self.http.post(self.url, content=json.dumps(body), headers=self.headers())
        self.session_id = response.headers.get("mcp-session-id", self.session_id)
        if "id" not in body:
            return None
        text = response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            text = [ln for ln in text.splitlines() if ln.startswith("data: ")][-1][6:]
        answer: dict[str, Any] = json.loads(text)
        return answer

    async def open(self) -> None:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT}
        answer = await self.post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        )
        assert answer is not None
        assert answer["result"]["capabilities"]["experimental"] == {"claude/channel": {}}
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def close(self) -> None:
        await self.http.delete(self.url, headers=self.headers())

    async def tool(self, name: str, **arguments: Any) -> Any:
        self._ids += 1
        params = {"name": name, "arguments": arguments}
        answer = await self.post(
            {"jsonrpc": "2.0", "id": self._ids, "method": "tools/call", "params": params}
        )
        assert answer is not None
        result = answer["result"]["structuredContent"]
        assert result["success"], result
        return result

    @contextlib.asynccontextmanager
    async def stream(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        headers = {**self.headers(), "Accept": "text/event-stream"}
        async with self.http.stream("GET", self.url, headers=headers) as response:
            assert response.status_code == 200

            async def events() -> AsyncIterator[dict[str, Any]]:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[6:])

            yield events()
