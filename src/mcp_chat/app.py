"""Wires settings, store, core and MCP server together and runs a transport."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import NamedTuple

import uvicorn
from fastmcp import FastMCP
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_chat.auth import GUARDED_PATHS, BearerTokens, RequireToken, load_tokens
from mcp_chat.bounds import MAX_HEAD_BYTES, RequestBounds, bounded_http
from mcp_chat.chat import ChatService
from mcp_chat.config import Settings
from mcp_chat.credentials import redact_url
from mcp_chat.errors import ChatError, StartupError
from mcp_chat.loop import run_on_loop, running_loop_name
from mcp_chat.mcp import stdio
from mcp_chat.mcp.channel import CHANNEL_CLIENTS, Channels, StreamTap
from mcp_chat.mcp.connections import Connections
from mcp_chat.mcp.door import FrontDoor
from mcp_chat.mcp.fastcalls import FastCalls
from mcp_chat.mcp.replies import TrackReplies
from mcp_chat.mcp.server import create_server
from mcp_chat.mcp.sessions import Sessions
from mcp_chat.mcp.sessions import install as install_sessions
from mcp_chat.metrics import CONTENT_TYPE, Metrics
from mcp_chat.presence import Session
from mcp_chat.stores import open_store
from mcp_chat.web.routes import Streams, add_web

log = logging.getLogger(__name__)


class Parts(NamedTuple):
    chat: ChatService
    server: FastMCP
    metrics: Metrics
    sessions: Sessions
    channels: Channels | None
    session: Session | None
    """The stdio process's client session (None over HTTP)."""
    connections: Connections
    """The handshake-era connections (HTTP sessions) and the chat session of each."""


def build(settings: Settings, stdio: bool = False, streams: Streams | None = None) -> Parts:
    """The core and the server around it: MCP at /mcp, the page and its endpoints, /healthz,
    /readyz and /metrics. Over HTTP, configured bearer tokens guard /mcp, the page's /api/
    endpoints and /metrics (see `http_app`); stdio needs none. `streams` lets the caller end
    the page's event streams when it stops."""
    chat = ChatService(
        open_store(settings.store),
        settings.limits(),
        settings.matching_policy(),
        settings.presence_policy(),
    )
    sessions = Sessions(settings.max_sessions)
    metrics = Metrics(chat, lambda: sessions.open)
    secret = settings.auth_token.get_secret_value() if settings.auth_token else None
    tokens = [] if stdio else load_tokens(secret, settings.auth_token_file)
    mode = settings.channel_mode(stdio)
    # Unset, pushes go to Claude Code only; a --channel the operator gave is for any client.
    clients = None if settings.channel is not None else CHANNEL_CLIENTS
    channels = None if mode is None else Channels(chat, mode, clients)
    session = Session() if stdio else None
    connections = Connections(chat, channels)
    server = create_server(
        chat,
        stdio=stdio,
        keepalive=settings.keepalive,
        metrics=metrics,
        auth=BearerTokens(tokens) if tokens else None,
        channels=channels,
        process_session=session,
        connections=connections,
    )

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @server.custom_route("/readyz", methods=["GET"])
    async def readyz(_: Request) -> Response:
        if await chat.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    @server.custom_route("/metrics", methods=["GET"])
    async def metrics_page(_: Request) -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE)

    add_web(server, chat, streams)
    return Parts(chat, server, metrics, sessions, channels, session, connections)


def http_app(settings: Settings, parts: Parts) -> ASGIApp:
    """The ASGI app. Bound to a loopback address, it refuses requests whose Host or Origin
    header names another site (DNS rebinding); `allowed_hosts` adds names to accept. Request
    bodies are bounded (bounds.py), and handshake-era sessions capped and closed when idle
    (mcp/sessions.py). Plain sends and waits take the short road (mcp/fastcalls.py), on a
    server without tokens from the front door (mcp/door.py)."""
    server = parts.server
    max_body, read_timeout = settings.max_body_bytes(), settings.read_timeout
    # Every body is read within its bounds before any route sees it (see bounds.py).
    middleware = [Middleware(RequestBounds, max_body, read_timeout, mcp_path="/mcp")]
    # FastMCP's auth guards /mcp only; its middleware checks the token of every request, and
    # RequireToken refuses the other guarded paths a request whose token did not pass.
    middleware.append(Middleware(TrackReplies, path="/mcp"))
    if parts.channels is not None:
        middleware.append(Middleware(StreamTap, streams=parts.channels.streams, path="/mcp"))
    if server.auth:
        middleware.append(Middleware(RequireToken, paths=GUARDED_PATHS))
    fast: FastCalls | None = None
    if settings.fast_calls:
        fast = FastCalls(
            _not_yet,
            chat=parts.chat,
            server=server,
            metrics=parts.metrics,
            required_scopes=tuple(server.auth.required_scopes or ()) if server.auth else None,
            sessions=parts.sessions,
            connections=parts.connections,
        )
        middleware.append(Middleware(fast.inside))
    app = server.http_app(
        path="/mcp",
        middleware=middleware,
        host_origin_protection="auto",
        allowed_hosts=settings.allowed_hosts or None,
        session_idle_timeout=settings.session_idle_timeout,
    )
    install_sessions(app, parts.sessions, path="/mcp")
    if fast is None or server.auth:
        return app
    return FrontDoor(app, fast, RequestBounds(app, max_body, read_timeout, mcp_path="/mcp"))


