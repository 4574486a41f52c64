"""Builds the FastMCP server around a chat service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import mcp.types as mt
from fastmcp import FastMCP
from fastmcp.exceptions import ValidationError
from fastmcp.server.auth import AuthProvider
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError as PydanticValidationError

from mcp_chat import __version__
from mcp_chat.chat import ChatService
from mcp_chat.errors import Code
from mcp_chat.mcp.prompts import register_prompts
from mcp_chat.mcp.resources import register_resources
from mcp_chat.mcp.schemas import CompactSchemas
from mcp_chat.mcp.tools import register_tools
from mcp_chat.metrics import Metrics
from mcp_chat.presence import Session, current_session

INSTRUCTIONS = """\
mcp-chat: chat rooms shared with other assistants and people. join_room gives you a secret
client_id. Then loop: wait_for_message (blocks until someone speaks), reply with
send_message, repeat. Messages are kept, so nothing is missed between calls.
leave_chat ends your part."""


class ArgumentErrors(Middleware):
    """Turns argument validation failures into the tool's structured failure shape, with a
    sentence that names the arguments and never echoes their values (they may be secrets)."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        try:
            return await call_next(context)
        except ValidationError as exc:
            sentence = _describe(exc.__cause__, context.message.name)
            return ToolResult(
                structured_content={
                    "success": False,
                    "error": sentence,
                    "code": Code.INVALID_ARGUMENT.value,
                }
            )


class CallMetrics(Middleware):
    """Times every tool call and counts failures by code."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        started = time.perf_counter()
        structured: dict[str, Any] | None = None
        try:
            result = await call_next(context)
            structured = result.structured_content or {}
            return result
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_call(context.message.name, elapsed, structured)


class SessionTracking(Middleware):
    """Notes which participants each client connection speaks for, so that when the
    connection closes (a stdio client's process ends, an HTTP session is closed) they are
    marked gone and their rooms are told.

    Only handshake-era connections (2025-11-25 and older) have a lifetime beyond one request;
    2026-07-28 requests stand alone, so those participants go by silence instead. Over stdio
    the whole process is one client: `process_session` covers every call.
    """

    def __init__(self, chat: ChatService, process_session: Session | None = None) -> None:
        self._chat = chat
        self._process_session = process_session

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        session = self._process_session or self._connection_session(context)
        token = current_session.set(session)
        try:
            return await call_next(context)
        finally:
            current_session.reset(token)

    def _connection_session(self, context: MiddlewareContext[Any]) -> Session | None:
        request = context.fastmcp_context.request_context if context.fastmcp_context else None
        if request is None or request.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None
        # The SDK keeps the connection (with its teardown stack) on the request's session.
        connection = getattr(request.session, "_connection", None)
        if connection is None:
            return None
        session = connection.state.get(_SESSION_KEY)
        if session is None:
            session = connection.state[_SESSION_KEY] = Session()
            connection.exit_stack.push_async_callback(self._chat.disconnect, session)
        assert isinstance(session, Session)
        return session


_SESSION_KEY = "mcp_chat.session"


def _describe(cause: BaseException | None, tool: str) -> str:
    if not isinstance(cause, PydanticValidationError):
        return f"The arguments to {tool} are not valid. Check the tool's input schema."
    problems = []
    for err in cause.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        kind = err.get("type", "")
        if kind in ("missing", "missing_argument"):
            problems.append(f"'{where}' is required")
        elif kind in ("unexpected_keyword_argument", "extra_forbidden"):
            problems.append(f"'{where}' is not an argument of {tool}")
        else:
            problems.append(f"'{where}': {err.get('msg', 'invalid value')}")
    return f"Invalid arguments to {tool}: " + "; ".join(problems) + "."


async def _cache_input_schemas(server: FastMCP) -> None:
    """Give the SDK a by-name lookup of input schemas. Without it, the 2026-07-28 HTTP path
    validates each tools/call's parameters by running a whole tools/list through the
    middleware first, which cost more than the call itself (see benchmarks/)."""
    schemas: dict[str, Mapping[str, Any]] = {
        tool.name: tool.to_mcp_tool().input_schema
        for tool in await server.list_tools(run_middleware=False)
    }
    server._mcp_server.get_tool_input_schema = schemas.get


def create_server(
    chat: ChatService,
    stdio: bool = False,
    keepalive: float = 10.0,
    metrics: Metrics | None = None,
    auth: AuthProvider | None = None,
) -> FastMCP:
    """A FastMCP server whose lifespan opens and closes `chat`. With `stdio`, the process
    serves one client: when it ends, that client's participants are gone. `metrics` counts
    the tool calls; `auth` guards the server over HTTP."""
    process_session = Session() if stdio else None

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        await _cache_input_schemas(server)
        await chat.start()
        try:
            yield {}
        finally:
            if process_session is not None:
                await chat.disconnect(process_session)
            await chat.close()

    server = FastMCP(
        "mcp-chat",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        # The first is the outermost: metrics see failures after ArgumentErrors shaped them.
        middleware=[
            *([CallMetrics(metrics)] if metrics else []),
            SessionTracking(chat, process_session),
            ArgumentErrors(),
            CompactSchemas(),
        ],
        auth=auth,
        mask_error_details=True,
    )
    register_tools(server, chat, keepalive)
    register_resources(server, chat)
    register_prompts(server)
    return server
