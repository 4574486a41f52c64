"""A short road for the two calls every chat is made of: plain `tools/call`s of `send_message`
and `wait_for_message`, on both protocol families over HTTP.

The SDK serves a 2026-07-28 request with its own kernel (a task group with two tasks, a memory
stream, a connection, a session), and a handshake-era (2025-11-25) session's request through
its transport's memory streams, an event-stream response with a task group of its own, the
session's dispatcher and runner; FastMCP adds its context, dependency injection and middleware
chain. That cost more CPU per call than the chat's own work (about 1.5 ms a call on 2026-07-28,
more on the handshake family: benchmarks.cpu), and a 2026-07-28 wait_for_message held about
75 KB for as long as it blocked.

`FastCalls` answers the plain case of those two calls itself, with the SDK's own parsing and
checks (`classify_inbound_request`, the routing-header checks, the per-version parameter
schema), the tool's own input schema as FastMCP registered it (`road.FastTool.of`: the
arguments, which are required, their types and defaults) and the same answer, byte for byte: the
same tool bodies (`tools.post`, `tools.receive`), and the same JSON-RPC message (`road.Road`,
which stdio.py's road shares).
A client that hangs up cancels its wait.

- 2026-07-28: an answer that is there at once goes out as JSON, as the SDK would send it; a
  wait that blocks commits its response to an event stream at once (the SDK does so after 15 s,
  or when it has a notification to send), pinging every `PING_EVERY` seconds, and its answer
  goes out later as one event. Both are the transport's standard forms, and every client reads
  both. The recipient's client has then already had the response's headers when the message
  comes: one write and one wake-up on the path of a delivery instead of two, which took the
  send-to-receive latency from about 1.25 to 1.1 times a no-op call's (benchmarks.latency, A).
- Handshake era: a call on an open session (the `Mcp-Session-Id` of one this server opened, with
  the credential that opened it, its client initialized): a wait is answered on an event stream,
  as the SDK answers it (headers at once, pings every `PING_EVERY` seconds, the answer as one
  event); a send in JSON, as the SDK's JSON-response mode answers it (see `_serve`). It
  speaks through the session's connection (`connections.py`: its participants are gone when the
  session closes) and holds the session's idle countdown while it is in flight, as the SDK does.

Anything else goes on to the SDK untouched, body included: other methods and tools, a progress
token (its keepalive notifications are the SDK's), `_meta` beyond the protocol's envelope,
`Mcp-Param-*` headers, arguments of another type than declared or missing (the SDK's coercion
and its error shapes stay the only ones), a session that is unknown, closing or not yet
initialized, and anything the SDK would reject. It sits inside the Host/Origin guard and the
token check; a request whose token did not pass goes on to be refused by FastMCP. On a server
without tokens, the front door (`mcp.door`) hands it most of its requests before those layers,
once the guard has passed their gate (`at_door`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from fastmcp import FastMCP
from mcp.server.streamable_http import check_accept_headers
from mcp.shared.inbound import find_duplicated_routing_header
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_chat.auth import token_passed
from mcp_chat.chat import ChatService
from mcp_chat.mcp import sdk
from mcp_chat.mcp.connections import Connections
from mcp_chat.mcp.road import (
    BODIES,
    Call,
    Family,
    FastTool,
    Road,
    checked_call,
    modern_envelope_version,
    plain_request,
)
from mcp_chat.mcp.sessions import Sessions
from mcp_chat.metrics import Metrics, timed
from mcp_chat.presence import current_session

log = logging.getLogger(__name__)

STREAM_AFTER = 0.001
"""Seconds after which an unanswered 2026-07-28 wait commits its response to an event stream
(see the module's text; read at each wait)."""
PING_EVERY = 15.0
"""Seconds between the event stream's pings (the SDK's interval; read at each wait, so tests
may shorten it)."""
MAX_BODY: Final = 64 * 1024
"""Bigger bodies go to the SDK unread. A wait's request is a few hundred bytes; a send of a
message close to the largest size (`max_message_bytes`, 64 KiB by default) takes the SDK's
road."""

MAX_GATES: Final = 64
"""The most gates `FastCalls.passed` holds (a server bound to every address takes any Host):
requests through the others go the long way, through the guard, as before."""

Gate = tuple[Any, str, bytes | None, bytes | None]
"""What FastMCP's Host/Origin guard decides on (fastmcp 4.2: `HostOriginGuardMiddleware`):
the address the request arrived on (the ASGI scope's `server`), its scheme, and its Host and
Origin headers."""

DECLINED: Final = "mcp_chat.fastcalls.declined"
"""Set in the ASGI scope of a request the front door handed this road: one it passes on to the
stack is not read and parsed a second time when it reaches this middleware there."""

_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final = b": ping\r\n\r\n"
_JSON: Final = (b"content-type", b"application/json")


class FastCalls:
    """ASGI middleware: serves the plain send_message and wait_for_message POSTs to `path` (see
    the module's text) and passes everything else on."""

    def __init__(
        self,
        app: ASGIApp,
        chat: ChatService,
        server: FastMCP,
        metrics: Metrics | None = None,
        path: str = "/mcp",
        required_scopes: tuple[str, ...] | None = None,
        sessions: Sessions | None = None,
        connections: Connections | None = None,
    ) -> None:
        """`required_scopes`: None when the server has no auth; else a request is served only
        if its token passed and carries these scopes. `sessions` and `connections`: the
        handshake-era sessions, whose calls are served only with both."""
        self.app, self.chat = app, chat
        self.road = Road(chat, server, metrics)
        self.path = path
        self.required_scopes = required_scopes
        self.sessions, self.connections = sessions, connections
        self.passed: set[Gate] = set()
        """The gates of requests that reached this middleware: those passed the guard."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None if DECLINED in scope else self._candidate(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        family, gate = found
        # Here, the request has passed the Host/Origin guard: its gate may take the front door.
        if gate not in self.passed and len(self.passed) < MAX_GATES:
            self.passed.add(gate)
        await self.take(family, scope, receive, send, self.app)

    def inside(self, app: ASGIApp) -> FastCalls:
        """This middleware, in front of `app`: its place in Starlette's stack (a factory for
        `starlette.middleware.Middleware`, when the front door holds it too)."""
        self.app = app
        return self

    def at_door(self, scope: Scope) -> Family | None:
        """The family of a request the front door (`mcp.door`) may hand this road before the
        layers in front of it: a candidate, on a server without tokens, whose gate (what the
        Host/Origin guard decides on) a request already passed the guard with."""
        if self.required_scopes is not None:
            return None
        found = self._candidate(scope)
        if found is None or found[1] not in self.passed:
            return None
        return found[0]

    async def take(
        self, family: Family, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp
    ) -> None:
        """Reads the body of a candidate request of `family`; serves it if it is a plain call
        of one of the road's tools, else hands it, body included, to `fallback`."""
        received: list[Message] = []
        body = b""
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body") or len(body) > MAX_BODY:
                break
        whole = received[-1]["type"] == "http.request" and not received[-1].get("more_body")
        call = parse(scope, body, family, self.road.tools) if whole else None
        if call is None:
            await fallback(scope, _replay(received, receive), send)
        elif call.family == "modern":
            await self._serve(call, scope, receive, send)
        else:
            await self._serve_in_session(call, scope, _replay(received, receive), send, fallback)

    def _candidate(self, scope: Scope) -> tuple[Family, Gate] | None:
        """The protocol family and gate of a request that may be one for this road: cheap
        checks on the request line and headers, before any body is read."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return None
        version = name = length = session_id = host = origin = None
        for key, value in scope["headers"]:
            if key == b"mcp-protocol-version":
                version = value
            elif key == b"mcp-name":
                name = value
            elif key == b"content-length":
                length = value
            elif key == b"mcp-session-id":
                session_id = value
            elif key == b"host" and host is None:  # the first, as the guard reads it
                host = value
            elif key == b"origin" and origin is None:
                origin = value
            elif key.startswith(b"mcp-param-"):
                return None
        if version is None or length is None or not length.isdigit() or int(length) > MAX_BODY:
            return None
        family: Family
        if version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS:
            if session_id is None or self.connections is None or self.sessions is None:
                return None
            family = "handshake"
        elif name is not None and name.decode("latin-1") in BODIES:
            family = "modern"
        else:
            return None
        if self.required_scopes is not None and not token_passed(scope, self.required_scopes):
            return None
        has_json, has_sse = check_accept_headers(Request(scope))
        if not (has_json and has_sse):
            return None
        return family, (scope.get("server"), scope["scheme"], host, origin)

    async def _serve_in_session(
        self, call: Call, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp
    ) -> None:
        """A handshake-era call: served on its session, if the SDK would serve it there."""
        assert self.sessions is not None and self.connections is not None
        session_id = _header(scope, b"mcp-session-id")
        transport = self.sessions.transport(session_id)
        found = self.connections.find(session_id)
        manager = self.sessions.manager
        if (
            transport is None
            or found is None
            or manager is None
            or sdk.session_closing(transport)
            or not sdk.owns_session(manager, session_id, scope.get("user"))
        ):
            await fallback(scope, receive, send)
            return
        headers = [
            (b"cache-control", b"no-cache, no-transform"),
            (b"connection", b"keep-alive"),
            (b"content-type", b"text/event-stream"),
            (b"mcp-session-id", session_id.encode("latin-1")),
            (b"x-accel-buffering", b"no"),
        ]
        token = current_session.set(found[1])
        try:
            with sdk.in_flight(transport):
                # A send does not block: answered in JSON (see `_serve`).
                stream = headers if call.tool.blocks else None
                await self._serve(call, scope, receive, send, stream, session_id)
        finally:
            current_session.reset(token)

    async def _serve(
        self,
        call: Call,
        scope: Scope,
        receive: Receive,
        send: Send,
        stream: list[tuple[bytes, bytes]] | None = None,
        session_id: str | None = None,
    ) -> None:
        """Serves `call`: in JSON, or with `stream` (an event stream's headers) as one event
        after those headers, sent at once. On a handshake-era session (`session_id`), a call
        that does not block (a send) is answered in JSON too: what the SDK writes for a
        session in its JSON-response mode (the transport lets a server answer a POST either
        way, and every client takes both), where its default mode streams one event, which
        costs the server its framing and the client its event parsing on every send."""
        with timed(self.road.metrics, call.tool.name) as timing:
            structured: dict[str, Any] | None
            if not call.tool.blocks and stream is None:
                out = await call.tool.run(self.chat, call.arguments)
                # 2026-07-28: as the SDK writes it, \\u-escaped
                answer, structured = self.road.answer(call, out, ascii_only=session_id is None)
                await _send_json(send, answer, session_id)
            else:
                structured = await self._serve_streamed(call, scope, receive, send, stream)
            timing.result = structured

    async def _serve_streamed(
        self,
        call: Call,
        scope: Scope,
        receive: Receive,
        send: Send,
        stream: list[tuple[bytes, bytes]] | None,
    ) -> dict[str, Any] | None:
        """Serves a call that may block, or one on an event stream from the start (see the
        module's text); returns its structured result, or None if the client hung up first."""
        work = asyncio.ensure_future(call.tool.run(self.chat, call.arguments))
        gone = asyncio.ensure_future(_disconnect(receive))
        streaming = stream is not None
        if stream is not None:
            await send({"type": "http.response.start", "status": 200, "headers": stream})
        try:
            while not work.done():
                pause = PING_EVERY if streaming else STREAM_AFTER
                await asyncio.wait((work, gone), timeout=pause, return_when="FIRST_COMPLETED")
                if gone.done() and not work.done():
                    return None  # the client hung up: the wait is cancelled below
                if work.done():
                    break
                if streaming:
                    ping = _PING if stream is None else _sse_starlette_ping()
                    await send({"type": "http.response.body", "body": ping, "more_body": True})
                else:
                    streaming = True
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS}
                    )
            # The SDK's 2026-07-28 answers over HTTP are \\u-escaped, the handshake era's not.
            answer, structured = self.road.answer(call, work.result(), call.family == "modern")
            if streaming:
                frame = b"event: message\r\ndata: " + answer + b"\r\n\r\n"
                await send({"type": "http.response.body", "body": frame, "more_body": False})
            else:
                await _send_json(send, answer)
            return structured
        finally:
            for task in (work, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


def parse(scope: Scope, body: bytes, family: Family, tools: Mapping[str, FastTool]) -> Call | None:
    """The call this HTTP request makes, if the SDK would serve it as a plain tools/call of one
    of `tools` with well-typed arguments; None sends it to the SDK."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    found = plain_request(decoded, tools)
    if found is None:
        return None
    params, tool = found
    if family == "modern":
        version = _modern_version(scope, decoded, params, tool)
    else:
        version = _header(scope, b"mcp-protocol-version")
        if params.get("_meta", {}) != {}:
            return None
    return checked_call(decoded, params, tool, family, version)


def _modern_version(
    scope: Scope, decoded: dict[str, Any], params: dict[str, Any], tool: FastTool
) -> str | None:
    """The protocol version of a 2026-07-28 request the SDK would take, naming `tool` in its
    routing headers as in its body; None if it would not."""
    if _header(scope, b"mcp-name") != tool.name:
        return None
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    if find_duplicated_routing_header(headers) is not None:
        return None
    return modern_envelope_version(decoded, params, dict(headers))


async def _send_json(send: Send, answer: bytes, session_id: str | None = None) -> None:
    """`answer` as a JSON response, with the headers starlette's `Response` gives it (as the
    SDK answers: for a session, its id; in the same order), without building one."""
    length = (b"content-length", b"%d" % len(answer))
    headers = [length, _JSON]
    if session_id is not None:
        headers = [_JSON, (b"mcp-session-id", session_id.encode("latin-1")), length]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


def _sse_starlette_ping() -> bytes:
    """The keep-alive comment the SDK's event streams (sse-starlette's) send."""
    return f": ping - {datetime.now(UTC)}\r\n\r\n".encode()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A receive that hands out what was already read, then goes on reading."""
    pending = list(received)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
