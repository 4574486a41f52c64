"""A short road for the call that blocks: a 2026-07-28 `tools/call wait_for_message`.

Over HTTP, the SDK serves each 2026-07-28 request with its own kernel (a task group with two
tasks, a memory stream, a connection, a session), and FastMCP adds its context, dependency
injection and middleware chain. That is fine for a call that lasts a millisecond, but a
wait_for_message can stay blocked for minutes, holding all of it: about 75 KB a wait, so
that 10,000 waiting assistants cost most of a gigabyte.

`FastWaits` answers the plain case of that one call itself, with the SDK's own parsing and
checks (`classify_inbound_request`, the routing-header checks, the per-version parameter
schema) and the same answer, byte for byte: the same tool body (`tools.receive`), and the
same JSON-RPC message (see `FastWaits._answer`). A client that hangs up cancels the wait.

One thing differs from the SDK, on purpose: when. An answer that is there at once goes out as
JSON, as the SDK would send it; a wait that blocks commits its response to an event stream at
once (the SDK does so after 15 s, or when it has a notification to send), pinging every
`PING_EVERY` seconds, and its answer goes out later as one event. Both are the transport's
standard forms, and every client reads both. The recipient's client has then already had
the response's headers when the message comes: one write and one wake-up on the path of a
delivery instead of two, which took the send-to-receive latency from about 1.25 to 1.1 times
a no-op call's on the benchmark machine (benchmarks.latency, figure A).

Anything else goes on to the SDK untouched, body included: other methods and tools, the
handshake-era protocol, a progress token (its keepalive notifications are the SDK's),
`_meta` beyond the protocol's envelope, `Mcp-Param-*` headers, arguments of another type
than declared (the SDK's coercion and its error shapes stay the only ones), and anything
the SDK would reject. It sits inside the Host/Origin guard and the token check; a request
whose token did not pass goes on to be refused by FastMCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
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
from mcp_chat.mcp.results import WaitOut
from mcp_chat.mcp.tools import receive as wait_answer
from mcp_chat.metrics import Metrics

TOOL: Final = "wait_for_message"
STREAM_AFTER = 0.001
"""Seconds after which an unanswered wait commits its response to an event stream (see the
module's text; read at each wait)."""
PING_EVERY = 15.0
"""Seconds between the event stream's pings (the SDK's interval; read at each wait, so tests
may shorten it)."""
MAX_BODY: Final = 64 * 1024
"""A wait's request is a few hundred bytes; bigger bodies go to the SDK unread."""

_ENVELOPE: Final = frozenset(
    {PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY}
)
_ARGUMENTS: Final = frozenset({"room_id", "client_id", "timeout", "after"})
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final[Message] = {"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True}


@dataclass(frozen=True, slots=True)
class WaitCall:
    request_id: RequestId
    version: str
    room_id: str
    client_id: str
    timeout: float
    after: int | None


class FastWaits:
    """ASGI middleware: serves the plain 2026-07-28 wait_for_message POSTs to `path` (see the
    module's text) and passes everything else on."""

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
        if not self._candidate(scope):
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
            parse(scope, body, self.chat.limits.default_wait)
            if received[-1]["type"] == "http.request" and not received[-1].get("more_body")
            else None
        )
        if call is None:
            await self.app(scope, _replay(received, receive), send)
            return
        await self._serve(call, scope, receive, send)

    def _candidate(self, scope: Scope) -> bool:
        """Cheap checks on the request line and headers, before any body is read."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return False
        version = name = length = None
        for key, value in scope["headers"]:
            if key == b"mcp-protocol-version":
                version = value
            elif key == b"mcp-name":
                name = value
            elif key == b"content-length":
                length = value
            elif key.startswith(b"mcp-param-"):
                return False
        if (
            name != TOOL.encode()
            or version is None
            or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
            or length is None
            or not length.isdigit()
            or int(length) > MAX_BODY
        ):
            return False
        if self.required_scopes is not None:
            user, auth = scope.get("user"), scope.get("auth")
            if not isinstance(user, AuthenticatedUser) or auth is None:
                return False
            if any(s not in auth.scopes for s in self.required_scopes):
                return False
        has_json, has_sse = check_accept_headers(Request(scope))
        return has_json and has_sse

    async def _serve(self, call: WaitCall, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        structured: dict[str, Any] | None = None
        work = asyncio.ensure_future(
            wait_answer(self.chat, call.room_id, call.client_id, call.timeout, call.after)
        )
        gone = asyncio.ensure_future(_disconnect(receive))
        streaming = False
        try:
            while not work.done():
                pause = PING_EVERY if streaming else STREAM_AFTER
                await asyncio.wait((work, gone), timeout=pause, return_when="FIRST_COMPLETED")
                if gone.done() and not work.done():
                    return  # the client hung up: the wait is cancelled below
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
        finally:
            for task in (work, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.metrics is not None and structured is not None:
                self.metrics.observe_call(TOOL, time.perf_counter() - started, structured)

    def _answer(self, call: WaitCall, out: WaitOut) -> tuple[bytes, dict[str, Any] | None]:
        """The JSON-RPC response as the SDK would write it, and the structured result.

        Built directly, in the shape FastMCP and the SDK give a tool's structured result (the
        result as JSON text and as structured content, then the 2026-07-28 fields): their
        own conversion, validation and two more serialisations cost 0.2 ms here, on the path
        of every delivery. tests/e2e/test_fastwait.py holds both to the same bytes."""
        try:
            if self._stamp is None:
                self._stamp = self.server._mcp_server.server_info_stamp
            structured: dict[str, Any] | None = out.model_dump(mode="json")
            result = {
                "content": [{"text": pydantic_core.to_json(out).decode(), "type": "text"}],
                "isError": False,
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


def parse(scope: Scope, body: bytes, default_timeout: float) -> WaitCall | None:
    """The wait this request asks for, if the SDK would serve it as a plain tools/call of
    wait_for_message with well-typed arguments; None sends it to the SDK."""
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
    if params.get("name") != TOOL or progress_token_from_params(params) is not None:
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
    if not isinstance(arguments, dict) or not set(arguments) <= _ARGUMENTS:
        return None
    room_id, client_id = arguments.get("room_id"), arguments.get("client_id")
    timeout = arguments.get("timeout", default_timeout)
    after = arguments.get("after")
    if not (isinstance(room_id, str) and isinstance(client_id, str)):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return None
    if not math.isfinite(timeout):
        return None
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
        return None
    return WaitCall(request_id, verdict.protocol_version, room_id, client_id, timeout, after)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A receive that hands out what was already read, then goes on reading."""
    pending = list(received)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
