"""One `mcp-chat stdio` process driven by hand, as Claude Code speaks to it: newline-delimited
JSON-RPC on stdin and stdout, requests answered by id, everything else the server writes kept
in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHANNEL = "notifications/claude/channel"
LIMIT = 30  # seconds any one awaited line may take before the test fails
CLIENT = {"name": "claude-code", "version": "0"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": CLIENT,
    "io.modelcontextprotocol/clientCapabilities": {},
}
PROBE = str(Path(__file__).with_name("stdio_probe.py"))


def opening(client: str) -> list[dict[str, Any]]:
    """A handshake-era client's first lines: initialize (id 1), initialized, and a join_room
    of room "q" (id 2)."""
    return [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": client, "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "join_room", "arguments": {"room_id": "q", "display_name": "Q"}},
        },
    ]


class Stdio:
    """One `mcp-chat stdio` process, driven by hand: requests get their answers by id,
    everything the server sends unasked goes to `unsolicited`, in order. Started with the
    probe (tests/e2e/stdio_probe.py), its lines go to `probed`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.unsolicited: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stderr: list[str] = []
        self.probed: asyncio.Queue[str] = asyncio.Queue()
        """What the probe said, in order, less its "probe " prefix."""
        self.lines: dict[Any, bytes] = {}
        """Each answer's line as the server wrote it, by request id."""
        self._answers: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0
        self.client = CLIENT
        """What initialize says the client is."""
        self.modern = False
        """Requests carry the 2026-07-28 envelope (after a successful server/discover)."""
        self._reader = asyncio.create_task(self._read())
        self._errors = asyncio.create_task(self._read_stderr())

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, db_url: str, *extra: str, probe: bool = False) -> AsyncIterator[Stdio]:
        program = (PROBE,) if probe else ("-m", "mcp_chat", "stdio")
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, *program, "--store", db_url, *extra),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        server = cls(proc)
        try:
            yield server
        finally:
            await server.close()

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            async with asyncio.timeout(LIMIT):
                await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._errors

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            message = json.loads(raw)
            answer = self._answers.pop(message.get("id"), None)
            if answer is not None and "method" not in message:
                self.lines[message["id"]] = raw
                answer.set_result(message)
            else:
                self.unsolicited.put_nowait(message)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode()
            if line.startswith("probe "):
                self.probed.put_nowait(line.removeprefix("probe ").rstrip("\n"))
            else:
                self.stderr.append(line)

    async def probe(self) -> str:
        """The probe's next line."""
        async with asyncio.timeout(LIMIT):
            return await self.probed.get()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    def ask(
        self, method: str, params: dict[str, Any], request_id: Any = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a request (with the next number as its id, unless given one); its answer."""
        if request_id is None:
            self._ids += 1
            request_id = self._ids
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        if self.modern:
            params = {"_meta": MODERN_META, **params}
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return answer

    async def request(
        self, method: str, params: dict[str, Any], request_id: Any = None
    ) -> dict[str, Any]:
        async with asyncio.timeout(LIMIT):
            return await self.ask(method, params, request_id)

    async def handshake(self) -> dict[str, Any]:
        """What Claude Code does: probe server/discover, fall back to initialize on an
        error; the initialize result."""
        probe = await self.request("server/discover", {"_meta": MODERN_META})
        assert probe.get("error", {}).get("code") == -32601, probe
        return await self.initialize()

    async def initialize(self) -> dict[str, Any]:
        answer = await self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": self.client,
            },
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        result: dict[str, Any] = answer["result"]
        return result

    async def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        answer = await self.request("tools/call", {"name": name, "arguments": arguments})
        result: dict[str, Any] = answer["result"]["structuredContent"]
        assert result["success"], result
        return result

    async def pushed(self) -> dict[str, Any]:
        """The next channel notification's params."""
        async with asyncio.timeout(LIMIT):
            message = await self.unsolicited.get()
        assert message["method"] == CHANNEL, message
        params: dict[str, Any] = message["params"]
        return params

    async def nothing_more_pushed(self) -> None:
        """A ping's answer comes back with no notification ahead of it: the server wrote
        none before it (one connection, written in order)."""
        await self.request("ping", {})
        assert self.unsolicited.empty(), self.unsolicited.get_nowait()


async def joined(server: Stdio, room: str, name: str) -> str:
    client_id: str = (await server.tool("join_room", room_id=room, display_name=name))["client_id"]
    return client_id
