"""Raw HTTP/1.1 MCP clients for the load generators (benchmarks.waits, benchmarks.scale figure
I), on either protocol family: no SDK client, so that a load generator can hold thousands of
requests at the cost of a socket each.

2026-07-28 (`modern`): each tools/call is stateless, with the `_meta` envelope and the routing
headers (`Mcp-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) that `mcp.Client` sends.

The handshake family (`handshake`, 2025-11-25): a `Session` is opened as `mcp.Client(url,
mode="legacy")` (mcp 2.3, `mcp/client/session.py` and `streamable_http.py`) opens one, as read
off the wire through a loopback proxy: POST `initialize` (protocol version 2025-11-25, empty
capabilities, compact JSON; no `Mcp-Protocol-Version` header yet), the `mcp-session-id` of its
answer, POST `notifications/initialized` with `Mcp-Session-Id` and `Mcp-Protocol-Version:
2025-11-25` (202), and the standalone GET event stream the transport opens for the server's own
messages, held until the session ends. Its tools/calls carry those two headers and nothing
else of the 2026 kind: no `_meta` envelope, no `Mcp-Method` or `Mcp-Name` (the SDK's handshake
stamp sets only the version header). It ends with DELETE (200), as the client does on exit.
Not matched: httpx's `User-Agent` and `Accept-Encoding`, and the `tools/list` that
`mcp.Client` sends after its first call to learn the output schemas (once per session; the
load's calls are the figure).

Answers come as JSON or as an event stream; `structured` reads both.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
CLIENT_INFO = {"name": "mcp-chat-bench-raw", "version": "0"}
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    "io.modelcontextprotocol/clientCapabilities": {},
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": CLIENT_INFO},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def http(
    port: int, method: str, headers: str, keep_alive: bool, body: dict[str, Any] | None = None
) -> bytes:
    """One HTTP/1.1 request to /mcp with the headers every MCP client sends, and `headers`."""
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    length = f"Content-Length: {len(data)}\r\n" if body is not None else ""
    return (
        f"{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        f"{headers}Connection: {'keep-alive' if keep_alive else 'close'}\r\n{length}\r\n"
    ).encode() + data


def raw_request(
    port: int,
    tool: str,
    arguments: dict[str, Any],
    keep_alive: bool,
    session: str | None = None,
    number: int = 1,
) -> bytes:
    """One tools/call as HTTP/1.1 bytes, as `mcp.Client` sends it: on 2026-07-28 without a
    `session`, on that handshake-era session with one; `number` is its JSON-RPC id."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if session is None:
        params["_meta"] = META
        route = f"Mcp-Protocol-Version: {MODERN}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n"
    else:
        route = session_headers(session)
    body = {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}
    return http(port, "POST", route, keep_alive, body)


def session_headers(session: str) -> str:
    return f"Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: {HANDSHAKE}\r\n"


def status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def header(head: bytes, name: bytes) -> str | None:
    """The value of header `name` (lower case) in a response head, if it has it."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode()
    return None


def structured(tool: str, head: bytes, payload: bytes) -> dict[str, Any]:
    """The structured result of a tools/call response; raises if the call failed."""
    if status(head) != 200:
        raise RuntimeError(f"{tool}: HTTP {status(head)} {payload[:200]!r}")
    if b"text/event-stream" in head.lower():
        datas = [ln[5:] for ln in payload.splitlines() if ln.startswith(b"data:")]
        payload = datas[-1]
    message = json.loads(payload)
    data: dict[str, Any] | None = message.get("result", {}).get("structuredContent")
    if not data or not data.get("success"):
        raise RuntimeError(f"{tool} failed: {message}")
    return data


class RawCall:
    """One request on its own HTTP/1.1 connection (`Connection: close`): sent, then read."""

    def __init__(self, port: int, request: bytes, tool: str = "") -> None:
        self.port = port
        self.request = request
        self.tool = tool
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, connecting: asyncio.Semaphore) -> None:
        async with connecting:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.write(self.request)
            await self.writer.drain()

    async def answer(self) -> tuple[bytes, bytes]:
        """The response's head and body (up to EOF, as the connection closes)."""
        assert self.reader is not None and self.writer is not None
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            return head, await self.reader.read()
        finally:
            self.writer.close()

    async def result(self) -> dict[str, Any]:
        """The tools/call's structured result; raises if the call failed."""
        return structured(self.tool, *await self.answer())


async def exchange(port: int, request: bytes, connecting: asyncio.Semaphore) -> bytes:
    """Sends `request` on a connection of its own; the answer's head, if its status is 2xx."""
    call = RawCall(port, request)
    await call.send(connecting)
    head, body = await call.answer()
    if not 200 <= status(head) < 300:
        raise RuntimeError(f"HTTP {status(head)} {head[:100]!r} {body[:200]!r}")
    return head


