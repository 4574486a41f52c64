"""Wires settings, store, core and MCP server together and runs a transport."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_chat.chat import ChatService
from mcp_chat.config import Settings
from mcp_chat.credentials import redact_url
from mcp_chat.mcp.server import create_server
from mcp_chat.stores import open_store

log = logging.getLogger(__name__)


def build(settings: Settings, stdio: bool = False) -> tuple[ChatService, FastMCP]:
    chat = ChatService(
        open_store(settings.store),
        settings.limits(),
        settings.matching_policy(),
        settings.presence_policy(),
    )
    server = create_server(chat, stdio=stdio)

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return chat, server


def serve_http(settings: Settings) -> None:
    _, server = build(settings)
    app = server.http_app(path="/mcp")
    log.info(
        "mcp-chat on http://%s:%d/mcp (store %s)",
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
    asyncio.run(uvicorn.Server(config).serve())


def serve_stdio(settings: Settings) -> None:
    _, server = build(settings, stdio=True)
    asyncio.run(server.run_stdio_async(show_banner=False))
