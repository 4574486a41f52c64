"""What one HTTP request may cost the server before anything reads it: the size of its head
(request line and headers) and of its body, and the time the client takes to send each.

uvicorn bounds none of these with httptools, the parser `serve` runs on: a head is buffered
whole however big (uvicorn's `h11_max_incomplete_event_size` applies to h11 only), a
connection that sends nothing, or a header a byte at a time, is held for ever (its only timer,
`timeout_keep_alive`, runs between requests), and Starlette's `request.json()` reads a body
whole (a 300 MB POST to /api/join took the server to 648 MiB). So:

- `BoundedHttpTools`, uvicorn's httptools protocol with a limit on the head's bytes (431) and
  a deadline for the head (408, or a silent close for a connection that never began one);
- `RequestBounds`, ASGI middleware in front of every route: refuses a body over the limit
  (413) by its Content-Length before reading any of it, or as soon as a chunked body passes
  the limit, and a body that takes longer than the deadline (408). A refused body is never
  held beyond the limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from asyncio import TimerHandle, Transport
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

MAX_HEAD_BYTES: Final = 16 * 1024
"""The longest request line and headers: uvicorn's own limit when it runs on h11. A bearer
token, a session id and a client id take a few hundred bytes."""

_REASONS: Final = {
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
}
_CODES: Final = {408: "request_timeout", 413: "request_too_large", 431: "headers_too_large"}
_JSONRPC_INVALID_REQUEST: Final = -32600


def _refusal_body(status: int, sentence: str, mcp: bool) -> bytes:
    """The refusal in the shape the caller reads: a JSON-RPC error for the MCP endpoint (as the
    SDK answers its own transport-level refusals), the page's failure shape elsewhere."""
    if mcp:
        error = {"code": _JSONRPC_INVALID_REQUEST, "message": sentence}
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": error}
    else:
        payload = {"success": False, "error": sentence, "code": _CODES[status]}
    return json.dumps(payload).encode()


class RequestBounds:
    """ASGI middleware: reads each HTTP request's body before the app runs, within
    `max_body` bytes and `read_timeout` seconds, and hands it on in one piece; refuses one that
    is bigger (413) or slower (408), and closes the connection after the refusal, so that
    the rest of the body is never read."""

    def __init__(
        self, app: ASGIApp, max_body: int, read_timeout: float, mcp_path: str = "/mcp"
    ) -> None:
        self.app, self.max_body, self.read_timeout = app, max_body, read_timeout
        self.mcp_path = mcp_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await self.read(scope, receive, send)
        if body is not None:
            await self.app(scope, replay(body, receive), send)

    async def read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The request's whole body, read within the bounds; None if the request was refused
        (answered here) or the client hung up before its body was in (nobody to answer). Also
        for the front door (`mcp.door`), which reads a body before this middleware's place."""
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await self._refuse(scope, send, 413, self._too_large())
            return None
        try:
            async with asyncio.timeout(self.read_timeout):
                return await self._read(receive)
        except _TooLarge:
            await self._refuse(scope, send, 413, self._too_large())
        except TimeoutError:
            sentence = (
                f"The request body did not arrive within {self.read_timeout:g} seconds; "
                "send it at once."
            )
            log.info("refused %s %s: body too slow", scope["method"], scope["path"])
            await self._refuse(scope, send, 408, sentence)
        return None

    def _too_large(self) -> str:
        return f"The request body is larger than this server takes ({self.max_body} bytes)."

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None if the client hung up first; raises `_TooLarge` as soon as
        the body passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _refuse(self, scope: Scope, send: Send, status: int, sentence: str) -> None:
        body = _refusal_body(status, sentence, scope["path"].rstrip("/") == self.mcp_path)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is not read: the connection cannot carry another request.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


class _TooLarge(Exception):
    """The body passed the limit: nothing more of it is read."""


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            # The server's parser has already refused a malformed or overflowing length; this
            # only keeps int() away from thousands of digits, should one ever come.
            if not value.isdigit():
                return None
            return int(value) if len(value) <= 18 else 10**18
    return None


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the body read, then goes on reading (for the disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a limit on the size of a request's head and a
    deadline for it (see the module's text). `bounded_http` sets the two numbers."""

    max_head_bytes: int = MAX_HEAD_BYTES
    head_timeout: float = 30.0

    _in_head = True
    """The next bytes on the connection belong to a request's head."""
    _head_bytes = 0
    _heads = 0
    """Heads completed on the connection."""
    _head_timer: TimerHandle | None = None
    _refusal: tuple[int, str] | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a request is closed too, not only a slow one.
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted: a chunk that began inside a head that it did not complete (a complete head
        # is measured in `on_headers_complete`; a chunk may hold a whole request, body and
        # all). A chunk that began in the previous request's body is not counted: its share of
        # the next head is at most one read.
        counted = self._in_head
        heads = self._heads
        super().data_received(data)
        if counted and self._heads == heads and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, self._head_too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        self._stop_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            # Raising stops the parser; uvicorn then answers through `send_400_response`,
            # which sends this refusal instead of its plain 400.
            self._refusal = (431, self._head_too_large())
            raise _HeadRefused
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(*self._refusal)
            return
        super().send_400_response(msg)

    def _head_too_large(self) -> str:
        return (
            "The request's headers are larger than this server takes "
            f"({self.max_head_bytes} bytes)."
        )

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.scope is None:
            self.transport.close()  # never began a request: nobody to answer
            return
        sentence = f"The request's headers did not arrive within {self.head_timeout:g} seconds."
        self._refuse(408, sentence)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, sentence: str) -> None:
        """Answers `status` (unless a response to an earlier request is still being written,
        which this would garble) and closes the connection."""
        log.info("refused a request: %s", sentence)
        if self.cycle is None or self.cycle.response_complete:
            body = _refusal_body(status, sentence, mcp=False)
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, _REASONS[status], len(body), body)
            )
        self.transport.close()


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a head that is refused."""


def bounded_http(max_head_bytes: int, head_timeout: float) -> type[BoundedHttpTools]:
    """The protocol class for uvicorn's `http` setting, with these bounds."""
    return type(
        "BoundedHttpTools",
        (BoundedHttpTools,),
        {"max_head_bytes": max_head_bytes, "head_timeout": head_timeout},
    )
