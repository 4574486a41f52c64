"""Handshake-era (2025-11-25) sessions over streamable HTTP: how many may be open at once, and
the longest-idle one closed to make room for a new client.

The SDK's session manager holds each session (its transport, its server task, its memory)
until the client sends DELETE or the session has been idle for `session_idle_timeout`; at
`max_sessions` it answers every new `initialize` with 503 "Too many open sessions". 10,000
clients that never said goodbye thus locked out every new handshake-era client for the SDK's
30 idle minutes. Here the idle timeout is ours to set (FastMCP passes it on), and at the cap the
session idle the longest is closed to admit the newcomer: a session with a request in flight
(a blocked wait, an open GET stream) is never idle. Only when every session is busy does a
newcomer get the SDK's 503.

A closed session ends the way an idle one does (its idle scope is cancelled), so its
connection's teardown runs: our disconnect bookkeeping marks its participants gone (see
`ChatMiddleware._connection_session`), and its id answers 404 from then on.

FastMCP makes the manager in its app's lifespan and offers no way to pass `max_sessions` or to
evict, so `install` wraps that lifespan and `Sessions.attach` takes hold of the manager it made.
Borrowed from the SDK (mcp 2.3), by name, because it has no public hook for either:

- `StreamableHTTPSessionManager._server_instances`, its sessions by id: counted for the gauge,
  and searched for the longest-idle one;
- `StreamableHTTPSessionManager._admit_session(requestor)`, which registers a new session or
  returns None at the cap, called under the manager's creation lock: wrapped, so that eviction
  happens at the moment of admission and the cap stays exact under concurrent handshakes.

`attach` refuses to start without them, and tests/e2e/test_sessions.py checks they are there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastmcp.server.http import StreamableHTTPASGIApp
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.routing import Route

log = logging.getLogger(__name__)

Admit = Callable[[Any], StreamableHTTPServerTransport | None]


class Sessions:
    """The handshake-era sessions of one HTTP app: at most `max_sessions` open."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._sessions: dict[str, StreamableHTTPServerTransport] | None = None

    @property
    def open(self) -> int:
        """Sessions open now (0 before the app starts and after it stops)."""
        return len(self._sessions) if self._sessions is not None else 0

    def attach(self, manager: StreamableHTTPSessionManager) -> None:
        """Takes hold of the manager FastMCP made: caps it, and wraps its admission."""
        sessions = getattr(manager, "_server_instances", None)
        admit: Admit | None = getattr(manager, "_admit_session", None)
        if not isinstance(sessions, dict) or admit is None:
            raise RuntimeError(
                "The MCP SDK's session manager no longer has _server_instances and "
                "_admit_session, which mcp_chat.mcp.sessions borrows: see its docstring."
            )
        self._sessions = sessions
        manager.max_sessions = self.max_sessions

        def admit_evicting(requestor: Any) -> StreamableHTTPServerTransport | None:
            if len(sessions) >= self.max_sessions:
                self._close_longest_idle(sessions)
            return admit(requestor)

        # An instance attribute: the manager calls `self._admit_session(...)`, which finds it.
        manager._admit_session = admit_evicting  # type: ignore[method-assign]

    def detach(self) -> None:
        self._sessions = None

    def _close_longest_idle(self, sessions: dict[str, StreamableHTTPServerTransport]) -> None:
        """Closes the session idle the longest, if any is idle: forgotten at once (its id
        answers 404 from now on, and it no longer counts), and its idle scope cancelled, which
        ends it as the idle timeout would, teardown included."""
        idle = [
            (scope.deadline, session_id)
            for session_id, transport in sessions.items()
            # No scope yet: its opening request is being served. An infinite deadline: a
            # request is in flight (the transport suspends the countdown while one is).
            if (scope := transport.idle_scope) is not None and math.isfinite(scope.deadline)
        ]
        if not idle:
            log.info("%d sessions open, none idle: a new session is refused", len(sessions))
            return
        # Every session has the same timeout, so the earliest deadline is the longest idle.
        _, session_id = min(idle)
        transport = sessions.pop(session_id)
        assert transport.idle_scope is not None
        transport.idle_scope.cancel()
        log.info(
            "%d sessions open: closed session %s, idle the longest, for a new one",
            self.max_sessions,
            session_id[:8],
        )


def install(app: Starlette, sessions: Sessions, path: str = "/mcp") -> None:
    """Attaches `sessions` to the session manager FastMCP's app makes when it starts."""
    endpoint = _session_endpoint(app, path)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[Any]:
        async with inner(started) as state:
            manager = endpoint.session_manager
            assert manager is not None  # made by FastMCP's lifespan, just entered
            sessions.attach(manager)
            try:
                yield state
            finally:
                sessions.detach()

    app.router.lifespan_context = lifespan


def _session_endpoint(app: Starlette, path: str) -> StreamableHTTPASGIApp:
    """FastMCP's endpoint at `path`, under its auth wrapper if there is one."""
    for route in app.routes:
        if isinstance(route, Route) and route.path == path:
            endpoint: Any = route.endpoint
            while not isinstance(endpoint, StreamableHTTPASGIApp) and hasattr(endpoint, "app"):
                endpoint = endpoint.app
            if isinstance(endpoint, StreamableHTTPASGIApp):
                return endpoint
    raise RuntimeError(f"FastMCP's app has no streamable HTTP endpoint at {path}")
