"""The short road's shared parts, for both transports (HTTP in fastcalls.py, stdio in
stdio.py): the tools it serves, with their arguments, required ones and defaults taken from the
input schemas FastMCP registered (`FastTool.of`); the checks that a decoded JSON-RPC request is
a plain call of one of them (`plain_request`, `checked_call`, `modern_envelope_version`: the
SDK's own parsing and checks); and `Road`, which answers a call in the bytes the SDK would
write and times it as every tool call is timed (`metrics.timed`)."""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import pydantic_core
from fastmcp import FastMCP
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
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

from mcp_chat.chat import ChatService
from mcp_chat.mcp import sdk
from mcp_chat.mcp.results import Result
from mcp_chat.mcp.tools import post, receive
from mcp_chat.metrics import Metrics

log = logging.getLogger(__name__)

_ENVELOPE: Final = frozenset(
    {PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY}
)

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


def modern_envelope_version(
    decoded: dict[str, Any], params: dict[str, Any], headers: dict[str, str] | None = None
) -> str | None:
    """The protocol version of a 2026-07-28 request whose `_meta` is the protocol's envelope
    and nothing more, as the SDK's validation ladder reads it (with the HTTP request's
    `headers`, if any); None if it would refuse it."""
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not set(meta) <= _ENVELOPE:
        return None
    verdict = classify_inbound_request(decoded, headers=headers)
    if isinstance(verdict, InboundLadderRejection):
        return None
    return verdict.protocol_version
