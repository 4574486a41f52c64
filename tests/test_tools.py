"""The MCP tools through FastMCP's in-memory client: shapes, schemas and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from fastmcp import Client, FastMCP

from mcp_chat.chat import ChatService
from mcp_chat.limits import Limits
from mcp_chat.mcp.server import create_server
from mcp_chat.stores import open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(store_url: str) -> AsyncIterator[FastMCP]:
    yield create_server(ChatService(open_store(store_url), Limits(max_message_bytes=100)))


class Caller:
    """Calls tools and checks every result against the tool's declared output schema."""

    def __init__(self, client: Client[Any], schemas: dict[str, dict[str, Any]]) -> None:
        self.client, self.schemas = client, schemas

    async def __call__(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args, raise_on_error=False)
        data = result.structured_content
        assert isinstance(data, dict), result
        jsonschema.validate(data, self.schemas[tool])
        assert data["success"] is ("error" not in data)
        return data


@pytest.fixture
async def call(server: FastMCP) -> AsyncIterator[Caller]:
    async with Client(server) as client:
        tools = await client.list_tools()
        yield Caller(client, {t.name: t.outputSchema or {} for t in tools})


async def test_tool_list_keeps_the_seed_names_and_arguments(server: FastMCP) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert {"join_room", "send_message", "wait_for_message", "leave_chat"} <= tools.keys()
    assert {"room_id", "message", "client_id"} <= set(tools["send_message"].inputSchema["required"])
    assert set(tools["wait_for_message"].inputSchema["properties"]) >= {
        "room_id",
        "client_id",
        "timeout",
    }
    for tool in tools.values():
        assert tool.outputSchema is not None and "success" in tool.outputSchema["required"]


async def descriptions(limits: Limits) -> str:
    """Every description the tool list and the resource templates give, in one text."""
    server = create_server(ChatService(open_store("memory://"), limits))
    async with Client(server) as client:
        tools = await client.list_tools()
        templates = await client.list_resource_templates()
    texts = [t.description or "" for t in [*tools, *templates]]
    for tool in tools:
        texts += [p.get("description", "") for p in tool.inputSchema["properties"].values()]
    return "\n".join(texts)


async def test_the_numbers_in_the_descriptions_are_the_limits() -> None:
    default = await descriptions(Limits())
    for said in ("default 30, 1-300;", "Seconds to wait, 1-300.", "(max 100)", "(up to 100)"):
        assert said in default
    assert "Up to 5 short tags" in default and "(default 2)" in default
    changed = await descriptions(
        Limits(default_wait=20.0, min_wait=2.0, max_wait=120.0, history_page=40)
    )
    for said in ("default 20, 2-120;", "Seconds to wait, 2-120.", "(max 40)", "(up to 40)"):
        assert said in changed
    assert "300" not in changed and "100" not in changed


async def test_no_tool_asks_the_core_a_second_time_for_unread(
    call: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: object) -> int:
        raise AssertionError("a tool asked chat.unread")

    monkeypatch.setattr(ChatService, "unread", refuse)
    alice = await call("join_room", room_id="lobby", display_name="Alice")
    a = alice["client_id"]
    bob = await call("join_room", room_id="lobby", display_name="Bob")
    assert (alice["unread"], bob["unread"]) == (0, 1)
    assert (await call("send_message", room_id="lobby", message="hi", client_id=a))["unread"] == 1
    assert (await call("get_messages", room_id="lobby", client_id=a))["unread"] == 1
    assert (await call("list_participants", room_id="lobby", client_id=a))["unread"] == 1
    ann = await call("enter_queue", display_name="Ann")
    assert "unread" not in ann  # waiting
    ben = await call("enter_queue", display_name="Ben")
    assert ben["status"] == "matched" and ben["unread"] == 1  # Ann's 'matched'
    matched = await call("wait_for_match", client_id=ann["client_id"], timeout=1)
    assert matched["status"] == "matched" and matched["unread"] == 1


