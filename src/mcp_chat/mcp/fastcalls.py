"""A short road for the two calls every chat is made of: 2026-07-28 `tools/call`s of
`send_message` and `wait_for_message`.

Over HTTP, the SDK serves each 2026-07-28 request with its own kernel (a task group with two
tasks, a memory stream, a connection, a session), and FastMCP adds its context, dependency
injection and middleware chain: about 1.5 ms of CPU per call on the benchmark machine, more
than the chat's own work, and about 75 KB held by a wait_for_message for as long as it blocks,
which can be minutes (10,000 waiting assistants would cost most of a gigabyte).

`FastCalls` answers the plain case of those two calls itself, with the SDK's own parsing and
checks (`classify_inbound_request`, the routing-header checks, the per-version parameter
schema) and the same answer, byte for byte: the same tool bodies (`tools.post`,
`tools.receive`), and the same JSON-RPC message (see `FastCalls._answer`). A client that hangs
up cancels its wait.

One thing differs from the SDK, on purpose: when a wait answers. An answer that is there at
once goes out as JSON, as the SDK would send it; a wait that blocks commits its response to
an event stream at once (the SDK does so after 15 s, or when it has a notification to send),
pinging every `PING_EVERY` seconds, and its answer goes out later as one event. Both are the
transport's standard forms, and every client reads both. The recipient's client has then
already had the response's headers when the message comes: one write and one wake-up on the
path of a delivery instead of two, which took the send-to-receive latency from about 1.25 to
1.1 times a no-op call's on the benchmark machine (benchmarks.latency, figure A). A send
answers in JSON, as the SDK does.

Anything else goes on to the SDK untouched, body included: other methods and tools, the
handshake-era protocol, a progress token (its keepalive notifications are the SDK's),
`_meta` beyond the protocol's envelope, `Mcp-Param-*` headers, arguments of another type
than declared or missing (the SDK's coercion and its error shapes stay the only ones), and
anything the SDK would reject. It sits inside the Host/Origin guard and the token check; a
request whose token did not pass goes on to be refused by FastMCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pydantic_core
from fastmcp import FastMCP
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.runner import modern_error_data
from mcp.server.streamable_http import check_accept_headers
from mcp.shared.inbound import (
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
    JSONRPCError,
    RequestId,
)
from mcp_types import methods as spec_methods
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_chat.chat import ChatService
from mcp_chat.mcp.results import Result
from mcp_chat.mcp.tools import post, receive
from mcp_chat.metrics import Metrics

STREAM_AFTER = 0.001
"""Seconds after which an unanswered wait commits its response to an event stream (see the
module's text; read at each wait)."""
PING_EVERY = 15.0
"""Seconds between the event stream's pings (the SDK's interval; read at each wait, so tests
may shorten it)."""
MAX_BODY: Final = 64 * 1024
"""Bigger bodies go to the SDK unread. A wait's request is a few hundred bytes; a send of a
message close to the largest size (`max_message_bytes`, 64 KiB by default) takes the SDK's
road."""

_ENVELOPE: Final = frozenset(
    {PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY}
)
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final[Message] = {"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True}


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _seq_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


Run = Callable[[ChatService, dict[str, Any]], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class FastTool:
    """A tool this road serves: its arguments (each with the check a value must pass, as
    the declared type would take it without coercion), which are required, and its body."""

    name: str
    arguments: Mapping[str, Callable[[Any], bool]]
    required: frozenset[str]
    run: Run
    blocks: bool
    """Blocks until something happens: streamed after STREAM_AFTER, ended by a hang-up."""


TOOLS: Final = {
    t.name: t
    for t in (
        FastTool(
            "send_message",
            {
                "room_id": _text,
                "client_id": _text,
                "message": _text,
                "message_key": _text_or_none,
            },
            frozenset({"room_id", "client_id", "message"}),
            lambda chat, a: post(
                chat, a["room_id"], a["client_id"], a["message"], a.get("message_key")
            ),
            blocks=False,
        ),
        FastTool(
            "wait_for_message",
            {
                "room_id": _text,
                "client_id": _text,
                "timeout": _seconds,
                "after": _seq_or_none,
                "mentions_only": _flag,
            },
            frozenset({"room_id", "client_id"}),
            lambda chat, a: receive(
                chat,
                a["room_id"],
                a["client_id"],
                a.get("timeout", chat.limits.default_wait),
                a.get("after"),
                a.get("mentions_only", False),
            ),
            blocks=True,
        ),
    )
}
_NAMES: Final = {name.encode(): name for name in TOOLS}


@dataclass(frozen=True, slots=True)
class Call:
    request_id: RequestId
    version: str
    tool: FastTool
    arguments: dict[str, Any]


class FastCalls:
    """ASGI middleware: serves the plain 2026-07-28 send_message and wait_for_message POSTs
    to `path` (see the module's text) and passes everything else on."""

    def __init__(
        self,
        app: ASGIApp,
        chat: ChatService,
        server: FastMCP,
        metrics: Metrics | None = None,
        path: str = "/mcp",
        required_scopes: tuple[str, ...] | None = None,
    ) -> None:
        """`required_scopes`: None when the server has no auth; else a request is served only
        if its token passed and carries these scopes."""
        self.app, self.chat, self.server, self.metrics = app, chat, server, metrics
        self.path = path
        self.required_scopes = required_scopes
        self._stamp: dict[str, Any] | None = None  # the server's identity, as results carry it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tool = self._candidate(scope)
        if tool is None:
            await self.app(scope, receive, send)
            return
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
        call = (
            parse(scope, body, tool)
            if received[-1]["type"] == "http.request" and not received[-1].get("more_body")
            else None
        )
        if call is None:
            await self.app(scope, _replay(received, receive), send)
            return
        await self._serve(call, scope, receive, send)

    def _candidate(self, scope: Scope) -> FastTool | None:
        """The tool the request's headers name, if it may be one for this road: cheap checks
        on the request line and headers, before any body is read."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return None
        version = name = length = None
        for key, value in scope["headers"]:
            if key == b"mcp-protocol-version":
                version = value
            elif key == b"mcp-name":
                name = value
            elif key == b"content-length":
                length = value
            elif key.startswith(b"mcp-param-"):
                return None
        tool = _NAMES.get(name) if name is not None else None
        if (
            tool is None
            or version is None
            or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
            or length is None
            or not length.isdigit()
            or int(length) > MAX_BODY
        ):
            return None
        if self.required_scopes is not None:
            user, auth = scope.get("user"), scope.get("auth")
            if not isinstance(user, AuthenticatedUser) or auth is None:
                return None
            if any(s not in auth.scopes for s in self.required_scopes):
                return None
        has_json, has_sse = check_accept_headers(Request(scope))
        return TOOLS[tool] if has_json and has_sse else None

    async def _serve(self, call: Call, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        structured: dict[str, Any] | None = None
        try:
            if not call.tool.blocks:
                answer, structured = self._answer(
                    call, await call.tool.run(self.chat, call.arguments)
                )
                await Response(answer, media_type="application/json")(scope, receive, send)
                return
            structured = await self._serve_blocking(call, scope, receive, send)
        finally:
            if self.metrics is not None and structured is not None:
                self.metrics.observe_call(call.tool.name, time.perf_counter() - started, structured)

    async def _serve_blocking(
        self, call: Call, scope: Scope, receive: Receive, send: Send
    ) -> dict[str, Any] | None:
        """Serves a call that may block (see the module's text); returns its structured
        result, or None if the client hung up first."""
        work = asyncio.ensure_future(call.tool.run(self.chat, call.arguments))
        gone = asyncio.ensure_future(_disconnect(receive))
        streaming = False
        try:
            while not work.done():
                pause = PING_EVERY if streaming else STREAM_AFTER
                await asyncio.wait((work, gone), timeout=pause, return_when="FIRST_COMPLETED")
                if gone.done() and not work.done():
                    return None  # the client hung up: the wait is cancelled below
                if work.done():
                    break
                if streaming:
                    await send(_PING)
                else:
                    streaming = True
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS}
                    )
            answer, structured = self._answer(call, work.result())
            if streaming:
                frame = b"event: message\r\ndata: " + answer + b"\r\n\r\n"
                await send({"type": "http.response.body", "body": frame, "more_body": False})
            else:
                await Response(answer, media_type="application/json")(scope, receive, send)
            return structured
        finally:
            for task in (work, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    def _answer(self, call: Call, out: Result) -> tuple[bytes, dict[str, Any] | None]:
        """The JSON-RPC response as the SDK would write it, and the structured result.

        Built directly, in the shape FastMCP and the SDK give a tool's structured result (the
        result as JSON text and as structured content, then the 2026-07-28 fields): their
        own conversion, validation and two more serialisations cost 0.2 ms here, on the path
        of every delivery. tests/e2e/test_fastcalls.py holds both to the same bytes."""
        try:
            if self._stamp is None:
                self._stamp = self.server._mcp_server.server_info_stamp
            structured: dict[str, Any] | None = out.model_dump(mode="json")
            result = {
                "content": [{"text": pydantic_core.to_json(out).decode(), "type": "text"}],
                "isError": not out.success,
                "resultType": "complete",
                "structuredContent": structured,
                "_meta": {SERVER_INFO_META_KEY: self._stamp},
            }
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": call.request_id, "result": result}
        except Exception as exc:
            error = JSONRPCError(jsonrpc="2.0", id=call.request_id, error=modern_error_data(exc))
            message = error.model_dump(mode="json", by_alias=True, exclude_none=True)
            structured = None
        return json.dumps(message, separators=(",", ":")).encode(), structured


def parse(scope: Scope, body: bytes, tool: FastTool) -> Call | None:
    """The call of `tool` (the tool the headers name) this request makes, if the SDK would
    serve it as a plain tools/call with well-typed arguments; None sends it to the SDK."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict) or decoded.get("method") != "tools/call":
        return None
    request_id = decoded.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    if decoded.get("jsonrpc") != "2.0" or set(decoded) != {"jsonrpc", "id", "method", "params"}:
        return None
    params = decoded["params"]
    if not isinstance(params, dict) or not set(params) <= {"name", "arguments", "_meta"}:
        return None
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not set(meta) <= _ENVELOPE:
        return None
    if params.get("name") != tool.name or progress_token_from_params(params) is not None:
        return None
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    if find_duplicated_routing_header(headers) is not None:
        return None
    verdict = classify_inbound_request(decoded, headers=dict(headers))
    if isinstance(verdict, InboundLadderRejection):
        return None
    try:
        spec_methods.validate_client_request("tools/call", verdict.protocol_version, params)
    except (ValidationError, KeyError):
        return None
    arguments = params.get("arguments", {})
    if not isinstance(arguments, dict) or not tool.required <= set(arguments):
        return None
    for key, value in arguments.items():
        check = tool.arguments.get(key)
        if check is None or not check(value):
            return None
    return Call(request_id, verdict.protocol_version, tool, arguments)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A receive that hands out what was already read, then goes on reading."""
    pending = list(received)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
