"""MCP over stdin/stdout, with channel pushes written on stdout between the SDK's messages.

With pushes on, the process serves the handshake era only: Claude Code probes a stdio
server with `server/discover` and takes the 2026-07-28 revision when it is offered, and it
registers a channel only on a handshake-era connection. So the probe is answered as a
handshake-only server answers it (JSON-RPC -32601, method not found), and the client falls
back to `initialize`. With pushes off, both eras stay offered.

The SDK's low-level server (borrowed through `sdk.lowlevel`: `FastMCP.run_stdio_async` gives
no way to pass stdout, nor to choose the era) is served on streams of our own, with
`mcp.server.runner.serve_loop` ("handshake-only loop mode") or `serve_dual_era_loop` (both
eras, what `Server.run` serves), both public.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from collections.abc import Iterator
from typing import Any

import anyio
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from mcp.server.runner import serve_dual_era_loop, serve_loop
from mcp.server.stdio import stdio_server

from mcp_chat.mcp import sdk
from mcp_chat.mcp.channel import Channels, notification
from mcp_chat.presence import Session
from mcp_chat.push import Push, Undelivered


class Wire(anyio.AsyncFile[str]):
    """stdout for the SDK's stdio transport, which pushes share: one writer at a time, and
    each push is written and flushed before it counts as delivered."""

    def __init__(self, fp: Any) -> None:
        super().__init__(fp)
        self._lock = anyio.Lock()

    async def write(self, b: Any) -> int:
        async with self._lock:
            return await super().write(b)

    async def flush(self) -> None:
        async with self._lock:
            await super().flush()

    async def push(self, push: Push) -> None:
        """Write one channel notification as a line; Undelivered if the pipe is gone."""
        line = notification(push) + "\n"
        async with self._lock:
            try:
                await super().write(line)
                await super().flush()
            except (OSError, ValueError) as exc:  # a closed pipe, or a closed file
                raise Undelivered from exc


@contextlib.contextmanager
def _claimed_stdout() -> Iterator[io.TextIOWrapper]:
    """The wire, on a descriptor of its own; file descriptor 1 points at stderr meanwhile, so
    that nothing else printed reaches the client as a broken message (as the SDK's own stdio
    transport does when it is given no stdout)."""
    wire = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(2, 1)
    try:
        yield io.TextIOWrapper(os.fdopen(wire, "wb", closefd=False), encoding="utf-8")
    finally:
        os.dup2(wire, 1)
        os.close(wire)


async def serve_stdio(server: FastMCP, channels: Channels | None, session: Session) -> None:
    """Serve `server` on stdin/stdout until the client closes stdin. `session` is the
    process's (every call speaks through it); with `channels`, its participants are pushed."""
    lowlevel = sdk.lowlevel(server)
    token = set_transport("stdio")
    try:
        with _claimed_stdout() as out:
            wire = Wire(out)
            async with (
                lowlevel.lifespan(lowlevel) as state,
                stdio_server(stdout=wire) as (read, write),
            ):
                options = lowlevel.create_initialization_options()
                if channels is None:
                    await serve_dual_era_loop(
                        lowlevel, read, write, lifespan_state=state, init_options=options
                    )
                    return
                feed = channels.stdio_feed(session, wire.push)
                try:
                    await serve_loop(
                        lowlevel, read, write, lifespan_state=state, init_options=options
                    )
                finally:
                    await feed.close()
    finally:
        reset_transport(token)
