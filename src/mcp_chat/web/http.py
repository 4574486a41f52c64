"""What every endpoint of the page shares: ChatErrors as JSON failures with a fitting status,
the request body, the client_id from its header (never a URL), and server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mcp_chat.errors import ChatError, Code, invalid

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
    Code.ROOM_NOT_PRIVATE: 409,
    Code.CHAT_ENDED: 410,
    Code.NOT_IN_QUEUE: 404,
    Code.TOO_MANY_ROOMS: 429,
    Code.RATE_LIMITED: 429,
    Code.TOO_MANY_WAITS: 429,
    Code.SERVER_RESTARTING: 503,
    Code.STORE_UNAVAILABLE: 503,
    Code.INTERNAL_ERROR: 500,
}
Handler = Callable[[Request], Awaitable[Response]]
Route = Callable[[str, str], Callable[[Handler], Handler]]
"""`route(path, method)`: registers a handler, with ChatErrors answered as JSON failures."""
T = TypeVar("T")


def _failure(exc: ChatError) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": exc.message, "code": exc.code.value},
        status_code=_STATUS.get(exc.code, 400),
    )


def answers(action: Handler) -> Handler:
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


async def body_of(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (`[[[[...`) is as
        # malformed a body as any other, not a crash.
        body = None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


QUERY_MIN: Final = -(2**63)
QUERY_MAX: Final = 2**63 - 1
"""A query number must fit the stores' 64-bit integers (SQLite refuses anything bigger with an
OverflowError): a number outside is the caller's mistake, said here rather than left to a
store to fail on."""


def number_of(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:  # also a number of more digits than int() takes (4300)
        raise invalid(f"{name} must be a whole number.") from None
    if not QUERY_MIN <= number <= QUERY_MAX:
        raise invalid(f"{name} must be a whole number between {QUERY_MIN} and {QUERY_MAX}.")
    return number


def secret_of(request: Request) -> str:
    return request.headers.get(CLIENT_HEADER, "")


def caller_of(request: Request) -> str:
    """Whom a join counts against (`ChatService.join`): the client's address."""
    return request.client.host if request.client else "unknown"


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class Streams:
    """The open event streams, which `close()` ends: a stopping server need not wait them out,
    and each page reconnects on its own."""

    def __init__(self) -> None:
        self._closing = asyncio.Event()

    def close(self) -> None:
        self._closing.set()

    async def run(self, work: Awaitable[T]) -> T | None:
        """`work` (a blocking wait), or None when the server is stopping: the streams are
        closed first, or the wait says server_restarting. The page then reconnects to the
        next server."""
        waiting = asyncio.ensure_future(work)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({waiting, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not waiting.done():
                waiting.cancel()
        if not waiting.done():
            return None
        failed = waiting.exception()
        if isinstance(failed, ChatError) and failed.code is Code.SERVER_RESTARTING:
            return None
        return waiting.result()


def end_event(exc: ChatError) -> str:
    """The last event of a stream that failed: what went wrong, in the page's terms."""
    return event("end", {"error": exc.message, "code": exc.code.value})


def stream_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
