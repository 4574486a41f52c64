"""Property-based: arbitrary arguments to every tool, through FastMCP's in-memory client.

Whatever arrives, every result validates against the tool's output schema, none is an internal
error, and afterwards each room's log is intact: sequence numbers gapless from 1, no message
stored twice, every acknowledged send stored exactly once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastmcp import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mcp_chat.chat import ChatService
from mcp_chat.limits import Limits
from mcp_chat.mcp.server import create_server
from mcp_chat.stores import open_store

ARGUMENTS = {
    "join_room": ["display_name", "room_id", "capacity"],
    "send_message": ["room_id", "message", "client_id", "message_key"],
    "wait_for_message": ["room_id", "client_id", "timeout", "after"],
    "leave_chat": ["room_id", "client_id"],
    "get_messages": ["room_id", "client_id", "before", "after", "limit"],
    "list_participants": ["room_id", "client_id"],
    "list_rooms": [],
}

STATISTICS = False
"""True to see, with pytest --hypothesis-show-statistics, how often each outcome occurs."""

# Stand-ins for values only known at run time: the two members' client ids and their room.
A, B, ROOM = "<client A>", "<client B>", "<room>"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
huge_strings = st.builds(
    lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(1_000, 300_000)
)
wild = st.one_of(json_values, st.text(), huge_strings)

# Values that make sense for each argument, so that most calls get past validation and reach
# the log; each argument is sometimes wild instead, or missing.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "room_id": st.sampled_from([ROOM] * 8 + ["r2", "-bad-", ""]),
    "client_id": st.sampled_from([A] * 4 + [B] * 4 + ["mcc_forged", ""]),
    "display_name": st.sampled_from(["Carol", "Dan", " ", "Ev\x07"]) | st.text(max_size=70),
    "capacity": st.none() | st.integers(-1, 60),
    "message": st.sampled_from(["hello", "hi again", "  "]) | st.text(min_size=1),
    "message_key": st.none() | st.sampled_from(["k1", "k2", "k3"]),
    "timeout": st.floats(0, 2) | st.floats(0, 2) | st.floats(),
    "after": st.none() | st.integers(-3, 40),
    "before": st.none() | st.integers(-3, 40),
    "limit": st.none() | st.integers(-1, 120),
}


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    tool = draw(st.sampled_from(sorted(ARGUMENTS)))
    messy = draw(st.integers(0, 2)) == 0  # a third of the calls: missing, wild or extra keys
    args: dict[str, Any] = {}
    for name in ARGUMENTS[tool]:
        if messy and draw(st.booleans()):
            if draw(st.booleans()):
                args[name] = draw(wild)
            continue
        args[name] = draw(PLAUSIBLE[name])
    if messy and draw(st.booleans()):
        args["unexpected"] = draw(wild)
    return tool, args


def resolve(value: Any, known: dict[str, str]) -> Any:
    return known.get(value, value) if isinstance(value, str) else value


async def run(store_url: str, program: list[tuple[str, dict[str, Any]]]) -> None:
    # Waits clamp to at most 10 ms, so that a wait with nothing to read costs nothing.
    limits = Limits(max_message_bytes=2_000, min_wait=0.001, max_wait=0.01, default_wait=0.01)
    chat = ChatService(open_store(store_url), limits)
    async with Client(create_server(chat)) as client:
        schemas = {t.name: t.outputSchema or {} for t in await client.list_tools()}

        async def call(tool: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await client.call_tool(tool, args, raise_on_error=False)
            data = result.structured_content
            assert isinstance(data, dict), result
            jsonschema.validate(data, schemas[tool])
            assert data.get("code") != "internal_error", (tool, data)
            assert data["success"] is ("error" not in data)
            if STATISTICS:
                event(f"{tool}: {data.get('code', 'ok')}")
            return data

        a = await call("join_room", {"room_id": "r", "display_name": "A", "capacity": 3})
        b = await call("join_room", {"room_id": "r", "display_name": "B"})
        known = {A: a["client_id"], B: b["client_id"], ROOM: "r"}
        rooms = {"r"}
        acknowledged: dict[str, tuple[str, int, str]] = {}  # message_id -> room, seq, text
        started: dict[str, str] = {}  # message_id -> when its room began
        for tool, raw in program:
            args = {k: resolve(v, known) for k, v in raw.items()}
            data = await call(tool, args)
            if tool == "join_room" and data["success"]:
                rooms.add(data["room_id"])
            if tool == "send_message" and data["success"]:
                sent = (args["room_id"], data["seq"], args["message"])
                assert acknowledged.setdefault(data["message_id"], sent) == sent
                room = await chat.store.room(args["room_id"])
                assert room is not None
                started[data["message_id"]] = room.created_at

        for room_id in rooms:
            room = await chat.store.room(room_id)
            assert room is not None
            log = await chat.store.history(room_id, after=0, before=None, limit=10_000)
            assert [m.seq for m in log] == list(range(1, room.last_seq + 1))
            assert len({m.message_id for m in log}) == len(log)
        for message_id, (room_id, seq, text) in acknowledged.items():
            room = await chat.store.room(room_id)
            assert room is not None
            if room.created_at != started[message_id]:
                # The room ended and its name was taken again: the conversation it was sent in
                # was set aside (`rooms.archive_id`), and the stores' tests read it there.
                continue
            (stored,) = await chat.store.history(room_id, after=seq - 1, before=None, limit=1)
            assert (stored.message_id, stored.seq, stored.text) == (message_id, seq, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=st.lists(calls(), min_size=1, max_size=12))
def test_arbitrary_calls_on_memory(program: list[tuple[str, dict[str, Any]]]) -> None:
    asyncio.run(run("memory://", program))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=st.lists(calls(), min_size=1, max_size=12))
def test_arbitrary_calls_on_sqlite(program: list[tuple[str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{Path(tmp) / 'chat.db'}", program))


@pytest.mark.parametrize(
    "program",
    [
        [("send_message", {"room_id": ROOM, "client_id": A, "message": "x" * 300_000})],
        [("join_room", {"display_name": "\udcff"})],
        [("wait_for_message", {"room_id": ROOM, "client_id": B, "after": 2**63})],
        [("get_messages", {"room_id": ROOM, "client_id": A, "before": -(2**63)})],
        [("send_message", {"room_id": ROOM, "client_id": A, "message": "\U0001f600" * 600})],
    ],
)
def test_known_hard_cases(program: list[tuple[str, dict[str, Any]]]) -> None:
    asyncio.run(run("memory://", program))