async def test_a_conversation_through_the_tools(call: Caller) -> None:
    alice = await call("join_room", room_id="lobby", display_name="Alice")
    assert alice["members"] == [
        {"participant_id": alice["participant_id"], "display_name": "Alice", "presence": "present"}
    ]
    sent = await call("send_message", room_id="lobby", message="hi!", client_id=alice["client_id"])
    assert sent["seq"] == 2 and sent["timestamp"].endswith("Z")
    bob = await call("join_room", room_id="lobby", display_name="Bob")
    got = await call("wait_for_message", room_id="lobby", client_id=bob["client_id"], timeout=1)
    assert [(m["sender"], m["message"], m["system"]) for m in got["messages"]] == [
        ("Alice", "Alice joined the room.", True),
        ("Alice", "hi!", False),
    ]
    heard = await call("wait_for_message", room_id="lobby", client_id=alice["client_id"])
    assert heard["messages"][0]["kind"] == "joined" and heard["messages"][0]["sender"] == "Bob"
    who = await call("list_participants", room_id="lobby", client_id=bob["client_id"])
    assert [m["display_name"] for m in who["members"]] == ["Alice", "Bob"]
    history = await call("get_messages", room_id="lobby", client_id=bob["client_id"])
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3]
    rooms = await call("list_rooms")
    assert rooms["rooms"][0]["room_id"] == "lobby"
    assert (await call("leave_chat", room_id="lobby", client_id=bob["client_id"]))["room_ended"]
    ended = await call("send_message", room_id="lobby", message="x", client_id=alice["client_id"])
    assert ended["code"] == "chat_ended"


async def test_retried_send_with_a_key_is_stored_once(call: Caller) -> None:
    a = await call("join_room", room_id="r", display_name="A")
    args = {"room_id": "r", "message": "once", "client_id": a["client_id"], "message_key": "k"}
    first, again = await call("send_message", **args), await call("send_message", **args)
    assert again["duplicate"] and again["message_id"] == first["message_id"]
    history = await call("get_messages", room_id="r", client_id=a["client_id"])
    assert [m["message"] for m in history["messages"]].count("once") == 1


async def test_generated_room_ids_and_larger_rooms(call: Caller) -> None:
    made = await call("join_room", display_name="Host", capacity=5)
    assert made["room_id"].startswith("room-") and made["capacity"] == 5
    for i in range(4):
        assert (await call("join_room", room_id=made["room_id"], display_name=f"G{i}"))["success"]
    full = await call("join_room", room_id=made["room_id"], display_name="late")
    assert full["code"] == "room_full"


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("join_room", {}, "invalid_argument"),
    ("join_room", {"display_name": 42}, "invalid_argument"),
    ("join_room", {"display_name": "  "}, "invalid_argument"),
    ("join_room", {"display_name": "Ev\x07il"}, "invalid_argument"),
    ("join_room", {"display_name": "x", "room_id": "no spaces"}, "invalid_argument"),
    ("join_room", {"display_name": "x", "capacity": 1}, "invalid_argument"),
    ("join_room", {"display_name": "x", "capacity": 10_000}, "invalid_argument"),
    ("send_message", {"room_id": "r"}, "invalid_argument"),
    ("send_message", {"room_id": "r", "message": "", "client_id": "{A}"}, "invalid_argument"),
    (
        "send_message",
        {"room_id": "r", "message": "x" * 101, "client_id": "{A}"},
        "message_too_large",
    ),
    ("send_message", {"room_id": "nope", "message": "hi", "client_id": "{A}"}, "not_in_room"),
    (
        "send_message",
        {"room_id": "r", "message": "hi", "client_id": "mcc_forged"},
        "unknown_client",
    ),
    ("send_message", {"room_id": "r", "message": ["hi"], "client_id": "{A}"}, "invalid_argument"),
    (
        "wait_for_message",
        {"room_id": "r", "client_id": "{A}", "timeout": "soon"},
        "invalid_argument",
    ),
    ("wait_for_message", {"room_id": "r", "client_id": "{A}", "after": "x"}, "invalid_argument"),
    ("wait_for_message", {"room_id": "r", "client_id": "{A}", "bogus": 1}, "invalid_argument"),
    ("get_messages", {"room_id": "r", "client_id": "{A}", "limit": 0}, "invalid_argument"),
    (
        "get_messages",
        {"room_id": "r", "client_id": "{A}", "before": 3, "after": 1},
        "invalid_argument",
    ),
    ("leave_chat", {"room_id": "r", "client_id": ""}, "invalid_argument"),
]


