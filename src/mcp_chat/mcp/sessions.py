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

A closed session's memory does not all come back at once: the SDK and anyio end its tasks by
cancelling them, and each cancelled task's exception keeps its frames, which keep the task: about
150 objects (110 KiB) per session in reference cycles, which only a full garbage collection
frees, and CPython runs one only once the long-lived objects have grown by a quarter. After
1,000 clients came and went a server stayed at twice its fresh size (benchmarks.waits H, handshake
family; a full collection took it from 202 to 125 MiB). So while the app runs, every
`COLLECT_EVERY` seconds, if at least `COLLECT_AFTER` sessions ended since the last look, the
server runs a full collection (a few tens of milliseconds on a fresh server's heap, paid only
while sessions come and go).

FastMCP makes the manager in its app's lifespan and offers no way to pass `max_sessions` or to
evict, so `install` wraps that lifespan and `Sessions.attach` takes hold of the manager it made.
The SDK has no public hook for either: its sessions by id (counted for the gauge, searched for
the longest-idle one) and its admission of a new session (wrapped, so that eviction happens at
the moment of admission and the cap stays exact under concurrent handshakes) are borrowed
through `mcp.sdk`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastmcp.server.http import StreamableHTTPASGIApp
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.routing import Route

from mcp_chat.mcp import sdk

log = logging.getLogger(__name__)

COLLECT_EVERY = 5.0
"""Seconds between looks at how many sessions ended (see the module's text)."""
COLLECT_AFTER = 20
"""Sessions ended since the last full collection that call for the next one."""


class Sessions:
    """The handshake-era sessions of one HTTP app: at most `max_sessions` open."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._sessions: dict[str, StreamableHTTPServerTransport] | None = None
        self.manager: StreamableHTTPSessionManager | None = None
        """The SDK's session manager while the app runs."""
        self._admitted = 0  # sessions opened since the app started
        self._ended_at_collection = 0

    @property
    def open(self) -> int:
        """Sessions open now (0 before the app starts and after it stops)."""
        return len(self._sessions) if self._sessions is not None else 0

    def attach(self, manager: StreamableHTTPSessionManager) -> None:
        """Takes hold of the manager FastMCP made: caps it, and wraps its admission."""
        sessions = sdk.session_transports(manager)
        self._sessions, self.manager = sessions, manager
        manager.max_sessions = self.max_sessions

        def evicting(admit: sdk.Admit) -> sdk.Admit:
            def admit_evicting(requestor: Any) -> StreamableHTTPServerTransport | None:
                if len(sessions) >= self.max_sessions:
                    self._close_longest_idle(sessions)
                admitted = admit(requestor)
                if admitted is not None:
                    self._admitted += 1
                return admitted

            return admit_evicting

        sdk.wrap_admission(manager, evicting)

    def detach(self) -> None:
        self._sessions = self.manager = None

    async def collect(self) -> None:
        """While the app runs: a full garbage collection each time `COLLECT_AFTER` sessions
        have ended since the last (see the module's text)."""
        while True:
            await asyncio.sleep(COLLECT_EVERY)
            self.collect_if_due()

    def collect_if_due(self) -> None:
        ended = self._admitted - self.open
        if ended - self._ended_at_collection < COLLECT_AFTER:
            return
        self._ended_at_collection = ended
        started = time.perf_counter()
        freed = gc.collect()
        log.debug(
            "%d sessions ended: a full collection freed %d objects in %.1f ms",
            ended,
            freed,
            (time.perf_counter() - started) * 1000,
        )

    def transport(self, session_id: str) -> StreamableHTTPServerTransport | None:
        """The open session's transport, if `session_id` names one."""
        return self._sessions.get(session_id) if self._sessions is not None else None

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
            collecting = asyncio.get_running_loop().create_task(sessions.collect())
            try:
                yield state
            finally:
                collecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collecting
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
