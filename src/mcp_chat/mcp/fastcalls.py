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
schema), the tool's own input schema as FastMCP registered it (`FastTool.of`: the arguments,
which are required, their types and defaults) and the same answer, byte for byte: the same tool
bodies (`tools.post`, `tools.receive`), and the same JSON-RPC message (see `FastCalls._answer`).
A client that hangs up cancels its wait.

- 2026-07-28: an answer that is there at once goes out as JSON, as the SDK would send it; a
  wait that blocks commits its response to an event stream at once (the SDK does so after 15 s,
  or when it has a notification to send), pinging every `PING_EVERY` seconds, and its answer
  goes out later as one event. Both are the transport's standard forms, and every client reads
  both. The recipient's client has then already had the response's headers when the message
  comes: one write and one wake-up on the path of a delivery instead of two, which took the
  send-to-receive latency from about 1.25 to 1.1 times a no-op call's (benchmarks.latency, A).
- Handshake era: a call on an open session (the `Mcp-Session-Id` of one this server opened, with
  the credential that opened it, its client initialized) is answered on an event stream, as the
  SDK answers it: headers at once, pings every `PING_EVERY` seconds, the answer as one event. It
  speaks through the session's connection (`connections.py`: its participants are gone when the
  session closes) and holds the session's idle countdown while it is in flight, as the SDK does.

Anything else goes on to the SDK untouched, body included: other methods and tools, a progress
token (its keepalive notifications are the SDK's), `_meta` beyond the protocol's envelope,
`Mcp-Param-*` headers, arguments of another type than declared or missing (the SDK's coercion
and its error shapes stay the only ones), a session that is unknown, closing or not yet
initialized, and anything the SDK would reject. It sits inside the Host/Origin guard and the
token check; a request whose token did not pass goes on to be refused by FastMCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import pydantic_core
from fastmcp import FastMCP
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

from mcp_chat.auth import token_passed
from mcp_chat.chat import ChatService
from mcp_chat.mcp import sdk
from mcp_chat.mcp.connections import Connections
from mcp_chat.mcp.results import Result
from mcp_chat.mcp.sessions import Sessions
from mcp_chat.mcp.tools import post, receive
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

_ENVELOPE: Final = frozenset(
    {PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY}
)
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final = b": ping\r\n\r\n"

Body = Callable[..., Awaitable[Result]]
BODIES: Final[dict[str, tuple[Body, bool]]] = {
    "send_message": (post, False),
    "wait_for_message": (receive, True),
}
"""The tools this road serves: the body each shares with its FastMCP tool, and whether it may
block (streamed, ended by a hang-up). Their arguments come from the tools' input schemas."""


@dataclass(frozen=True, slots=True)
class FastTool:
    """A tool this road serves: its arguments (each with the check a value must pass, as the
    declared type would take it without coercion), which are required, their defaults, and
    its body."""

    name: str
    arguments: Mapping[str, Callable[[Any], bool]]
    required: frozenset[str]
    defaults: Mapping[str, Any]
    body: Body
    blocks: bool

    @classmethod
    def of(cls, name: str, schema: Mapping[str, Any], body: Body, blocks: bool) -> FastTool:
        """The tool as its input schema (FastMCP's, from its signature) declares it. A schema
        this road cannot check exactly as the SDK would (a constraint beyond the type) is
        refused, loudly: the road would otherwise answer calls the SDK refuses."""
        properties: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})
        taken = set(inspect.signature(body).parameters) - {"chat"}
        if set(properties) != taken:
            raise ValueError(
                f"{name}: the tool's arguments {sorted(properties)} are not its body's "
                f"{sorted(taken)}"
            )
        return cls(
            name,
            {key: _check(name, key, prop) for key, prop in properties.items()},
            frozenset(schema.get("required", ())),
            {key: prop["default"] for key, prop in properties.items() if "default" in prop},
            body,
            blocks,
        )

    async def run(self, chat: ChatService, arguments: Mapping[str, Any]) -> Result:
        return await self.body(chat, **{**self.defaults, **arguments})