class Client:
    """One client of the server on a protocol family (a benchmarks.latency FAMILIES key): on
    the handshake family, its session (see the module's text); on 2026-07-28, nothing to hold.
    Each call on a connection of its own, `connecting` bounding how many are opened at once."""

    def __init__(self, port: int, protocol: str, connecting: asyncio.Semaphore) -> None:
        self.port = port
        self.protocol = protocol
        self.connecting = connecting
        self.session: str | None = None
        self.sent = 1  # initialize's id
        """The last JSON-RPC id used: a session's requests in flight must not share one (the
        SDK's server routes each answer by its id, and two alike hang)."""
        self.stream: asyncio.StreamWriter | None = None
        """The handshake session's GET event stream, held open."""

    async def open(self) -> Client:
        if self.protocol != "handshake":
            return self
        head = await exchange(
            self.port, http(self.port, "POST", "", False, INITIALIZE), self.connecting
        )
        self.session = header(head, b"mcp-session-id")
        if self.session is None:
            raise RuntimeError(f"initialize answered without a session: {head!r}")
        route = session_headers(self.session)
        done = await exchange(
            self.port, http(self.port, "POST", route, False, INITIALIZED), self.connecting
        )
        if status(done) != 202:
            raise RuntimeError(f"notifications/initialized: {done!r}")
        get = RawCall(
            self.port, http(self.port, "GET", f"Cache-Control: no-store\r\n{route}", True)
        )
        await get.send(self.connecting)
        assert get.reader is not None
        head = await get.reader.readuntil(b"\r\n\r\n")
        self.stream = get.writer
        if status(head) != 200:
            raise RuntimeError(f"GET stream: {head!r}")
        return self

    def request(self, tool: str, arguments: dict[str, Any], keep_alive: bool = False) -> bytes:
        """A tools/call with the next id (the same bytes may be sent again once answered)."""
        self.sent += 1
        return raw_request(self.port, tool, arguments, keep_alive, self.session, self.sent)

    def call_of(self, tool: str, arguments: dict[str, Any]) -> RawCall:
        return RawCall(self.port, self.request(tool, arguments), tool)

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """A tools/call's structured result; raises if it failed."""
        raw = self.call_of(tool, arguments)
        await raw.send(self.connecting)
        return await raw.result()

    async def close(self) -> None:
        """Ends the handshake session with DELETE, as the SDK client does on exit."""
        if self.session is None:
            return
        route = session_headers(self.session)
        try:
            await exchange(self.port, http(self.port, "DELETE", route, False), self.connecting)
        finally:
            self.session = None
            if self.stream is not None:
                self.stream.close()


# ---------------------------------------------------------------------------- keep-alive


class _Wire(asyncio.Protocol):
    """One TCP connection's answers: each taken whole when its last byte arrives (the end of
    its body, or a chunked stream's last chunk), so that a call costs one wake-up."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[bytes] | None = None
        self.closed = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.answer is not None and not self.answer.done() and self._complete():
            self.answer.set_result(bytes(self.buffer))
            self.buffer.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("the server closed the connection"))

    def _complete(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).lower()
        if b"transfer-encoding: chunked" in head:
            return self.buffer.endswith(b"\r\n0\r\n\r\n")
        length = head.find(b"content-length:")
        if length < 0:
            raise RuntimeError(f"an answer without a length: {head[:200]!r}")
        size = int(head[length + 15 :].split(b"\r\n", 1)[0])
        return len(self.buffer) >= end + 4 + size


class KeptConnection:
    """Raw tools/calls, one after another, on a keep-alive HTTP/1.1 connection (opened again
    if the server closed it while idle). A bare protocol rather than streams, so that the load
    costs as little CPU per message as it can."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.wire: _Wire | None = None

    async def call(self, tool: str, request: bytes) -> dict[str, Any]:
        """Sends `request` (from raw_request, keep-alive) and returns the call's result."""
        if self.wire is None or self.wire.closed:
            loop = asyncio.get_running_loop()
            transport, self.wire = await loop.create_connection(_Wire, "127.0.0.1", self.port)
            self.wire.transport = transport  # uvloop may call connection_made later
        assert self.wire.transport is not None
        self.wire.answer = asyncio.get_running_loop().create_future()
        self.wire.transport.write(request)
        raw = await self.wire.answer
        end = raw.index(b"\r\n\r\n")
        head, body = raw[:end], raw[end + 4 :]
        if b"chunked" in head.lower():
            body = _unchunk(body)
        return structured(tool, head, body)

    def close(self) -> None:
        if self.wire is not None and self.wire.transport is not None:
            self.wire.transport.close()


def _unchunk(body: bytes) -> bytes:
    """A whole chunked body (RFC 9112 7.1, no extensions or trailers) as its bytes."""
    out = bytearray()
    at = 0
    while True:
        line_end = body.index(b"\r\n", at)
        size = int(body[at:line_end], 16)
        if size == 0:
            return bytes(out)
        out += body[line_end + 2 : line_end + 2 + size]
        at = line_end + 4 + size
