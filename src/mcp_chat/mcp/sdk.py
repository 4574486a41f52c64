"""The one door to the insides of the MCP SDK (`mcp`, pinned to its minor release) and of
FastMCP (pinned likewise): every private name mcp-chat borrows, what for, and nothing else.

Each borrowed name has a test in tests/test_sdk.py that fails, naming it, when an upgrade
takes it away or changes its kind. Everything else in mcp-chat uses public names only
(`ServerSession.connection`, `Connection.session_id`, `Connection.state`, ...).

Borrowed:

- `FastMCP._mcp_server`, the SDK's low-level server FastMCP builds: its handlers, its
  initialization options, its lifespan (stdio.py serves it on streams of our own, since
  `FastMCP.run_stdio_async` takes no stdout and no choice of era), its resource-subscription
  handler (resources.py), the `server_info_stamp` 2026-07-28 results carry (fastcalls.py), and
  its `get_tool_input_schema` hook (see `cache_input_schemas`).
- `ServerSession._connection`: the per-client `Connection` (its `state`, its teardown
  `exit_stack`, its session id) behind the session a request's context carries. The SDK's
  `Context.connection` is the public name for it, but the runner hands handlers a
  `ServerRequestContext` whose session has no public way to it (mcp 2.3).
- `ServerRunner.on_request` / `on_notify` (mcp.server.runner), cached properties whose values
  are the runner's own bound methods: a reference cycle per 2026-07-28 request, patched away by
  `no_runner_cycles`.
- `modern_error_data` (mcp.server.runner, not exported): the error the SDK answers a
  2026-07-28 request with when its handler raises; the short road answers the same.
- `StreamableHTTPSessionManager._server_instances` (sessions by id), `_session_owners` (the
  credential each session was opened with) and `_admit_session` (registers a new session, or
  None at the cap): sessions.py caps and evicts, and the short road serves a handshake-era
  session's plain calls only when the SDK would (the session open, the credential its own).
- `StreamableHTTPServerTransport._requests_in_flight` and `_idle_timeout`: a session's idle
  countdown is suspended while a request is in flight; the short road holds it the same way
  (`in_flight`), so a session busy only with short-road calls is not closed as idle.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from operator import attrgetter
from typing import Any

import anyio
from fastmcp import FastMCP
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import ServerRunner
from mcp.server.runner import modern_error_data as _modern_error_data
from mcp.server.session import ServerSession
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import ErrorData

Admit = Callable[[Any], StreamableHTTPServerTransport | None]


def lowlevel(server: FastMCP) -> Server[Any]:
    """The SDK server FastMCP built for `server`."""
    inner: Server[Any] = server._mcp_server
    return inner


def connection_of(session: ServerSession) -> Connection:
    """The connection a request's session speaks on."""
    connection: Connection = session._connection
    return connection


def cache_input_schemas(server: FastMCP, schemas: Mapping[str, Mapping[str, Any]]) -> None:
    """Give the SDK a by-name lookup of input schemas (a constructor argument FastMCP does not
    pass on). Without it, the 2026-07-28 HTTP path validates each tools/call's parameters by
    running a whole tools/list through the middleware first, which cost more than the call
    itself (see benchmarks/)."""
    lowlevel(server).get_tool_input_schema = schemas.get


def no_runner_cycles() -> None:
    """The SDK (mcp 2.3) keeps `ServerRunner.on_request` and `on_notify` as cached properties
    whose values are the runner's own bound methods: a reference cycle, and a runner is made
    for every 2026-07-28 request. Each left its connection, exit stack, events and request
    behind for the garbage collector's oldest generation, which is what kept memory up after a
    burst of clients (benchmarks.waits figure H). Plain properties give the same methods
    without the cycle."""
    for name in ("on_request", "on_notify"):
        if isinstance(vars(ServerRunner).get(name), cached_property):
            setattr(ServerRunner, name, property(attrgetter(f"_{name}")))


def modern_error_data(exc: Exception) -> ErrorData:
    """The error the SDK answers a 2026-07-28 request with when its handler raises `exc`."""
    return _modern_error_data(exc)


def session_transports(
    manager: StreamableHTTPSessionManager,
) -> dict[str, StreamableHTTPServerTransport]:
    """The manager's open handshake-era sessions by id (its own dict, live)."""
    sessions = manager._server_instances
    if not isinstance(sessions, dict):
        raise RuntimeError("StreamableHTTPSessionManager._server_instances is not a dict")
    return sessions


def wrap_admission(manager: StreamableHTTPSessionManager, wrap: Callable[[Admit], Admit]) -> None:
    """Replaces the manager's admission of a new session (`_admit_session(requestor)`, called
    under its creation lock) with `wrap(admit)`."""
    admit: Admit = manager._admit_session
    # An instance attribute: the manager calls `self._admit_session(...)`, which finds it.
    setattr(manager, "_admit_session", wrap(admit))  # noqa: B010


def owns_session(manager: StreamableHTTPSessionManager, session_id: str, user: Any) -> bool:
    """Whether a request by `user` (the ASGI scope's) may use the session, as the manager
    decides it: the session was opened with the same credential, or neither had one."""
    requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
    return bool(requestor == manager._session_owners.get(session_id))


def session_closing(transport: StreamableHTTPServerTransport) -> bool:
    """The session is over, or its idle time ran out and it is being closed."""
    scope = transport.idle_scope
    return transport.is_terminated or (scope is not None and scope.cancel_called)


@contextlib.contextmanager
def in_flight(transport: StreamableHTTPServerTransport) -> Iterator[None]:
    """Counts a request as in flight on the session, as `transport.handle_request` does: the
    idle countdown stops while any is, and restarts when the last one ends."""
    scope, timeout = transport.idle_scope, transport._idle_timeout
    if scope is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1
    scope.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1
        if not transport._requests_in_flight:
            scope.deadline = anyio.current_time() + timeout
