"""Tells the core when an MCP request's answer has been written (see `signals.Reply`), so
that a send can let the deliveries it caused go out before its own receipt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_chat.signals import Reply, current_reply


class TrackReplies:
    """ASGI middleware: each POST to `path` gets a Reply (see `replying`)."""

    def __init__(self, app: ASGIApp, path: str = "/mcp") -> None:
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].rstrip("/") != self.path
        ):
            await self.app(scope, receive, send)
            return
        with replying(send) as tracked:
            await self.app(scope, receive, tracked)


@contextmanager
def replying(send: Send) -> Iterator[Send]:
    """A Reply for the request being served within: yields the send to answer it with, which
    marks the Reply sent once the last byte of the response body is handed to the server (or
    when the block ends without one). Also for the front door (`mcp.door`)."""
    reply = Reply()

    async def tracked(message: Message) -> None:
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            reply.sent()

    token = current_reply.set(reply)
    try:
        yield tracked
    finally:
        current_reply.reset(token)
        reply.sent()
