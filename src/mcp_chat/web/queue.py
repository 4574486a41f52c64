"""The page's random pairing: enter the queue, follow it until matched (server-sent events,
like a room's), or leave it. The core does the matching; this only translates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_chat.chat import ChatService
from mcp_chat.errors import ChatError, invalid
from mcp_chat.types import QueueResult
from mcp_chat.views import MemberOut
from mcp_chat.web.http import (
    STREAM_WAIT,
    Route,
    Streams,
    body_of,
    caller_of,
    end_event,
    event,
    secret_of,
    stream_response,
)


def queue_out(q: QueueResult) -> dict[str, Any]:
    """Where one stands, without the client_id: waiting at a position, or matched (the room,
    oneself as its member, and the partner)."""
    partner = q.partner
    if q.matched is None or partner is None:
        return {"status": "waiting", "participant_id": q.participant_id, "position": q.position}
    me = q.matched.partner_of(partner.participant_id)
    return {
        "status": "matched",
        "room_id": q.matched.room.room_id,
        "participant_id": me.participant_id,
        "display_name": me.display_name,
        "partner": MemberOut.of(partner).model_dump(),
    }


def add_queue(route: Route, chat: ChatService, streams: Streams) -> None:
    @route("/api/queue", "POST")
    async def enter(request: Request) -> Response:
        body = await body_of(request)
        interests = body.get("interests")
        if interests is not None and not isinstance(interests, list):
            raise invalid("interests must be a list of short words, e.g. ['chess', 'go'].")
        entered = await chat.pairing.enter(
            body.get("display_name", ""), interests, caller_of(request)
        )
        return JSONResponse({"client_id": entered.client_id, **queue_out(entered)})

    @route("/api/queue/events", "GET")
    async def events(request: Request) -> Response:
        """Server-sent events: `waiting` (with the position) now and after every quiet
        stretch, then `matched`; `end` if the entry is gone (left, or dropped as silent)."""
        secret = secret_of(request)
        now = await chat.pairing.state(secret)  # a bad id gets a plain JSON failure, not a stream
        return stream_response(_follow(chat, streams, secret, now))

    @route("/api/queue/leave", "POST")
    async def leave(request: Request) -> Response:
        """Stop waiting. Matched just then: leave the pair's room instead, so the partner is
        told rather than left talking to nobody."""
        secret = secret_of(request)
        try:
            await chat.pairing.leave(secret)
            return JSONResponse({"left": "queue"})
        except ChatError:
            state = await chat.pairing.state(secret)  # raises if simply not in the queue
            if state.matched is None:
                raise
        await chat.leave(state.matched.room.room_id, secret)
        return JSONResponse({"left": "room", "room_id": state.matched.room.room_id})


async def _follow(
    chat: ChatService, streams: Streams, secret: str, state: QueueResult
) -> AsyncIterator[str]:
    yield ": open\n\n"
    while state.matched is None:
        yield event("waiting", queue_out(state))
        try:
            got = await streams.run(chat.pairing.wait(secret, STREAM_WAIT))
        except ChatError as exc:
            yield end_event(exc)
            return
        if got is None:  # the server is stopping
            return
        state = got
    yield event("matched", queue_out(state))
