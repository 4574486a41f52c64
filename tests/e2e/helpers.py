"""Calling tools with the official SDK client and reading their structured results."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
from mcp import Client, types


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


_MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class RawSession:
    """JSON-RPC by hand over streamable HTTP, for what a real client would refuse to send
    (arguments of the wrong shape, text that is not valid Unicode): on the handshake family
    (`legacy`: initialize, then the session's id on every call) or on 2026-07-28."""

    LEGACY, MODERN = "2025-11-25", "2026-07-28"

    def __init__(self, http: httpx2.AsyncClient, url: str, mode: str) -> None:
        self.http, self.url, self.mode = http, url, mode
        self.version = self.LEGACY if mode == "legacy" else self.MODERN
        self.session_id: str | None = None
        self._ids = 0

    async def __aenter__(self) -> RawSession:
        if self.mode == "legacy":
            answer = await self.send(
                "initialize",
                {
                    "protocolVersion": self.LEGACY,
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            )
            assert "result" in answer, answer
            await self.http.post(
                self.url,
                content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                headers=self._headers("notifications/initialized", None),
            )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.session_id is not None:
            await self.http.delete(self.url, headers=self._headers("", None))

    def _headers(self, method: str, name: str | None) -> dict[str, str]:
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Mcp-Protocol-Version": self.version,
        }
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.mode != "legacy":
            headers["Mcp-Method"] = method
            if name is not None:
                headers["Mcp-Name"] = name
        return headers

    async def send(self, method: str, params: Any, name: str | None = None) -> dict[str, Any]:
        """One request whose params are any JSON value (the body escapes non-ASCII text, so
        a lone surrogate travels as a `\\ud800` escape); the JSON-RPC answer."""
        return await self.send_raw(method, json.dumps(params), name)

    async def send_raw(self, method: str, params: str, name: str | None = None) -> dict[str, Any]:
        """One request whose params are given as JSON text; on 2026-07-28, params that are
        an object get the protocol's `_meta` first."""
        self._ids += 1
        if self.mode != "legacy" and params.startswith("{"):
            rest = params[1:]
            params = "{" + f'"_meta": {json.dumps(_MODERN_META)}' + ("" if rest == "}" else ", ")
            params += rest
        body = f'{{"jsonrpc": "2.0", "id": {self._ids}, "method": "{method}", "params": {params}}}'
        response = await self.http.post(
            self.url, content=body, headers=self._headers(method, name), timeout=60
        )
        if method == "initialize":
            self.session_id = response.headers.get("mcp-session-id")
        text = response.text
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            # Split on newlines only: a JSON string may hold U+0085 or U+2028, which
            # str.splitlines() would split on too.
            text = [ln for ln in text.split("\n") if ln.startswith("data: ")][-1][6:].rstrip("\r")
        answer: dict[str, Any] = json.loads(text)
        return answer

    async def call_tool(self, tool: str, arguments: Any) -> dict[str, Any]:
        """tools/call; the structured result, or the JSON-RPC error as {'rpc_error': ...}."""
        answer = await self.send("tools/call", {"name": tool, "arguments": arguments}, tool)
        if "error" in answer:
            return {"rpc_error": answer["error"]}
        structured: dict[str, Any] = answer["result"]["structuredContent"]
        return structured


async def blocked_waits(base: str) -> int:
    """The server's `mcp_chat_blocked_waits` gauge, read from its /metrics."""
    async with httpx2.AsyncClient() as http:
        page = (await http.get(f"{base}/metrics")).text
    line = next(ln for ln in page.splitlines() if ln.startswith("mcp_chat_blocked_waits "))
    return int(float(line.split()[1]))


async def until_blocked(base: str, count: int) -> None:
    """Return once the server at `base` has at least `count` waits blocked, so that what a
    test sends next wakes a wait instead of meeting a wait's first read."""
    async with asyncio.timeout(30):
        while await blocked_waits(base) < count:
            await asyncio.sleep(0.005)


def wait_when_blocked(
    client: Client, room_id: str, client_id: str
) -> tuple[asyncio.Task[dict[str, Any]], asyncio.Event]:
    """Start a wait_for_message that asks for progress; the event is set on the first
    progress notification, which the server sends only while the call is still running.
    For servers without /metrics (stdio): start them with a short MCP_CHAT_KEEPALIVE."""
    progressed = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async def run() -> dict[str, Any]:
        result = await client.call_tool(
            "wait_for_message",
            {"room_id": room_id, "client_id": client_id, "timeout": 60},
            progress_callback=on_progress,
        )
        data = result.structured_content
        assert isinstance(data, dict), result
        return data

    return asyncio.create_task(run()), progressed


class Updates:
    """Collects notifications/resources/updated as a handshake-era client receives them."""

    def __init__(self) -> None:
        self.uris: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.put_nowait(message.params.uri)


async def progress_wait(
    client: Client, tool: str, **args: Any
) -> tuple[asyncio.Task[dict[str, Any]], asyncio.Event]:
    """Start a blocking call that asks for progress; the event is set at the first progress
    notification, which the server sends only while the call blocks."""
    progressed = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        assert progress > 0 and message is not None and message.startswith("still waiting")
        progressed.set()

    async def run() -> dict[str, Any]:
        result = await client.call_tool(tool, args, progress_callback=on_progress)
        data = result.structured_content
        assert isinstance(data, dict), result
        return data

    task = asyncio.create_task(run())
    async with asyncio.timeout(30):
        await progressed.wait()
    return task, progressed
