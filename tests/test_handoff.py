"""A send lets the deliveries it caused go out before its own receipt (signals.settle)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from mcp_chat import signals
from mcp_chat.chat import ChatService
from mcp_chat.mcp.replies import TrackReplies
from mcp_chat.signals import Reply, current_reply
from tests.conftest import blocked
from tests.test_chat import pair, texts

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def patient_senders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Senders wait as long as it takes, so that a test sees whether they wait at all."""
    monkeypatch.setattr(signals, "SETTLE_LIMIT", 3600.0)
    yield


async def wait_answered_by(chat: ChatService, reply: Reply, room: str, client: str) -> object:
    """A wait whose answer is written by `reply` (as TrackReplies does for an HTTP request)."""
    current_reply.set(reply)  # this task's own context
    return await chat.wait(room, client, timeout=30)


async def test_a_send_returns_once_the_delivery_it_caused_is_written(chat: ChatService) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)  # B has read the joins
    reply = Reply()
    waiting = asyncio.create_task(wait_answered_by(chat, reply, "r", b))
    await blocked(chat)
    sending = asyncio.create_task(chat.send("r", a, "hello"))
    async with asyncio.timeout(10):
        assert texts(await waiting) == ["hello"]
    assert not sending.done()  # the wait has answered, but its answer is not out yet
    reply.sent()
    async with asyncio.timeout(10):
        sent = await sending
    assert sent.message.text == "hello"


async def test_a_woken_wait_with_nothing_for_it_does_not_hold_the_sender(
    chat: ChatService,
) -> None:
    a, _ = await pair(chat)
    await chat.wait("r", a, timeout=1)  # A has read B's join
    never_written = Reply()
    own_wait = asyncio.create_task(wait_answered_by(chat, never_written, "r", a))
    await blocked(chat)
    async with asyncio.timeout(10):
        await chat.send("r", a, "my own words wake my own wait, which finds nothing")
    assert not own_wait.done()
    own_wait.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await own_wait


async def test_a_wait_without_a_reply_to_write_releases_the_sender_when_it_answers(
    chat: ChatService,
) -> None:
    a, b = await pair(chat)
    await chat.wait("r", b, timeout=1)
    waiting = asyncio.create_task(chat.wait("r", b, timeout=30))  # as over stdio
    await blocked(chat)
    async with asyncio.timeout(10):
        await chat.send("r", a, "hi")
        assert texts(await waiting) == ["hi"]


async def test_the_person_waiting_in_the_queue_hears_of_the_match_first(
    chat: ChatService,
) -> None:
    first = await chat.pairing.enter("first")
    reply = Reply()

    async def wait_for_match() -> object:
        current_reply.set(reply)
        return await chat.pairing.wait(first.client_id, timeout=30)

    waiting = asyncio.create_task(wait_for_match())
    await blocked(chat)
    entering = asyncio.create_task(chat.pairing.enter("second"))
    async with asyncio.timeout(10):
        await waiting
    assert not entering.done()
    reply.sent()
    async with asyncio.timeout(10):
        assert (await entering).matched is not None


# ------------------------------------------------------------------- the HTTP side


async def run_asgi(path: str, method: str, body_chunks: int) -> tuple[Reply | None, list[bool]]:
    """Serve one request through TrackReplies; returns the Reply the app saw and, for each
    body chunk sent, whether the Reply counted as sent right after it."""
    seen: list[Reply | None] = []
    after_chunk: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reply = current_reply.get()
        seen.append(reply)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(body_chunks):
            more = i < body_chunks - 1
            await send({"type": "http.response.body", "body": b"x", "more_body": more})
            after_chunk.append(reply is not None and reply._sent)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope: Scope = {"type": "http", "method": method, "path": path, "headers": []}
    await TrackReplies(app, path="/mcp")(scope, receive, send)
    return seen[0], after_chunk


async def test_an_mcp_post_is_marked_sent_with_its_last_body_chunk() -> None:
    reply, after_chunk = await run_asgi("/mcp", "POST", body_chunks=3)
    assert reply is not None
    assert after_chunk == [False, False, True]


async def test_other_requests_get_no_reply_to_track() -> None:
    for path, method in (("/api/rooms/r/events", "POST"), ("/mcp", "GET"), ("/", "GET")):
        reply, _ = await run_asgi(path, method, body_chunks=1)
        assert reply is None, (path, method)


async def test_a_held_handoff_is_released_when_the_request_ends_without_a_body() -> None:
    held: list[signals.Handoff] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handoff: signals.Handoff = asyncio.get_running_loop().create_future()
        signals.answering(handoff)
        held.append(handoff)
        raise ConnectionResetError("the client went away")

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    async def ignore(message: Message) -> None:
        pass

    scope: Scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    with pytest.raises(ConnectionResetError):
        await TrackReplies(app)(scope, nothing, ignore)
    assert held[0].done()
