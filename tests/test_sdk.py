"""Each private name of the MCP SDK or FastMCP that `mcp_chat.mcp.sdk` borrows is still there
and of the kind it expects: an upgrade that takes one away fails here, by name, before it
fails anywhere else."""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

import pytest
from fastmcp import Client as FastMCPClient
from fastmcp import Context, FastMCP
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import ServerRunner
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INTERNAL_ERROR, ErrorData

from mcp_chat.mcp import sdk

pytestmark = pytest.mark.anyio


def test_fastmcp_keeps_its_sdk_server_as_mcp_server() -> None:
    """`FastMCP._mcp_server`, with what stdio.py, resources.py and fastcalls.py use of it."""
    server = FastMCP("probe")
    inner = sdk.lowlevel(server)
    assert isinstance(inner, Server)
    for name in ("lifespan", "create_initialization_options", "add_request_handler"):
        assert callable(getattr(inner, name)), name
    assert isinstance(inner.server_info_stamp, dict)


def test_the_sdk_server_takes_an_input_schema_lookup() -> None:
    server = FastMCP("probe")
    sdk.cache_input_schemas(server, {"t": {"type": "object"}})
    lookup = sdk.lowlevel(server).get_tool_input_schema
    assert lookup is not None and lookup("t") == {"type": "object"}
    assert "get_tool_input_schema" in inspect.signature(Server.__init__).parameters


async def test_a_request_session_holds_its_connection() -> None:
    """`ServerSession._connection`, reached from a tool's request context."""
    server = FastMCP("probe")
    seen: list[Any] = []

    @server.tool
    async def probe(ctx: Context) -> str:
        assert ctx.request_context is not None
        seen.append(sdk.connection_of(ctx.request_context.session))
        return "ok"

    async with FastMCPClient(server) as client:
        await client.call_tool("probe", {})
    assert len(seen) == 1 and isinstance(seen[0], Connection)
    assert isinstance(seen[0].state, dict)


def test_server_runner_handlers_are_cached_properties_of_private_methods() -> None:
    """`ServerRunner.on_request`/`on_notify` (cached properties, or the plain properties
    `no_runner_cycles` puts in their place) over `_on_request`/`_on_notify`."""
    sdk.no_runner_cycles()
    for name in ("on_request", "on_notify"):
        assert isinstance(vars(ServerRunner)[name], cached_property | property), name
        assert callable(getattr(ServerRunner, f"_{name}")), name


def test_modern_error_data_maps_an_exception() -> None:
    error = sdk.modern_error_data(RuntimeError("boom"))
    assert isinstance(error, ErrorData) and error.code == INTERNAL_ERROR


def test_the_session_manager_keeps_sessions_owners_and_admission() -> None:
    """`StreamableHTTPSessionManager._server_instances`, `_session_owners`, `_admit_session`."""
    manager = StreamableHTTPSessionManager(app=sdk.lowlevel(FastMCP("probe")))
    assert sdk.session_transports(manager) == {}
    admitted: list[Any] = []

    def wrap(admit: sdk.Admit) -> sdk.Admit:
        def counting(requestor: Any) -> StreamableHTTPServerTransport | None:
            admitted.append(requestor)
            return admit(requestor)

        return counting

    assert list(inspect.signature(manager._admit_session).parameters) == ["requestor"]
    # ... and new sessions are still admitted through it, under the creation lock.
    assert "self._admit_session(requestor)" in inspect.getsource(StreamableHTTPSessionManager)
    sdk.wrap_admission(manager, wrap)
    transport = manager._admit_session(None)
    assert admitted == [None] and isinstance(transport, StreamableHTTPServerTransport)
    session_id = transport.mcp_session_id
    assert session_id is not None and sdk.session_transports(manager) == {session_id: transport}
    assert sdk.owns_session(manager, session_id, None)
    assert isinstance(manager._session_owners, dict)


def test_a_transport_counts_its_requests_in_flight() -> None:
    """`StreamableHTTPServerTransport._requests_in_flight` and `_idle_timeout`."""
    transport = StreamableHTTPServerTransport(mcp_session_id="s", idle_timeout=5.0)
    assert transport._requests_in_flight == 0
    assert transport._idle_timeout == 5.0
    assert not sdk.session_closing(transport)
