"""The page's endpoints: thin translation between HTTP and the chat core, which checks every
client_id and every rule. The client_id travels in a header, so it never reaches a URL or
an access log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from typing import Any

from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mcp_chat.chat import ChatService, WaitResult
from mcp_chat.errors import ChatError, Code, invalid
from mcp_chat.mcp.results import MemberOut, MessageOut, RoomOut

log = logging.getLogger(__name__)

CLIENT_HEADER = "X-Client-Id"
STREAM_WAIT = 20.0
"""Seconds one wait inside the event stream blocks before a keep-alive line is sent."""

_STATUS = {
    Code.INVALID_ARGUMENT: 400,
    Code.MESSAGE_TOO_LARGE: 413,
    Code.UNKNOWN_CLIENT: 401,
    Code.NOT_IN_ROOM: 403,
    Code.ROOM_NOT_FOUND: 404,
    Code.ROOM_FULL: 409,
    Code.CHAT_ENDED: 410,
    Code.STORE_UNAVAILABLE: 503,
    Code.INTERNAL_ERROR: 500,
}
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_HEADERS = {
    # Nothing but this server's own files: an injected tag could neither run nor load.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

Handler = Callable[[Request], Awaitable[Response]]


def _failure(exc: ChatError) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": exc.message, "code": exc.code.value},
        status_code=_STATUS.get(exc.code, 400),
    )


def _answers(action: Handler) -> Handler:
    """A ChatError becomes its JSON failure with a fitting status; a crash, a plain 500."""

    async def handle(request: Request) -> Response:
        try:
            return await action(request)
        except ChatError as exc:
            return _failure(exc)
        except Exception:
            log.exception("web %s %s failed", request.method, request.url.path)
            return _failure(
                ChatError(Code.INTERNAL_ERROR, "The server hit an internal error; try again.")
            )

    return handle


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _number(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid(f"{name} must be a whole number.") from None


def _secret(request: Request) -> str:
    return request.headers.get(CLIENT_HEADER, "")


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class Streams:
    """The open event streams, which `close()` ends: a stopping server need not wait them out,
    and each page reconnects on its own."""

    def __init__(self) -> None:
        self._closing = asyncio.Event()

    def close(self) -> None:
        self._closing.set()

    async def wait(
        self, chat: ChatService, room_id: str, secret: str, after: int | None
    ) -> WaitResult | None:
        """`chat.wait`, or None when the streams are closed first."""
        waiting = asyncio.ensure_future(chat.wait(room_id, secret, STREAM_WAIT, after))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({waiting, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not waiting.done():
                waiting.cancel()
        return waiting.result() if waiting.done() else None


def add_web(server: FastMCP, chat: ChatService, streams: Streams | None = None) -> None:
    """The page at `/`, its files under `/static/`, and its JSON endpoints under `/api/`."""
    streams = streams or Streams()

    def route(path: str, method: str) -> Callable[[Handler], Handler]:
        def register(action: Handler) -> Handler:
            handler = _answers(action)
            server.custom_route(path, methods=[method])(handler)
            return handler

        return register

    # Read once: a fixed set of files, so no path from a request ever reaches the disk.
    static = files("mcp_chat.web") / "static"
    contents = {name: (static / name).read_bytes() for name in _STATIC}

    def serve(name: str) -> Response:
        return Response(contents[name], media_type=_STATIC[name], headers=_HEADERS)

    @route("/", "GET")
    async def page(_: Request) -> Response:
        return serve("index.html")

    @route("/static/{name}", "GET")
    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        return serve(name) if name in contents else Response("Not found", status_code=404)

    @route("/api/rooms", "GET")
    async def rooms(_: Request) -> Response:
        found = await chat.rooms()
        return JSONResponse({"rooms": [RoomOut.of(r).model_dump() for r in found if not r.ended]})

    @route("/api/join", "POST")
    async def join(request: Request) -> Response:
        body = await _body(request)
        joined = await chat.join(
            body.get("room_id"),
            body.get("display_name", ""),
            body.get("capacity"),
            body.get("invite"),
        )
        return JSONResponse(
            {
                "client_id": joined.client_id,
                "room_id": joined.room.room_id,
                "participant_id": joined.participant.participant_id,
                "display_name": joined.participant.display_name,
                "capacity": joined.room.capacity,
                "members": [
                    MemberOut.of(m.participant, m.status).model_dump() for m in joined.members
                ],
            }
        )

    @route("/api/rooms/{room_id}/messages", "GET")
    async def history(request: Request) -> Response:
        page = await chat.history(
            request.path_params["room_id"],
            _secret(request),
            before=_number(request, "before"),
            after=_number(request, "after"),
            limit=_number(request, "limit"),
        )
        return JSONResponse(
            {
                "messages": [MessageOut.of(m).model_dump() for m in page.messages],
                "last_seq": page.last_seq,
                "has_older": page.has_older,
            }
        )

    @route("/api/rooms/{room_id}/messages", "POST")
    async def send(request: Request) -> Response:
        body = await _body(request)
        sent = await chat.send(
            request.path_params["room_id"],
            _secret(request),
            body.get("message", ""),
            body.get("message_key"),
        )
        return JSONResponse(
            {"message": MessageOut.of(sent.message).model_dump(), "duplicate": sent.duplicate}
        )

    @route("/api/rooms/{room_id}/members", "GET")
    async def members(request: Request) -> Response:
        room, present = await chat.members(request.path_params["room_id"], _secret(request))
        return JSONResponse(
            {
                "room_id": room.room_id,
                "capacity": room.capacity,
                "ended": room.ended,
                "members": [MemberOut.of(m.participant, m.status).model_dump() for m in present],
            }
        )

    @route("/api/rooms/{room_id}/leave", "POST")
    async def leave(request: Request) -> Response:
        ended = await chat.leave(request.path_params["room_id"], _secret(request))
        return JSONResponse({"room_ended": ended})

    @route("/api/rooms/{room_id}/events", "GET")
    async def events(request: Request) -> Response:
        """Server-sent events: `messages` (from others, with the new read position) as they
        arrive, from `?after=` on; `end` when the chat is over for this participant."""
        room_id, secret = request.path_params["room_id"], _secret(request)
        after = _number(request, "after")
        await chat.members(room_id, secret)  # a bad id gets a plain JSON failure, not a stream
        return StreamingResponse(
            _stream(chat, streams, room_id, secret, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def _stream(
    chat: ChatService, streams: Streams, room_id: str, secret: str, after: int | None
) -> AsyncIterator[str]:
    position = after
    yield ": open\n\n"
    while True:
        try:
            got = await streams.wait(chat, room_id, secret, position)
        except ChatError as exc:
            yield _event("end", {"error": exc.message, "code": exc.code.value})
            return
        if got is None:  # the server is stopping
            return
        position = got.cursor
        if got.messages:
            payload = [MessageOut.of(m).model_dump() for m in got.messages]
            yield _event("messages", {"messages": payload, "position": position})
        else:
            yield ": keep-alive\n\n"
        if got.chat_ended and not got.has_more:
            yield _event("end", {"error": "The chat has ended.", "code": Code.CHAT_ENDED.value})
            return