_TYPES: Final[dict[str, Callable[[Any], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_WORDS: Final = frozenset({"type", "anyOf", "default", "description", "title"})


def _check(tool: str, key: str, prop: Mapping[str, Any]) -> Callable[[Any], bool]:
    """The check of one argument's JSON schema: a type, or any of some types."""
    kinds = list(prop["anyOf"]) if "anyOf" in prop else [{"type": prop.get("type")}]
    names = [kind.get("type") for kind in kinds]
    if not set(prop) <= _WORDS or any(set(kind) != {"type"} for kind in kinds):
        raise ValueError(f"{tool}.{key}: a schema this road cannot check: {dict(prop)}")
    checks = tuple(_TYPES[name] for name in names if isinstance(name, str) and name in _TYPES)
    if len(checks) != len(kinds):
        raise ValueError(f"{tool}.{key}: a type this road cannot check: {dict(prop)}")
    return checks[0] if len(checks) == 1 else lambda v: any(check(v) for check in checks)


Family = Literal["modern", "handshake"]


@dataclass(frozen=True, slots=True)
class Call:
    request_id: RequestId
    version: str
    tool: FastTool
    arguments: dict[str, Any]
    family: Family = "modern"


class Road:
    """What the short roads of both transports (HTTP here, stdio in stdio.py) share: the tools,
    from their registered input schemas; the answer, as the SDK writes it; and the metrics,
    recorded for every call either serves (as `server.ChatMiddleware` records the SDK's)."""

    def __init__(self, chat: ChatService, server: FastMCP, metrics: Metrics | None) -> None:
        self.chat, self.server, self.metrics = chat, server, metrics
        self._stamp: dict[str, Any] | None = None  # the server's identity, as results carry it
        self._tools: dict[str, FastTool] | None = None

    @property
    def tools(self) -> dict[str, FastTool]:
        """The tools this road serves, from their registered input schemas (known once the
        server's lifespan has run: see `server._cache_input_schemas`)."""
        if self._tools is None:
            schema_of = sdk.lowlevel(self.server).get_tool_input_schema
            self._tools = {}
            for name, (body, blocks) in BODIES.items():
                schema = schema_of(name) if schema_of else None
                try:
                    if schema is not None:
                        self._tools[name] = FastTool.of(name, schema, body, blocks)
                except ValueError as exc:  # tests/e2e/test_fastcalls.py fails on it first
                    log.error("%s: its calls take the SDK's road", exc)
        return self._tools

    def answer(
        self, call: Call, out: Result, ascii_only: bool = False
    ) -> tuple[bytes, dict[str, Any] | None]:
        """The JSON-RPC response as the SDK would write it, and the structured result.

        Built directly, in the shape FastMCP and the SDK give a tool's structured result (the
        result as JSON text and as structured content, then, on 2026-07-28, its own fields):
        their own conversion, validation and two more serialisations cost 0.2 ms here, on the
        path of every delivery. The SDK writes pydantic's JSON (UTF-8), but for 2026-07-28 over
        HTTP (`ascii_only`, \\u-escaped). tests/e2e/test_fastcalls.py and test_stdio_road.py
        hold both roads to the same bytes."""
        try:
            structured: dict[str, Any] | None = out.model_dump(mode="json")
            result: dict[str, Any] = {
                "content": [{"text": pydantic_core.to_json(out).decode(), "type": "text"}],
                "isError": not out.success,
            }
            if call.family == "modern":
                if self._stamp is None:
                    self._stamp = sdk.lowlevel(self.server).server_info_stamp
                result["resultType"] = "complete"
                result["structuredContent"] = structured
                result["_meta"] = {SERVER_INFO_META_KEY: self._stamp}
            else:
                result["structuredContent"] = structured
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": call.request_id, "result": result}
        except Exception as exc:
            error = sdk.modern_error_data(exc)
            message = JSONRPCError(jsonrpc="2.0", id=call.request_id, error=error).model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
            structured = None
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=ascii_only)
        return data.encode(), structured


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        family = self._candidate(scope)
        if family is None:
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
        whole = received[-1]["type"] == "http.request" and not received[-1].get("more_body")
        call = parse(scope, body, family, self.road.tools) if whole else None
        if call is None:
            await self.app(scope, _replay(received, receive), send)
        elif call.family == "modern":
            await self._serve(call, scope, receive, send)
        else:
            await self._serve_in_session(call, scope, _replay(received, receive), send)

    def _candidate(self, scope: Scope) -> Family | None:
        """The protocol family of a request that may be one for this road: cheap checks on the
        request line and headers, before any body is read."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return None
        version = name = length = session_id = None
        for key, value in scope["headers"]:
            if key == b"mcp-protocol-version":
                version = value
            elif key == b"mcp-name":
                name = value
            elif key == b"content-length":
                length = value
            elif key == b"mcp-session-id":
                session_id = value
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
        return family if has_json and has_sse else None

    async def _serve_in_session(
        self, call: Call, scope: Scope, receive: Receive, send: Send
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
            await self.app(scope, receive, send)
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
                await self._serve(call, scope, receive, send, headers)
        finally:
            current_session.reset(token)

    async def _serve(
        self,
        call: Call,
        scope: Scope,
        receive: Receive,
        send: Send,
        stream: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Serves `call`: in JSON, or with `stream` (an event stream's headers) as one event
        after those headers, sent at once."""
        with timed(self.road.metrics, call.tool.name) as timing:
            structured: dict[str, Any] | None
            if not call.tool.blocks and stream is None:
                out = await call.tool.run(self.chat, call.arguments)
                answer, structured = self.road.answer(call, out, ascii_only=True)
                await Response(answer, media_type="application/json")(scope, receive, send)
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
                await Response(answer, media_type="application/json")(scope, receive, send)
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


def plain_request(
    decoded: Any, tools: Mapping[str, FastTool]
) -> tuple[dict[str, Any], FastTool] | None:
    """A decoded JSON-RPC message's params and tool, if it is a plain tools/call of one of
    `tools` (no more than the protocol's fields, no progress token)."""
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
    name = params.get("name")
    tool = tools.get(name) if isinstance(name, str) else None
    if tool is None or progress_token_from_params(params) is not None:
        return None
    return params, tool


def checked_call(
    decoded: dict[str, Any],
    params: dict[str, Any],
    tool: FastTool,
    family: Family,
    version: str | None,
) -> Call | None:
    """The call, if its params are valid at `version` and its arguments are of the declared
    types; else None."""
    if version is None:
        return None
    try:
        spec_methods.validate_client_request("tools/call", version, params)
    except (ValidationError, KeyError):
        return None
    arguments = params.get("arguments", {})
    if not isinstance(arguments, dict) or not tool.required <= set(arguments):
        return None
    for key, value in arguments.items():
        check = tool.arguments.get(key)
        if check is None or not check(value):
            return None
    return Call(decoded["id"], version, tool, arguments, family)


def modern_envelope_version(decoded: dict[str, Any], params: dict[str, Any]) -> str | None:
    """The protocol version of a 2026-07-28 request whose `_meta` is the protocol's envelope
    and nothing more, as the SDK's validation ladder reads it; None if it would refuse it."""
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not set(meta) <= _ENVELOPE:
        return None
    verdict = classify_inbound_request(decoded)
    if isinstance(verdict, InboundLadderRejection):
        return None
    return verdict.protocol_version


def _modern_version(
    scope: Scope, decoded: dict[str, Any], params: dict[str, Any], tool: FastTool
) -> str | None:
    """The protocol version of a 2026-07-28 request the SDK would take, naming `tool` in its
    routing headers as in its body; None if it would not."""
    if modern_envelope_version(decoded, params) is None:
        return None
    if _header(scope, b"mcp-name") != tool.name:
        return None
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    if find_duplicated_routing_header(headers) is not None:
        return None
    verdict = classify_inbound_request(decoded, headers=dict(headers))
    if isinstance(verdict, InboundLadderRejection):
        return None
    return verdict.protocol_version


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
