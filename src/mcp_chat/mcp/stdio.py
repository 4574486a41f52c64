"""MCP over stdin/stdout, with channel pushes written on stdout between the SDK's messages, and
plain sends and waits served on a short road.

With pushes on, the process serves the handshake era only: Claude Code probes a stdio
server with `server/discover` and takes the 2026-07-28 revision when it is offered, and it
registers a channel only on a handshake-era connection. So the probe is answered as a
handshake-only server answers it (JSON-RPC -32601, method not found), and the client falls
back to `initialize`. With pushes off, both eras stay offered.

The SDK's low-level server (borrowed through `sdk.lowlevel`: `FastMCP.run_stdio_async` gives
no way to pass stdout, nor to choose the era) is served on streams of our own, with
`mcp.server.runner.serve_loop` ("handshake-only loop mode") or `serve_dual_era_loop` (both
eras, what `Server.run` serves), both public.

When stdin and stdout are pipes (as an assistant starts a server), they are read and written
on the event loop itself: the SDK's transport hands every line to a worker thread and back
(twice for a write: the line, then the flush), which cost more CPU per delivered message than
the chat's work. And once the client's era is known (the handshake completed, or a 2026-07-28
first request), plain `send_message` and `wait_for_message` calls are answered by the short
road (`road.Road`, shared with HTTP): the same checks, the same bytes, the process's one
client session, without the SDK's dispatcher, runner and FastMCP's tool machinery. A
`notifications/cancelled` for one of them cancels it, as the SDK would.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from mcp.server.runner import serve_dual_era_loop, serve_loop
from mcp.server.stdio import stdio_server
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from mcp_types import PROTOCOL_VERSION_META_KEY, RequestId

from mcp_chat.chat import ChatService
from mcp_chat.mcp import sdk
from mcp_chat.mcp.channel import Channels, notification
from mcp_chat.mcp.road import (
    Call,
    Family,
    Road,
    checked_call,
    modern_envelope_version,
    plain_request,
)
from mcp_chat.metrics import Metrics, timed
from mcp_chat.presence import Session, current_session
from mcp_chat.push import Push, Undelivered

log = logging.getLogger(__name__)

LINE_LIMIT = sys.maxsize
"""No limit on the length of a line read from stdin, as the SDK's reader has none: the client
is the assistant that started this process, and a message is at most `max_message_bytes`
(64 KiB by default) anyway, refused with `message_too_large` beyond it."""


class Wire:
    """stdout, which the SDK's transport, the short road and pushes share: one writer at a
    time, and each line written (to the pipe, or flushed) before it counts as delivered."""

    def __init__(self, out: asyncio.StreamWriter | anyio.AsyncFile[str]) -> None:
        self._out = out
        self._lock = anyio.Lock()

    async def write(self, text: str) -> int:
        """The SDK's transport writes a message and its newline, then flushes."""
        await self.line(text.encode())
        return len(text)

    async def flush(self) -> None:
        """Nothing left to do: `line` wrote through."""

    async def line(self, data: bytes) -> None:
        async with self._lock:
            if isinstance(self._out, asyncio.StreamWriter):
                self._out.write(data if data.endswith(b"\n") else data + b"\n")
                await self._out.drain()  # (the high-water mark is 0: until it is all written)
            else:
                await self._out.write(
                    data.decode() if data.endswith(b"\n") else data.decode() + "\n"
                )
                await self._out.flush()

    async def push(self, push: Push) -> None:
        """Write one channel notification as a line; Undelivered if the pipe is gone."""
        try:
            await self.line(notification(push).encode())
        except (OSError, ValueError, RuntimeError) as exc:  # a closed pipe, or a closed file
            raise Undelivered from exc