async def _not_yet(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the short road's place in the stack is set when Starlette builds it")


class _Server(uvicorn.Server):
    """uvicorn waits for open requests to end before it runs the lifespan shutdown, and a
    blocked wait_for_message can stay open for minutes: on SIGTERM or SIGINT the waits are
    released first (they answer server_restarting), then uvicorn shuts down as usual.

    uvicorn's own handlers re-raise the signal once it has stopped, so the process would end
    "killed by SIGTERM"; these handlers let a graceful stop exit with status 0."""

    def __init__(self, config: uvicorn.Config, chat: ChatService, streams: Streams) -> None:
        super().__init__(config)
        self.chat = chat
        self.streams = streams

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        stops = (signal.SIGINT, signal.SIGTERM)
        for sig in stops:
            loop.add_signal_handler(sig, self._stop, sig)
        try:
            yield
        finally:
            for sig in stops:
                loop.remove_signal_handler(sig)

    def _stop(self, sig: signal.Signals) -> None:
        log.info("%s received: releasing waits, finishing open requests", sig.name)
        self.chat.stop_waits()
        self.handle_exit(sig, None)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            # uvicorn says where it listens only when it binds the socket itself; people and
            # scripts (the tests among them) look for this line to learn the port.
            host, port = sockets[0].getsockname()[:2]
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # The page's event streams end now instead of being waited out; each page reconnects.
        self.streams.close()
        await super().shutdown(sockets)


def serve_http(settings: Settings) -> None:
    streams = Streams()
    parts = build(settings, streams=streams)
    chat, server = parts.chat, parts.server
    app = http_app(settings, parts)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        reload=False,
        access_log=False,
        log_config=None,  # uvicorn logs through our handler (and its redaction)
        lifespan="on",
        timeout_graceful_shutdown=5,
        # httptools, with a bound on each request's head and the time to send it.
        http=bounded_http(MAX_HEAD_BYTES, settings.read_timeout),
    )

    # Both before anything says the server started: a port in use or a store that cannot
    # open is one clear line and a non-zero exit (cli.main), not a traceback after
    # "Application startup complete".
    listening = _listen(settings.host, settings.port)

    async def serve() -> None:
        async with _store_opened(chat, settings.store):
            log.info(
                "mcp-chat on http://%s:%d/mcp, web page at / (store %s, auth %s, event loop %s)",
                settings.host,
                listening.getsockname()[1],
                redact_url(settings.store),
                "on" if server.auth else "off",
                running_loop_name(),
            )
            await _Server(config, chat, streams).serve(sockets=[listening])

    try:
        run_on_loop(serve(), settings.event_loop)
    finally:
        listening.close()


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound to `host`:`port`, or a StartupError that says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        hint = (
            "another server is using that port: stop it, or choose another with --port"
            if exc.errno == errno.EADDRINUSE
            else "check --host (an address of this machine, e.g. 127.0.0.1) and --port"
        )
        raise StartupError(f"cannot listen on {host}:{port} ({why}): {hint}.") from None
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def _store_opened(chat: ChatService, url: str) -> AsyncIterator[None]:
    """Open the store before serving (the lifespan's own start then shares it), so that a
    store that cannot open stops the command with one line that says why."""
    try:
        await chat.start()
    except (OSError, sqlite3.Error, RuntimeError, ChatError) as exc:
        reason = exc.message if isinstance(exc, ChatError) else str(exc)
        raise StartupError(
            f"cannot open the store {redact_url(url)} ({reason}): check --store, and that this "
            "user may write there."
        ) from None
    try:
        yield
    finally:
        await chat.close()


def serve_stdio(settings: Settings) -> None:
    parts = build(settings, stdio=True)
    session = parts.session
    assert session is not None

    async def stop() -> None:
        await parts.chat.heartbeat.disconnect(session)  # the room hears this client is gone
        await parts.chat.close()  # the store's last writes are flushed and it is closed

    # With fast calls on, plain sends and waits take the short road (mcp/stdio.py).
    road = parts.chat if settings.fast_calls else None
    served = stdio.serve_stdio(parts.server, parts.channels, session, road, parts.metrics)
    run_on_loop(_until_stopped(served, stop), settings.event_loop)


async def _until_stopped(serving: Awaitable[None], stop: Callable[[], Awaitable[None]]) -> None:
    """Serve until the client closes stdin, or until SIGINT or SIGTERM: then `stop`, and exit
    at once. Claude Code stops a stdio server with SIGINT and sends SIGTERM 100 ms later. The
    serving task cannot be cancelled promptly then: it waits on a thread blocked reading stdin,
    which the client keeps open, so the process ends with os._exit once the store is closed."""
    task = asyncio.ensure_future(serving)
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled.set)
    stopping = asyncio.ensure_future(signalled.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopping.cancel()
        task.result()
        return
    try:
        async with asyncio.timeout(5):
            await stop()
    except Exception:
        log.exception("stopping: the store could not be closed cleanly")
    finally:
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
