"""Handshake-era HTTP sessions (mcp/sessions.py): at the cap the longest-idle one is closed for
a newcomer, an idle one is closed after the idle timeout, a busy one never, and /metrics counts
them. A real server process, and the SDK's client over streamable HTTP (2025-11-25)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from mcp_chat.mcp.sessions import COLLECT_AFTER
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call
from tests.e2e.test_operations import samples

pytestmark = pytest.mark.anyio

SETTLES_WITHIN = 30.0
"""How long a test waits for the server to do what it expects (a bound on a hang)."""


class NoListening(httpx2.AsyncBaseTransport):
    """HTTP for a client that does not keep the optional GET stream open (the spec lets a
    server answer it with 405, and the SDK's client then does without): its session has no
    request in flight between its calls, so it is idle then. The GET never leaves here."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(405, request=request)
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def quiet_client(url: str) -> AsyncIterator[tuple[Client, NoListening]]:
    """A handshake-era SDK client without the GET stream, and the statuses its POSTs got."""
    transport = NoListening()
    async with (
        httpx2.AsyncClient(transport=transport, timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client, transport


async def metric(server: ServerProcess, name: str) -> float:
    async with httpx2.AsyncClient(base_url=server.base) as http:
        return samples((await http.get("/metrics")).text)[(name, ())]


async def until_metric(server: ServerProcess, name: str, value: float) -> None:
    """Polls /metrics until `name` reads `value` (bounded)."""
    async with asyncio.timeout(SETTLES_WITHIN):
        while await metric(server, name) != value:
            await asyncio.sleep(0.05)


async def enter(client: Client, room: str, name: str) -> str:
    joined = await call(client, "join_room", room_id=room, display_name=name, capacity=10)
    assert joined["success"], joined
    client_id: str = joined["client_id"]
    return client_id


async def until_event(client: Client, room: str, client_id: str, kind: str) -> list[Any]:
    """Waits (blocking, never polling) until a message of `kind` arrives; all seen."""
    seen: list[Any] = []
    async with asyncio.timeout(SETTLES_WITHIN):
        while not any(m["kind"] == kind for m in seen):
            got = await call(client, "wait_for_message", room_id=room, client_id=client_id)
            assert got["success"], got
            seen += got["messages"]
    return seen


@pytest.fixture
def capped(db_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, env={"MCP_CHAT_MAX_SESSIONS": "3"})
    yield server
    server.stop()


async def test_at_the_cap_the_longest_idle_session_makes_room(capped: ServerProcess) -> None:
    room = f"cap-{secrets.token_hex(3)}"
    async with (
        quiet_client(capped.url) as (ann, ann_http),
        quiet_client(capped.url) as (ben, _),
        quiet_client(capped.url) as (cat, _),
    ):
        # Called in this order, so Ann's session has been idle the longest.
        ann_id = await enter(ann, room, "Ann")
        ben_id = await enter(ben, room, "Ben")
        await enter(cat, room, "Cat")
        assert await metric(capped, "mcp_chat_sessions") == 3
        # A session-less 2026-07-28 client is no session.
        async with Client(capped.url, mode="2026-07-28") as modern:
            await call(modern, "list_rooms")
        assert await metric(capped, "mcp_chat_sessions") == 3

        async with Client(capped.url, mode="legacy") as dan:  # a fourth: admitted
            dan_id = await enter(dan, room, "Dan")
            events = await until_event(dan, room, dan_id, "disconnected")
            assert [m["sender"] for m in events if m["kind"] == "disconnected"] == ["Ann"]
            assert await metric(capped, "mcp_chat_sessions") == 3

            with pytest.raises(Exception, match="Session not found"):
                await call(ann, "list_participants", room_id=room, client_id=ann_id)
            assert ann_http.statuses[-1] == 404
            who = await call(ben, "list_participants", room_id=room, client_id=ben_id)
            presence = {m["display_name"]: m["presence"] for m in who["members"]}
            assert presence == {"Ann": "gone", "Ben": "present", "Cat": "present", "Dan": "present"}


async def test_sessions_with_a_request_in_flight_are_never_closed_for_a_newcomer(
    capped: ServerProcess,
) -> None:
    """Three sessions, each blocked in a wait: none is idle, so a fourth is refused (503)
    rather than one of them cut off."""
    room = f"busy-{secrets.token_hex(3)}"
    async with (
        quiet_client(capped.url) as (a, _),
        quiet_client(capped.url) as (b, _),
        quiet_client(capped.url) as (c, _),
    ):
        ids = [await enter(client, room, name) for client, name in ((a, "A"), (b, "B"), (c, "C"))]
        for client, i in zip((a, b, c), ids, strict=True):  # each reads the others' joins
            await call(client, "wait_for_message", room_id=room, client_id=i, timeout=1)
        waits = [
            asyncio.create_task(
                call(client, "wait_for_message", room_id=room, client_id=i, timeout=120)
            )
            for client, i in zip((a, b, c), ids, strict=True)
        ]
        await until_metric(capped, "mcp_chat_blocked_waits", 3)
        refused: list[int] = []

        async def note(response: httpx2.Response) -> None:
            refused.append(response.status_code)

        async with httpx2.AsyncClient(event_hooks={"response": [note]}) as http:
            with pytest.raises(BaseExceptionGroup) as caught:
                async with Client(
                    streamable_http_client(capped.url, http_client=http), mode="legacy"
                ):
                    pass
        assert caught.group_contains(MCPError, match="Too many open sessions", depth=None)
        assert refused == [503]
        async with Client(capped.url, mode="2026-07-28") as modern:  # wakes the three waits
            d = await enter(modern, room, "D")
            await call(modern, "send_message", room_id=room, client_id=d, message="wake up")
        for wait in waits:
            got = await wait
            assert got["success"] and not got["timed_out"], got


async def test_an_idle_session_is_closed_and_a_busy_one_is_not(db_url: str) -> None:
    """Idle timeout 2 s: a session with nothing in flight is closed (its member is marked gone),
    while one blocked in a wait all along, and one with its GET stream open, stay. Each client
    is made just before it is used, so none idles before its time."""
    server = ServerProcess(db_url, env={"MCP_CHAT_SESSION_IDLE_TIMEOUT": "2"})
    room = "idle"
    try:
        async with Client(server.url, mode="legacy") as ada:  # keeps its GET stream open
            ada_id = await enter(ada, room, "Ada")
            async with quiet_client(server.url) as (bo, _):
                bo_id = await enter(bo, room, "Bo")

                async def bo_hears_hi() -> dict[str, Any]:
                    while True:
                        got = await call(
                            bo, "wait_for_message", room_id=room, client_id=bo_id, timeout=120
                        )
                        if not got["success"] or "hi" in [m["message"] for m in got["messages"]]:
                            return got

                blocked = asyncio.create_task(bo_hears_hi())
                await until_metric(server, "mcp_chat_blocked_waits", 1)
                async with quiet_client(server.url) as (cy, _):
                    # Cy's last request ends after Bo's wait began: were a wait idleness, Bo's
                    # session would be closed before Cy's.
                    await enter(cy, room, "Cy")
                    assert await metric(server, "mcp_chat_sessions") == 3

                    events = await until_event(ada, room, ada_id, "disconnected")
                    gone = [m["sender"] for m in events if m["kind"] == "disconnected"]
                    assert gone == ["Cy"]
                    await until_metric(server, "mcp_chat_sessions", 2)
                    sent = await call(
                        ada, "send_message", room_id=room, client_id=ada_id, message="hi"
                    )
                    assert sent["success"], sent
                    got = await blocked
                    assert got["success"], got
    finally:
        server.stop()


async def full_collections(server: ServerProcess) -> tuple[float, float]:
    """Python's full (generation 2) collections in the server so far, and the objects they
    freed (/metrics)."""
    async with httpx2.AsyncClient(base_url=server.base) as http:
        found = samples((await http.get("/metrics")).text)
    full = (("generation", "2"),)
    return (
        found[("python_gc_collections_total", full)],
        found[("python_gc_objects_collected_total", full)],
    )


async def test_what_ended_sessions_leave_behind_is_collected(db_url: str) -> None:
    """A closed session leaves reference cycles (its cancelled tasks keep their frames) that
    only a full collection frees, and CPython runs one rarely: once COLLECT_AFTER sessions
    have ended, the server runs one, and it frees what they left."""
    server = ServerProcess(db_url)
    try:
        collections, freed = await full_collections(server)
        clients = COLLECT_AFTER + 5
        # Open together, as clients are: their objects live long enough to be old ones (the
        # young generations' collections, which run all the time, would free them otherwise).
        async with AsyncExitStack() as stack:
            for i in range(clients):
                client = await stack.enter_async_context(Client(server.url, mode="legacy"))
                await enter(client, f"churn{i}", "Ada")
            await until_metric(server, "mcp_chat_sessions", clients)
        await until_metric(server, "mcp_chat_sessions", 0)
        async with asyncio.timeout(SETTLES_WITHIN):
            while (now := await full_collections(server))[0] == collections:
                await asyncio.sleep(0.1)
        # About 150 objects a session (benchmarks.waits H); a third of that at least.
        assert now[1] - freed >= clients * 50, (now, freed)
    finally:
        server.stop()