@pytest.mark.parametrize(("tool", "args", "code"), BAD_CALLS)
async def test_bad_input_gets_a_clear_error_and_breaks_nothing(
    call: Caller, tool: str, args: dict[str, Any], code: str
) -> None:
    a = await call("join_room", room_id="r", display_name="A")
    await call("send_message", room_id="r", message="before", client_id=a["client_id"])
    args = {k: a["client_id"] if v == "{A}" else v for k, v in args.items()}
    failed = await call(tool, **args)
    assert failed["success"] is False and failed["code"] == code
    assert len(failed["error"]) > 20  # a sentence, not a bare word
    assert a["client_id"] not in failed["error"]
    # The server still serves, and the log is intact.
    b = await call("join_room", room_id="r", display_name="B")
    got = await call("wait_for_message", room_id="r", client_id=b["client_id"], timeout=1)
    assert [m["message"] for m in got["messages"]] == ["A joined the room.", "before"]


async def test_someone_elses_client_id_does_not_work(call: Caller) -> None:
    a = await call("join_room", room_id="a-room", display_name="A")
    await call("join_room", room_id="b-room", display_name="B")
    theft = await call("get_messages", room_id="b-room", client_id=a["client_id"])
    assert theft["code"] == "not_in_room"
    assert "messages" not in theft


async def test_random_pairing_through_the_tools(server: FastMCP) -> None:
    async with Client(server) as one, Client(server) as two:
        schemas = {t.name: t.outputSchema or {} for t in await one.list_tools()}
        first, second = Caller(one, schemas), Caller(two, schemas)
        ann = await first("enter_queue", display_name="Ann", interests=["chess"])
        assert ann["status"] == "waiting" and ann["position"] == 1
        assert "wait_for_match" in ann["next_step"]
        ben = await second("enter_queue", display_name="Ben", interests=["chess", "go"])
        assert ben["status"] == "matched" and ben["partner"]["display_name"] == "Ann"
        learned = await first("wait_for_match", client_id=ann["client_id"], timeout=1)
        assert learned["status"] == "matched" and learned["room_id"] == ben["room_id"]
        room = ben["room_id"]
        await second("send_message", room_id=room, message="hello", client_id=ben["client_id"])
        heard = await first("wait_for_message", room_id=room, client_id=ann["client_id"])
        assert [m["kind"] for m in heard["messages"]] == ["matched", "message"]
        bad = await first("wait_for_match", client_id="mcc_nobody")
        assert bad["code"] == "not_in_queue"
        bad_tags = await first("enter_queue", display_name="Cy", interests=["<b>"])
        assert bad_tags["code"] == "invalid_argument"


async def test_private_rooms_through_the_tools(call: Caller) -> None:
    host = await call("join_room", room_id="hideout", display_name="Host", invite="s3cret")
    assert host["success"]
    assert (await call("list_rooms"))["rooms"] == []
    snoop = await call("join_room", room_id="hideout", display_name="Snoop")
    assert snoop["code"] == "invite_required" and "s3cret" not in snoop["error"]
    guest = await call("join_room", room_id="hideout", display_name="Guest", invite="s3cret")
    assert guest["success"]
    who = await call("list_participants", room_id="hideout", client_id=guest["client_id"])
    assert [(m["display_name"], m["presence"]) for m in who["members"]] == [
        ("Host", "present"),
        ("Guest", "present"),
    ]


async def test_each_limit_answers_with_its_own_code(store_url: str) -> None:
    limits = Limits(max_rooms=1, rate_messages=1, rate_window=3600, max_waits=1)
    chat = ChatService(open_store(store_url), limits)
    async with Client(create_server(chat)) as client:
        tools = await client.list_tools()
        call = Caller(client, {t.name: t.outputSchema or {} for t in tools})
        a = await call("join_room", room_id="only", display_name="A", capacity=3)
        b = await call("join_room", room_id="only", display_name="B")
        rooms = await call("join_room", room_id="another", display_name="C")
        assert rooms["code"] == "too_many_rooms"
        args = {"room_id": "only", "client_id": a["client_id"]}
        assert (await call("send_message", message="one", **args))["success"]
        fast = await call("send_message", message="two", **args)
        assert fast["code"] == "rate_limited" and "Wait" in fast["error"]
        await call("wait_for_message", room_id="only", client_id=b["client_id"], timeout=1)
        blocked = asyncio.create_task(
            call("wait_for_message", room_id="only", client_id=b["client_id"], timeout=300)
        )
        while chat.signals.waiting == 0:
            await asyncio.sleep(0)
        second = await call("wait_for_message", room_id="only", client_id=b["client_id"])
        assert second["code"] == "too_many_waits"
        await call("join_room", room_id="only", display_name="D")  # wakes the blocked wait
        assert (await blocked)["messages"][0]["kind"] == "joined"
