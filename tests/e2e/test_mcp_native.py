"""MCP-native features through real clients: resources, subscriptions, progress, prompts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from mcp_chat.mcp.resources import TOO_MANY_STREAMS
from tests.e2e.conftest import MODES, ServerProcess, stdio_params
from tests.e2e.helpers import Updates, call

pytestmark = pytest.mark.anyio


async def read_json(client: Client, uri: str) -> dict[str, Any]:
    result = await client.read_resource(uri)
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    data = json.loads(content.text)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("mode", MODES)
async def test_rooms_are_resources_readable_only_by_their_members(
    http_server: ServerProcess, mode: str
) -> None:
    async with Client(http_server.url, mode=mode) as a, Client(http_server.url, mode=mode) as b:
        alice = await call(a, "join_room", room_id="res", display_name="Alice", invite="pw")
        bob = await call(b, "join_room", room_id="res", display_name="Bob", invite="pw")
        await call(
            a, "send_message", room_id="res", message="on the record", client_id=alice["client_id"]
        )
        transcript = await read_json(b, bob["transcript_uri"])
        assert [m["message"] for m in transcript["messages"]][-1] == "on the record"
        members = await read_json(a, alice["members_uri"])
        assert [m["display_name"] for m in members["members"]] == ["Alice", "Bob"]

        # An outsider, with a key of its own from another room, cannot read this one.
        eve = await call(b, "join_room", room_id="elsewhere", display_name="Eve")
        own_key = eve["transcript_uri"].split("/")[4]
        forged = f"chat://rooms/res/{own_key}/messages"
        for uri in (forged, "chat://rooms/res/mcr_guess/messages"):
            with pytest.raises(MCPError) as refused:
                await b.read_resource(uri)
            assert refused.value.code == types.INVALID_PARAMS, refused.value
        # A member who leaves loses the key's power.
        await call(b, "leave_chat", room_id="res", client_id=bob["client_id"])
        with pytest.raises(MCPError) as refused:
            await b.read_resource(bob["transcript_uri"])
        assert refused.value.code == types.INVALID_PARAMS, refused.value


async def legacy_subscription_round(target: Any) -> None:
    updates = Updates()
    async with (
        Client(target, mode="legacy", message_handler=updates) as a,
        Client(target, mode="legacy") as b,
    ):
        alice = await call(a, "join_room", room_id="sub", display_name="Alice")
        bob = await call(b, "join_room", room_id="sub", display_name="Bob")
        uri = alice["transcript_uri"]
        await a.subscribe_resource(uri)
        await call(b, "send_message", room_id="sub", message="one", client_id=bob["client_id"])
        assert await updates.uris.get() == uri
        await a.unsubscribe_resource(uri)
        await call(b, "send_message", room_id="sub", message="two", client_id=bob["client_id"])
        # Subscribe to the member list instead: the next update must be about it. Had "two"
        # been announced after unsubscribing, its update would come first on this connection.
        await a.subscribe_resource(alice["members_uri"])
        await call(b, "leave_chat", room_id="sub", client_id=bob["client_id"])
        assert await updates.uris.get() == alice["members_uri"]
        # A subscription needs a key that opens the room.
        with pytest.raises(MCPError):
            await a.subscribe_resource("chat://rooms/sub/mcr_nope/messages")


async def test_resource_subscriptions_over_http(http_server: ServerProcess) -> None:
    await legacy_subscription_round(http_server.url)


async def test_resource_subscriptions_over_stdio(db_url: str) -> None:
    await legacy_subscription_round(stdio_params(db_url))


async def test_listen_streams_of_the_2026_protocol(http_server: ServerProcess) -> None:
    async with Client(http_server.url) as a, Client(http_server.url) as b:
        alice = await call(a, "join_room", room_id="listen", display_name="Alice")
        bob = await call(b, "join_room", room_id="listen", display_name="Bob")
        uri = alice["transcript_uri"]
        async with a.listen(resource_subscriptions=[uri]) as stream:
            await call(
                b, "send_message", room_id="listen", message="hi", client_id=bob["client_id"]
            )
            event = await anext(stream)
            assert getattr(event, "uri", None) == uri
        with pytest.raises(MCPError):
            async with a.listen(resource_subscriptions=["chat://rooms/listen/mcr_x/messages"]):
                pass


async def test_listen_streams_on_one_key_are_as_many_as_max_waits(db_url: str) -> None:
    server = ServerProcess(db_url, "--max-waits", "2")
    try:
        async with Client(server.url) as a, Client(server.url) as b:
            alice = await call(a, "join_room", room_id="capped", display_name="Alice")
            bob = await call(b, "join_room", room_id="capped", display_name="Bob")
            messages, members = alice["transcript_uri"], alice["members_uri"]
            async with (
                a.listen(resource_subscriptions=[messages]),
                a.listen(resource_subscriptions=[members]),  # the same key: the same holder
            ):
                with pytest.raises(MCPError) as refused:
                    async with a.listen(resource_subscriptions=[messages, bob["members_uri"]]):
                        pass
                error = refused.value.error
                assert error.code == TOO_MANY_STREAMS
                assert error.message.startswith("You already have 2 subscriptions/listen streams")
                assert error.data == {"code": "too_many_streams", "limit": 2}
                # Another holder's key counts apart; and so do the holder's waits.
                async with b.listen(resource_subscriptions=[bob["transcript_uri"]]):
                    pass
                waited = await call(
                    a, "wait_for_message", room_id="capped", client_id=alice["client_id"]
                )
                assert waited["success"], waited
    finally:
        server.stop()


async def events_until_the_end(stream: AsyncIterator[Any]) -> list[Any]:
    """The events a listen stream still gives, once it has ended (a hang fails the test)."""
    async with asyncio.timeout(30):
        return [event async for event in stream]


async def test_a_listen_stream_ends_when_its_holder_leaves(http_server: ServerProcess) -> None:
    async with Client(http_server.url) as a, Client(http_server.url) as b:
        alice = await call(a, "join_room", room_id="left", display_name="Alice", capacity=3)
        bob = await call(b, "join_room", room_id="left", display_name="Bob")
        uri = alice["transcript_uri"]

        async def say(text: str) -> None:
            sent = await call(
                b, "send_message", room_id="left", message=text, client_id=bob["client_id"]
            )
            assert sent["success"], sent

        async with a.listen(resource_subscriptions=[uri]) as stream:
            await say("before")
            assert getattr(await anext(stream), "uri", None) == uri
            left = await call(a, "leave_chat", room_id="left", client_id=alice["client_id"])
            assert left["success"] and not left["room_ended"]
            await say("after")  # the room goes on: had the stream stayed, it would hear this
            assert await events_until_the_end(stream) == []


async def test_a_listen_stream_ends_when_its_holder_is_marked_gone(
    http_server: ServerProcess,
) -> None:
    """A participant of a handshake-era session is gone once the session closes; a stream
    on its key (here a 2026-07-28 client's) ends then."""
    async with AsyncExitStack() as stack, AsyncExitStack() as session:
        modern = await stack.enter_async_context(Client(http_server.url))
        legacy = await session.enter_async_context(Client(http_server.url, mode="legacy"))
        joined = await call(legacy, "join_room", room_id="gone", display_name="Alice")
        listening = modern.listen(resource_subscriptions=[joined["transcript_uri"]])
        stream = await stack.enter_async_context(listening)
        await session.aclose()  # the client ends its session
        assert await events_until_the_end(stream) == []


async def test_progress_keeps_a_long_wait_alive(db_url: str) -> None:
    server = ServerProcess(db_url, env={"MCP_CHAT_KEEPALIVE": "0.2"})
    try:
        async with Client(server.url) as a, Client(server.url) as b:
            alice = await call(a, "join_room", room_id="slow", display_name="Alice")
            bob = await call(b, "join_room", room_id="slow", display_name="Bob")
            await call(
                a, "wait_for_message", room_id="slow", client_id=alice["client_id"], timeout=1
            )
            progressed = asyncio.Event()
            reports: list[float] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                reports.append(progress)
                progressed.set()

            waiting = asyncio.create_task(
                a.call_tool(
                    "wait_for_message",
                    {"room_id": "slow", "client_id": alice["client_id"], "timeout": 60},
                    progress_callback=on_progress,
                )
            )
            await progressed.wait()  # the wait is blocked and says so
            await call(
                b, "send_message", room_id="slow", message="finally", client_id=bob["client_id"]
            )
            result = (await waiting).structured_content
            assert result is not None and [m["message"] for m in result["messages"]] == ["finally"]
            assert reports == sorted(reports) and reports[0] > 0
    finally:
        server.stop()


async def test_prompts_list_and_render(http_server: ServerProcess) -> None:
    async with Client(http_server.url) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert {"chat_in_room", "random_chat"} <= set(prompts)
        for prompt in prompts.values():  # each argument says what it is, in words
            for argument in prompt.arguments or []:
                assert argument.description and "JSON schema" not in argument.description
        required = {a.name: a.required for a in prompts["chat_in_room"].arguments or []}
        assert required == {"room_id": True, "display_name": True, "goal": False}
        room = await client.get_prompt("chat_in_room", {"room_id": "plan", "display_name": "Ada"})
        text = room.messages[0].content
        assert isinstance(text, types.TextContent)
        assert "join_room(room_id='plan'" in text.text and "leave_chat" in text.text
        pairing = await client.get_prompt(
            "random_chat", {"display_name": "Ada", "interests": "go, chess"}
        )
        body = pairing.messages[0].content
        assert isinstance(body, types.TextContent) and "wait_for_match" in body.text
        assert "'go', 'chess'" in body.text


async def test_every_result_in_a_room_counts_the_unread(http_server: ServerProcess) -> None:
    async with Client(http_server.url) as a, Client(http_server.url) as b:
        alice = await call(a, "join_room", room_id="count", display_name="Alice")
        bob = await call(b, "join_room", room_id="count", display_name="Bob")
        assert bob["unread"] == 1  # Alice's 'joined'
        for text in ("one", "two", "three"):
            await call(
                a, "send_message", room_id="count", message=text, client_id=alice["client_id"]
            )
        sent = await call(
            b, "send_message", room_id="count", message="hey", client_id=bob["client_id"]
        )
        assert sent["unread"] == 4
        who = await call(b, "list_participants", room_id="count", client_id=bob["client_id"])
        assert who["unread"] == 4
        got = await call(b, "wait_for_message", room_id="count", client_id=bob["client_id"])
        assert got["unread"] == 0 and len(got["messages"]) == 4


async def test_the_tool_list_stays_small(http_server: ServerProcess) -> None:
    async with Client(http_server.url, mode="legacy") as client:
        listed = await client.session.list_tools()
    size = len(json.dumps(listed.model_dump(by_alias=True, exclude_none=True, mode="json")))
    # Budget: under a tenth of a popular agent-mail server's ~24,700 tokens, at ~4 characters
    # a token. The README quotes the current figure.
    assert size < 9_880, size
