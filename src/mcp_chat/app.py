"""Wires settings, store, core and MCP server together and runs a transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import NamedTuple

import uvicorn
from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_chat.auth import GUARDED_PATHS, BearerTokens, RequireToken, load_tokens
from mcp_chat.chat import ChatService
from mcp_chat.config import Settings
from mcp_chat.credentials import redact_url
from mcp_chat.loop import run_on_loop, running_loop_name
from mcp_chat.mcp import stdio
from mcp_chat.mcp.channel import Channels, StreamTap
from mcp_chat.mcp.fastcalls import FastCalls
from mcp_chat.mcp.replies import TrackReplies
from mcp_chat.mcp.server import create_server
from mcp_chat.metrics import CONTENT_TYPE, Metrics
from mcp_chat.presence import Session
from mcp_chat.stores import open_store
from mcp_chat.web.routes import Streams, add_web

log = logging.getLogger(__name__)


class Parts(NamedTuple):
    chat: ChatService
    server: FastMCP
    metrics: Metrics
    channels: Channels | None
    session: Session | None
    """The stdio process's client session (None over HTTP)."""


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
    metrics = Metrics(chat)
    secret = settings.auth_token.get_secret_value() if settings.auth_token else None
    tokens = [] if stdio else load_tokens(secret, settings.auth_token_file)
    mode = settings.channel_mode(stdio)
    channels = None if mode is None else Channels(chat, mode)
    session = Session() if stdio else None
    server = create_server(
        chat,
        stdio=stdio,
        keepalive=settings.keepalive,
        metrics=metrics,
        auth=BearerTokens(tokens) if tokens else None,
        channels=channels,
        process_session=session,
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
    return Parts(chat, server, metrics, channels, session)


def http_app(settings: Settings, parts: Parts) -> Starlette:
    """The ASGI app. Bound to a loopback address, it refuses requests whose Host or Origin
    header names another site (DNS rebinding); `allowed_hosts` adds names to accept."""
    server = parts.server
    # FastMCP's auth guards /mcp only; its middleware checks the token of every request, and
    # RequireToken refuses the other guarded paths a request whose token did not pass.
    middleware = [Middleware(TrackReplies, path="/mcp")]
    if parts.channels is not None:
        middleware.append(Middleware(StreamTap, streams=parts.channels.streams, path="/mcp"))
    if server.auth:
        middleware.append(Middleware(RequireToken, paths=GUARDED_PATHS))
    if settings.fast_calls:
        scopes = tuple(server.auth.required_scopes or ()) if server.auth else None
        middleware.append(
            Middleware(
                FastCalls,
                chat=parts.chat,
                server=server,
                metrics=parts.metrics,
                required_scopes=scopes,
            )
        )
    return server.http_app(
        path="/mcp",
        middleware=middleware,
        host_origin_protection="auto",
        allowed_hosts=settings.allowed_hosts or None,
    )


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
    )

    async def serve() -> None:
        log.info(
            "mcp-chat on http://%s:%d/mcp, web page at / (store %s, auth %s, event loop %s)",
            settings.host,
            settings.port,
            redact_url(settings.store),
            "on" if server.auth else "off",
            running_loop_name(),
        )
        await _Server(config, chat, streams).serve()

    run_on_loop(serve(), settings.event_loop)


def serve_stdio(settings: Settings) -> None:
    parts = build(settings, stdio=True)
    assert parts.session is not None
    run_on_loop(stdio.serve_stdio(parts.server, parts.channels, parts.session), settings.event_loop)
