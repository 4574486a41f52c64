"""The page's endpoints: thin translation between HTTP and the chat core, which checks every
client_id and every rule. The client_id travels in a header, so it never reaches a URL or
an access log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib.resources import files

from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, Code
from mcp_chat.views import MemberOut, MessageOut, RoomOut
from mcp_chat.web.http import (
    STREAM_WAIT,
    Handler,
    Streams,
    answers,
    body_of,
    caller_of,
    end_event,
    event,
    number_of,
    secret_of,
    stream_response,
)
from mcp_chat.web.queue import add_queue

__all__ = ["Streams", "add_web"]

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


def add_web(server: FastMCP, chat: ChatService, streams: Streams | None = None) -> None:
    """The page at `/`, its files under `/static/`, and its JSON endpoints under `/api/`."""
    streams = streams or Streams()

    def route(path: str, method: str) -> Callable[[Handler], Handler]:
        def register(action: Handler) -> Handler:
            handler = answers(action)
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
        body = await body_of(request)
        joined = await chat.join(
            body.get("room_id"),
            body.get("display_name", ""),
            body.get("capacity"),
            body.get("invite"),
            caller_of(request),
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
            secret_of(request),
            before=number_of(request, "before"),
            after=number_of(request, "after"),
            limit=number_of(request, "limit"),
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
        body = await body_of(request)
        sent = await chat.send(
            request.path_params["room_id"],
            secret_of(request),
            body.get("message", ""),
            body.get("message_key"),
        )
        return JSONResponse(
            {"message": MessageOut.of(sent.message).model_dump(), "duplicate": sent.duplicate}
        )

    @route("/api/rooms/{room_id}/members", "GET")
    async def members(request: Request) -> Response:
        roster = await chat.members(request.path_params["room_id"], secret_of(request))
        room = roster.room
        return JSONResponse(
            {
                "room_id": room.room_id,
                "capacity": room.capacity,
                "ended": room.ended,
                "members": [
                    MemberOut.of(m.participant, m.status).model_dump() for m in roster.members
                ],
            }
        )

    @route("/api/rooms/{room_id}/leave", "POST")
    async def leave(request: Request) -> Response:
        ended = await chat.leave(request.path_params["room_id"], secret_of(request))
        return JSONResponse({"room_ended": ended})

    @route("/api/rooms/{room_id}/events", "GET")
    async def events(request: Request) -> Response:
        """Server-sent events: `messages` (from others, with the new read position) as they
        arrive, from `?after=` on; `end` when the chat is over for this participant."""
        room_id, secret = request.path_params["room_id"], secret_of(request)
        after = number_of(request, "after")
        await chat.members(room_id, secret)  # a bad id gets a plain JSON failure, not a stream
        return stream_response(_stream(chat, streams, room_id, secret, after))

    add_queue(route, chat, streams)


async def _stream(
    chat: ChatService, streams: Streams, room_id: str, secret: str, after: int | None
) -> AsyncIterator[str]:
    position = after
    yield ": open\n\n"
    while True:
        try:
            got = await streams.run(chat.wait(room_id, secret, STREAM_WAIT, position))
        except ChatError as exc:
            yield end_event(exc)
            return
        if got is None:  # the server is stopping
            return
        position = got.cursor
        if got.messages:
            payload = [MessageOut.of(m).model_dump() for m in got.messages]
            yield event("messages", {"messages": payload, "position": position})
        else:
            yield ": keep-alive\n\n"
        if got.chat_ended and not got.has_more:
            yield event("end", {"error": "The chat has ended.", "code": Code.CHAT_ENDED.value})
            return
