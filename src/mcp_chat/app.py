"""Wires settings, store, core and MCP server together and runs a transport."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_chat.chat import ChatService
from mcp_chat.config import Settings
from mcp_chat.credentials import redact_url
from mcp_chat.mcp.server import create_server
from mcp_chat.stores import open_store
from mcp_chat.web.routes import Streams, add_web

log = logging.getLogger(__name__)


def build(
    settings: Settings, stdio: bool = False, streams: Streams | None = None
) -> tuple[ChatService, FastMCP]:
    """The core and the server around it: MCP at /mcp, the page and its endpoints, /healthz.
    `streams` lets the caller end the page's event streams when it stops."""
    chat = ChatService(
        open_store(settings.store),
        settings.limits(),
        settings.matching_policy(),
        settings.presence_policy(),
    )
    server = create_server(chat, stdio=stdio, keepalive=settings.keepalive)

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    add_web(server, chat, streams)
    return chat, server


class _Server(uvicorn.Server):
    """Ends the page's event streams as it starts to stop, instead of waiting them out."""

    def __init__(self, config: uvicorn.Config, streams: Streams) -> None:
        super().__init__(config)
        self.streams = streams

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.streams.close()
        await super().shutdown(sockets)


def serve_http(settings: Settings) -> None:
    streams = Streams()
    _, server = build(settings, streams=streams)
    app = server.http_app(path="/mcp")
    log.info(
        "mcp-chat on http://%s:%d/mcp, web page at / (store %s)",
        settings.host,
        settings.port,
        redact_url(settings.store),
    )
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
    asyncio.run(_Server(config, streams).serve())


def serve_stdio(settings: Settings) -> None:
    _, server = build(settings, stdio=True)
    asyncio.run(server.run_stdio_async(show_banner=False))