class StdioRoad:
    """Reads stdin's lines for the SDK's transport, less the plain calls it serves itself (see
    the module's text)."""

    def __init__(self, road: Road, wire: Wire, session: Session, handshake_only: bool) -> None:
        self.road, self.wire, self.session = road, wire, session
        self.era: Family | None = "handshake" if handshake_only else None
        """The client's protocol family, once its first request told the SDK."""
        self.ready = False
        """A handshake-era client has initialized (or 2026-07-28: always, once known)."""
        self.version = LATEST_HANDSHAKE_VERSION
        self.calls: dict[RequestId, asyncio.Task[None]] = {}

    async def lines(self, reader: asyncio.StreamReader) -> AsyncIterator[str]:
        while line := await reader.readline():
            text = line.decode("utf-8", errors="replace")
            if not self.take(text):
                yield text

    def take(self, line: str) -> bool:
        """Serves the line if it is a call for this road; False hands it to the SDK."""
        if '"method"' not in line:
            return False  # (a response to the server, or not JSON-RPC at all)
        try:
            decoded = json.loads(line)
        except (ValueError, RecursionError):
            return False
        if not isinstance(decoded, dict):
            return False
        if self.ready and (call := self._call(decoded)) is not None:
            task = asyncio.create_task(self._serve(call))
            self.calls[call.request_id] = task
            task.add_done_callback(lambda _: self.calls.pop(call.request_id, None))
            return True
        self._note(decoded)
        return False

    def _call(self, decoded: dict[str, Any]) -> Call | None:
        found = plain_request(decoded, self.road.tools)
        if found is None:
            return None
        params, tool = found
        if self.era == "modern":
            version = modern_envelope_version(decoded, params)
        else:
            version = self.version if params.get("_meta", {}) == {} else None
        assert self.era is not None
        return checked_call(decoded, params, tool, self.era, version)

    def _note(self, decoded: dict[str, Any]) -> None:
        """What a line for the SDK tells of the client's era and its requests."""
        method, params = decoded.get("method"), decoded.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "notifications/cancelled":
            task = self.calls.get(params.get("requestId"))  # type: ignore[arg-type]
            if task is not None:
                task.cancel()
        elif method == "notifications/initialized":
            self.ready = self.era == "handshake"
        elif "id" in decoded and self.era is None:
            # The first request decides the era, as the SDK's dual-era loop decides it.
            meta = params.get("_meta")
            modern = isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta
            self.era = "modern" if modern and method != "initialize" else "handshake"
            self.ready = self.era == "modern"
        if method == "initialize" and self.era == "handshake":
            asked = params.get("protocolVersion")
            if isinstance(asked, str) and asked in HANDSHAKE_PROTOCOL_VERSIONS:
                self.version = asked

    async def _serve(self, call: Call) -> None:
        current_session.set(self.session)  # (this task's own context)
        with timed(self.road.metrics, call.tool.name) as timing:
            out = await call.tool.run(self.road.chat, call.arguments)
            data, structured = self.road.answer(call, out)
            try:
                await self.wire.line(data)
            except (OSError, RuntimeError) as exc:
                log.debug("an answer was not written: %s", exc)
                return
            timing.result = structured

    def close(self) -> None:
        for task in list(self.calls.values()):
            task.cancel()


def _is_stream(fd: int) -> bool:
    """A pipe, socket or terminal, which the event loop can read or write itself."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@contextlib.contextmanager
def _claimed(fd: int, stand_in: int) -> Iterator[int]:
    """The descriptor's open file, on a descriptor of its own; `fd` points at `stand_in`
    meanwhile (so that nothing else reads the client's input, or writes on its wire), as the
    SDK's own stdio transport does."""
    own = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(stand_in, fd)
    try:
        yield own
    finally:
        os.dup2(own, fd)
        os.close(own)


@contextlib.contextmanager
def _claimed_stdout() -> Iterator[io.TextIOWrapper]:
    """The wire, on a descriptor of its own; file descriptor 1 points at stderr meanwhile, so
    that nothing else printed reaches the client as a broken message."""
    with _claimed(1, 2) as wire:
        yield io.TextIOWrapper(os.fdopen(wire, "wb", closefd=False), encoding="utf-8")


@contextlib.asynccontextmanager
async def _pipes() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """stdin and stdout, read and written on the event loop (both must be streams)."""
    loop = asyncio.get_running_loop()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        with _claimed(0, null) as stdin, _claimed(1, 2) as stdout:
            reader = asyncio.StreamReader(limit=LINE_LIMIT)
            read, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader),
                os.fdopen(stdin, "rb", 0, closefd=False),
            )
            write, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
                os.fdopen(stdout, "wb", 0, closefd=False),
            )
            write.set_write_buffer_limits(high=0)
            writer = asyncio.StreamWriter(write, protocol, None, loop)
            try:
                yield reader, writer
            finally:
                read.close()
                write.close()
    finally:
        os.close(null)


async def serve_stdio(
    server: FastMCP,
    channels: Channels | None,
    session: Session,
    chat: ChatService | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Serve `server` on stdin/stdout until the client closes stdin. `session` is the
    process's (every call speaks through it); with `channels`, its participants are pushed.
    With `chat`, plain sends and waits take the short road (see the module's text)."""
    token = set_transport("stdio")
    try:
        if chat is not None and _is_stream(0) and _is_stream(1):
            async with _pipes() as (reader, writer):
                wire = Wire(writer)
                road = StdioRoad(Road(chat, server, metrics), wire, session, channels is not None)
                try:
                    await _serve(server, channels, session, wire, road.lines(reader))
                finally:
                    road.close()
        else:
            with _claimed_stdout() as out:
                await _serve(server, channels, session, Wire(anyio.wrap_file(out)), None)
    finally:
        reset_transport(token)


async def _serve(
    server: FastMCP,
    channels: Channels | None,
    session: Session,
    wire: Wire,
    lines: AsyncIterator[str] | None,
) -> None:
    lowlevel = sdk.lowlevel(server)
    stdin: Any = None if lines is None else _Lines(lines)
    async with (
        lowlevel.lifespan(lowlevel) as state,
        stdio_server(stdin=stdin, stdout=wire) as (read, write),  # type: ignore[arg-type]
    ):
        options = lowlevel.create_initialization_options()
        if channels is None:
            await serve_dual_era_loop(
                lowlevel, read, write, lifespan_state=state, init_options=options
            )
            return
        feed = channels.stdio_feed(session, wire.push)
        try:
            await serve_loop(lowlevel, read, write, lifespan_state=state, init_options=options)
        finally:
            await feed.close()


class _Lines:
    """An async iterable of lines, as the SDK's transport reads stdin."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines
