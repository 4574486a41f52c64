"""The benchmarks' raw load generator (benchmarks/raw.py) sends what the official SDK client
sends, on both protocol families: both are run through a loopback proxy in front of a real
server, and the requests they wrote are compared (the MCP headers and JSON bodies; not the
HTTP client's own headers, ids, or the client's name)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from benchmarks import raw
from mcp import Client as SdkClient

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.anyio

HTTP_CLIENT_HEADERS = {
    "host",
    "user-agent",
    "accept-encoding",
    "connection",
    "content-length",
    "cache-control",
}
"""Headers of the HTTP client rather than of MCP (httpx's, or the raw client's own)."""

Request = tuple[str, dict[str, str], dict[str, Any] | None]
"""A request as compared: its method, its MCP headers, its JSON body (ids and names out)."""


def parse(stream: bytes) -> list[Request]:
    """The HTTP/1.1 requests one connection carried, in order."""
    requests: list[Request] = []
    while stream:
        head, _, stream = stream.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        body, stream = stream[:size], stream[size:]
        requests.append((lines[0].split()[0], headers, json.loads(body) if body else None))
    return requests


def comparable(request: Request, session: str | None) -> Request:
    method, headers, body = request
    kept = {k: v for k, v in headers.items() if k not in HTTP_CLIENT_HEADERS}
    if "mcp-session-id" in kept:
        assert kept["mcp-session-id"] == session
        kept["mcp-session-id"] = "<session>"
    if body is not None:
        body.pop("id", None)
        params = body.get("params") or {}
        params.pop("clientInfo", None)
        (params.get("_meta") or {}).pop("io.modelcontextprotocol/clientInfo", None)
    return method, kept, body


@asynccontextmanager
async def recording(port: int) -> AsyncIterator[tuple[int, list[bytearray]]]:
    """A loopback proxy to `port`: its own port, and what each connection through it sent."""
    sent: list[bytearray] = []

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, into: bytearray | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if into is not None:
                    into += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        sent.append(bytearray())
        await asyncio.gather(
            pipe(reader, upstream_writer, sent[-1]), pipe(upstream_reader, writer, None)
        )

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1], sent
    finally:
        proxy.close()


def requests_of(sent: list[bytearray], session: str | None) -> list[Request]:
    """The requests of every connection, each connection's in order; the standalone GET
    stream last (the SDK opens it alongside its first request, so its place varies)."""
    found = [comparable(r, session) for stream in sent for r in parse(bytes(stream))]
    return sorted(found, key=lambda r: r[0] == "GET")


def session_of(sent: list[bytearray]) -> str | None:
    for stream in sent:
        for _, headers, _ in parse(bytes(stream)):
            if "mcp-session-id" in headers:
                return headers["mcp-session-id"]
    return None


async def by_sdk(port: int, mode: str) -> list[Request]:
    async with recording(port) as (through, sent):
        async with SdkClient(f"http://127.0.0.1:{through}/mcp", mode=mode) as client:
            await client.call_tool("join_room", {"display_name": "x"})
        await asyncio.sleep(0.2)
    return requests_of(sent, session_of(sent))


async def by_raw(port: int, protocol: str) -> list[Request]:
    async with recording(port) as (through, sent):
        client = await raw.Client(through, protocol, asyncio.Semaphore(10)).open()
        session = client.session
        await client.call("join_room", display_name="x")
        await client.close()
        await asyncio.sleep(0.2)
    return requests_of(sent, session)


async def test_handshake_session_as_the_sdk_opens_uses_and_closes_it(
    http_server: ServerProcess,
) -> None:
    sdk = await by_sdk(http_server.port, "legacy")
    # mcp.Client lists the tools after its first call, to check results against their output
    # schemas: once per session, and not the load's business.
    sdk = [r for r in sdk if (r[2] or {}).get("method") != "tools/list"]
    ours = await by_raw(http_server.port, "handshake")
    assert [r[0] for r in ours] == ["POST", "POST", "POST", "DELETE", "GET"]
    assert ours == sdk


async def test_modern_tool_call_as_the_sdk_sends_it(http_server: ServerProcess) -> None:
    sdk = [r for r in await by_sdk(http_server.port, "auto") if r[2] is not None]
    calls = [r for r in sdk if r[2] and r[2]["method"] == "tools/call"]
    assert len(calls) == 1
    ours = await by_raw(http_server.port, "modern")
    assert ours == calls
