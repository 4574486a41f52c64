"""Builds the FastMCP server around a chat service."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import mcp.types as mt
from fastmcp import FastMCP
from fastmcp.exceptions import ValidationError
from fastmcp.server.auth import AuthProvider
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import Tool, ToolResult
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from mcp_chat import __version__
from mcp_chat.chat import ChatService
from mcp_chat.errors import Code
from mcp_chat.mcp import channel, sdk
from mcp_chat.mcp.channel import Channels
from mcp_chat.mcp.connections import Connections
from mcp_chat.mcp.prompts import register_prompts
from mcp_chat.mcp.resources import admit_read, register_resources
from mcp_chat.mcp.schemas import compact
from mcp_chat.mcp.tools import register_tools
from mcp_chat.metrics import Metrics, timed
from mcp_chat.presence import Session, current_session

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
mcp-chat: chat rooms shared with other assistants and people. join_room gives you a secret
client_id. Then loop: wait_for_message (blocks until someone speaks), reply with
send_message, repeat. Messages are kept, so nothing is missed between calls.
leave_chat ends your part."""


class ChatMiddleware(Middleware):
    """mcp-chat's one FastMCP middleware (one layer, so that a call blocked for minutes keeps
    one frame here, not the four-plus of each hook-style middleware in the chain):

    - tools/call: notes which participants each client connection speaks for (see
      `_connection_session`); turns argument validation failures into the tool's structured
      failure shape, with a sentence that names the arguments and never echoes their values
      (they may be secrets); times the call and counts failures by code (`metrics`).
    - tools/list: compacts the input schemas.
    - resources/read: a room URI whose key does not open the room is refused before FastMCP
      reads it (see `resources.admit_read`).
    - a request FastMCP passes here with its raw params (`context.message` a mapping: its
      "outer" pass, run when the request failed before reaching its handler, e.g. a
      tools/call whose `arguments` is a list): a failed validation is the caller's error,
      answered invalid params (-32602) with a sentence that names where, never what (the
      values may be secrets or message text), and logged in one debug line.
    """

    def __init__(
        self,
        chat: ChatService,
        metrics: Metrics | None = None,
        process_session: Session | None = None,
        channels: Channels | None = None,
        connections: Connections | None = None,
    ) -> None:
        self._chat = chat
        self._metrics = metrics
        self._process_session = process_session
        self._channels = channels
        self._connections = Connections(chat, channels) if connections is None else connections

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if isinstance(context.message, Mapping):
            return await self._unparsed(context, call_next)
        if context.method == "tools/call":
            return await self._call_tool(context, call_next)
        if context.method == "initialize":
            if self._process_session is None:
                # Known from the start, so that the short road (fastcalls.py) finds it.
                self._connection_session(context)
            if self._channels is not None:
                params = getattr(context.message, "params", None)
                client = getattr(getattr(params, "client_info", None), "name", None)
                self._channels.client_is(client if isinstance(client, str) else None)
        if context.method == "resources/read":
            async with admit_read(self._chat, str(context.message.uri)):
                return await call_next(context)
        if context.method == "tools/list":
            tools: Sequence[Tool] = await call_next(context)
            return [
                tool.model_copy(update={"parameters": compact(tool.parameters)}) for tool in tools
            ]
        return await call_next(context)

    async def _call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        token = current_session.set(self._process_session or self._connection_session(context))
        try:
            with timed(self._metrics, context.message.name) as timing:
                try:
                    result = await call_next(context)
                except ValidationError as exc:
                    result = ToolResult(
                        structured_content={
                            "success": False,
                            "error": _describe(exc.__cause__, context.message.name),
                            "code": Code.INVALID_ARGUMENT.value,
                        },
                        is_error=True,
                    )
                timing.result = structured = result.structured_content or {}
                if structured.get("success") is False and not result.is_error:
                    # A failure is a tool execution error to the protocol (isError: true), so
                    # that clients and the Inspector show it as one; the structured shape stays.
                    result = ToolResult(result.content, structured, result.meta, is_error=True)
                return result
        finally:
            current_session.reset(token)

    async def _unparsed(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """A request as FastMCP's outer pass hands it over: a copy of its raw params, since
        they did not parse (FastMCP 4.2, `server/low_level.py`, `_raw_message`: a documented
        behaviour of its root dispatch, relied on here to tell this pass apart). Before, the
        tools/call branch read `.name` off that mapping and crashed: the SDK answered -32603
        (code 0 on the handshake family) and logged the crash at ERROR, chained to the
        pydantic error whose `input_value` held the arguments (a client_id, a message's
        text). The SDK alone maps a pydantic error to a bare "Invalid request parameters";
        this says which param, and how it is wrong."""
        started = time.perf_counter()
        try:
            try:
                return await call_next(context)
            except PydanticValidationError as exc:
                method = context.method or "request"
                where = sorted({_where(err) for err in exc.errors()})
                log.debug("%s refused: invalid params at %s", method, ", ".join(where))
                raise MCPError(INVALID_PARAMS, _describe_request(exc, method)) from None
        except Exception:
            # A tools/call comes this way only when it failed before reaching its tool.
            if self._metrics is not None and context.method == "tools/call":
                self._metrics.observe_call(context.method, time.perf_counter() - started, None)
            raise

    def _connection_session(self, context: MiddlewareContext[Any]) -> Session | None:
        """The chat session of a handshake-era connection (see `connections.py`); None on
        2026-07-28, whose requests stand alone. Over stdio the whole process is one client:
        `process_session` covers every call."""
        request = context.fastmcp_context.request_context if context.fastmcp_context else None
        if request is None or request.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None
        return self._connections.session_of(sdk.connection_of(request.session))


def _where(err: ErrorDetails) -> str:
    return ".".join(str(p) for p in err.get("loc", ())) or "params"


_SHAPES = {
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a string",
    "missing": "is required",
    "extra_forbidden": "is not expected here",
}


def _describe_request(cause: PydanticValidationError, method: str) -> str:
    """What is wrong with a request's params, by place and kind only. Pydantic's own
    messages are not used: some quote the input (a union's tag, a custom validator's text)."""
    problems = [
        f"'{_where(err)}' {_SHAPES.get(err.get('type', ''), 'has a value of the wrong type')}"
        for err in cause.errors()
    ]
    hint = (
        " Pass the tool's arguments as an object by name, as its input schema declares."
        if any(_where(err) == "params.arguments" for err in cause.errors())
        else ""
    )
    return f"Invalid {method} request: " + "; ".join(problems) + "." + hint


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
    """See `sdk.cache_input_schemas`."""
    schemas: dict[str, Mapping[str, Any]] = {
        tool.name: tool.to_mcp_tool().input_schema
        for tool in await server.list_tools(run_middleware=False)
    }
    sdk.cache_input_schemas(server, schemas)


def create_server(
    chat: ChatService,
    stdio: bool = False,
    keepalive: float = 10.0,
    metrics: Metrics | None = None,
    auth: AuthProvider | None = None,
    channels: Channels | None = None,
    process_session: Session | None = None,
    connections: Connections | None = None,
) -> FastMCP:
    """A FastMCP server whose lifespan opens and closes `chat`. With `stdio`, the process
    serves one client (`process_session`, or one made here): when it ends, that client's
    participants are gone. `metrics` counts the tool calls; `auth` guards the server over
    HTTP; `channels` declares the Claude Code channel capability and pushes (`channel.py`)."""
    sdk.no_runner_cycles()
    if stdio and process_session is None:
        process_session = Session()

    @asynccontextmanager
    async def lifespan(_: FastMCP) -> AsyncIterator[dict[str, Any]]:
        await _cache_input_schemas(server)
        await chat.start()
        try:
            yield {}
        finally:
            if process_session is not None:
                await chat.heartbeat.disconnect(process_session)
            await chat.close()

    server = FastMCP(
        "mcp-chat",
        instructions=INSTRUCTIONS
        if channels is None
        else INSTRUCTIONS + "\n" + channel.INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        middleware=[ChatMiddleware(chat, metrics, process_session, channels, connections)],
        auth=auth,
        mask_error_details=True,
        experimental_capabilities=None if channels is None else {channel.CAPABILITY: {}},
    )
    register_tools(server, chat, keepalive)
    register_resources(server, chat)
    register_prompts(server)
    return server
