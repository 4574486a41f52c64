"""Property-based, over real HTTP on 127.0.0.1: arbitrary JSON to every tool (both protocol
families, raw JSON-RPC, so the fast path's own parsing is fed too) and to every /api route of
the page. Whatever arrives, nothing answers as an internal error (no -32603, no 500, no
`internal_error` code), and no read position moves past a message that was not delivered."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_chat import credentials
from tests.e2e.helpers import RawSession
from tests.e2e.test_fastcalls import serving

TOOLS: dict[str, list[str]] = {
    "join_room": ["display_name", "room_id", "capacity", "invite"],
    "send_message": ["room_id", "message", "client_id", "message_key"],
    "wait_for_message": ["room_id", "client_id", "timeout", "after"],
    "leave_chat": ["room_id", "client_id"],
    "get_messages": ["room_id", "client_id", "before", "after", "limit"],
    "list_participants": ["room_id", "client_id"],
    "list_rooms": [],
    "enter_queue": ["display_name", "interests"],
    "wait_for_match": ["client_id", "timeout"],
    "leave_queue": ["client_id"],
}
ROUTES = [
    ("GET", "/api/rooms"),
    ("POST", "/api/join"),
    ("GET", "/api/rooms/{room}/messages"),
    ("POST", "/api/rooms/{room}/messages"),
    ("GET", "/api/rooms/{room}/members"),
    ("POST", "/api/rooms/{room}/leave"),
    ("POST", "/api/queue"),
    ("POST", "/api/queue/leave"),
]
A, B, ROOM = "<client A>", "<client B>", "<room>"
DEEP = "<deeply nested>"
"""Stands for 100,000 nested arrays, written by hand: json.dumps would recurse too deep."""

# Text with everything JSON can carry, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
huge_ints = st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**1000, -(2**1000)])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_ints | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=6,
)
wild = json_values | st.just(DEEP)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "room_id": st.sampled_from([ROOM] * 6 + ["other", "-bad-", ""]),
    "client_id": st.sampled_from([A] * 3 + [B] * 3 + ["mcc_forged", ""]),
    "display_name": st.sampled_from(["Carol", " ", "Ev\ud800e"]) | any_text,
    "capacity": st.none() | st.integers(-1, 60) | huge_ints,
    "invite": st.none() | any_text,
    "message": st.sampled_from(["hello", "bad \ud800 text", "  "]) | any_text,
    "message_key": st.none() | st.sampled_from(["k1", "k2", "k\udfff"]),
    "timeout": st.floats(0, 0.02) | huge_ints | st.floats(),
    "after": st.none() | st.integers(-3, 30) | huge_ints,
    "before": st.none() | st.integers(-3, 30) | huge_ints,
    "limit": st.none() | st.integers(-1, 120) | huge_ints,
    "interests": st.none() | st.lists(any_text, max_size=6) | any_text,
}


@st.composite
def arguments(draw: st.DrawFn, names: list[str]) -> Any:
    """Mostly plausible keyword arguments; a third of the time missing, wild or extra ones,
    and now and then not an object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(wild)
    messy = draw(st.integers(0, 2)) == 0
    args: dict[str, Any] = {}
    for name in names:
        if messy and draw(st.booleans()):
            if draw(st.booleans()):
                args[name] = draw(wild)
            continue
        args[name] = draw(PLAUSIBLE[name])
    if messy and draw(st.booleans()):
        args[draw(any_text)] = draw(wild)
    return args


@st.composite
def steps(draw: st.DrawFn) -> tuple[str, str, Any]:
    """("tool", name, arguments) or (method, route, body or query)."""
    if draw(st.integers(0, 2)) > 0:
        tool = draw(st.sampled_from(sorted(TOOLS)))
        return "tool", tool, draw(arguments(TOOLS[tool]))
    method, route = draw(st.sampled_from(ROUTES))
    if method == "GET":
        query = draw(st.dictionaries(st.sampled_from(["after", "before", "limit"]), st.text()))
        big = draw(st.sampled_from([{}, {"after": str(2**64)}, {"before": "-" + "9" * 30}]))
        return method, route, {**query, **big}
    names = {
        "/api/join": ["display_name", "room_id", "capacity", "invite"],
        "/api/queue": ["display_name", "interests"],
    }.get(route, ["message", "message_key"])
    return method, route, draw(arguments(names))


def resolve(value: Any, known: dict[str, str]) -> Any:
    if isinstance(value, str):
        return known.get(value, value)
    if isinstance(value, dict):
        return {k: resolve(v, known) for k, v in value.items()}
    return value


def encoded(value: Any) -> str:
    """JSON text for `value`, with DEEP written out as 100,000 nested arrays."""
    text = json.dumps(value)
    return text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)


@dataclasses.dataclass
class Reader:
    """What a participant was handed by wait_for_message, and how far it asked to skip."""

    client_id: str
    delivered: set[int] = dataclasses.field(default_factory=set)
    skipped_to: int = 0


async def run(mode: str, program: list[tuple[str, str, Any]]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        async with serving(patch) as served, httpx2.AsyncClient() as http:
            chat = served.chat
            # Waits clamp to at most 20 ms, so that one with nothing to read costs nothing.
            chat.limits = dataclasses.replace(
                chat.limits, min_wait=0.001, max_wait=0.02, default_wait=0.01
            )
            base = f"http://127.0.0.1:{served.port}"
            async with RawSession(http, f"{base}/mcp", mode) as raw:

                async def tool(name: str, args: Any) -> dict[str, Any]:
                    body = encoded({"name": name, "arguments": args})
                    answer = await raw.send_raw("tools/call", body, name)
                    if "error" in answer:
                        assert answer["error"]["code"] != -32603, (name, answer)
                        return {"success": False}
                    data: dict[str, Any] = answer["result"]["structuredContent"]
                    assert isinstance(data["success"], bool), data
                    assert data.get("code") != "internal_error", (name, data)
                    return data

                a = await tool("join_room", {"room_id": "r", "display_name": "A", "capacity": 3})
                b = await tool("join_room", {"room_id": "r", "display_name": "B"})
                known = {A: a["client_id"], B: b["client_id"], ROOM: "r"}
                readers = {cid: Reader(cid) for cid in (a["client_id"], b["client_id"])}
                for kind, name, raw_args in program:
                    args = resolve(raw_args, known)
                    if kind == "tool":
                        data = await tool(name, args)
                        cid = args.get("client_id") if isinstance(args, dict) else None
                        reader = readers.get(cid) if isinstance(cid, str) else None
                        if name == "wait_for_message" and data["success"] and reader:
                            reader.delivered.update(m["seq"] for m in data["messages"])
                            after = args.get("after")
                            if isinstance(after, int) and not isinstance(after, bool):
                                reader.skipped_to = max(reader.skipped_to, after)
                        continue
                    path = name.replace("{room}", "r")
                    headers = {"X-Client-Id": known[A]}
                    if kind == "GET":
                        response = await http.get(base + path, params=args, headers=headers)
                    else:
                        response = await http.post(
                            base + path,
                            content=encoded(args),
                            headers={**headers, "Content-Type": "application/json"},
                        )
                    assert response.status_code != 500, (path, response.text)
                    assert response.json().get("code") != "internal_error", (path, response.text)

            log = await chat.store.history("r", after=0, before=None, limit=10_000)
            for reader in readers.values():
                p = await chat.store.participant(credentials.hash_secret(reader.client_id))
                assert p is not None
                if p.left:
                    continue  # leaving moves the read position to the end, as it should
                missed = {
                    m.seq
                    for m in log
                    if m.seq <= p.cursor
                    and m.seq > reader.skipped_to
                    and m.sender_id != p.participant_id
                    and m.seq not in reader.delivered
                }
                assert not missed, (missed, reader)


@pytest.mark.timeout(600)  # each example starts a server; a busy machine makes that slow
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_arbitrary_json_to_every_tool_and_route(mode: str) -> None:
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(program=st.lists(steps(), min_size=1, max_size=10))
    def check(program: list[tuple[str, str, Any]]) -> None:
        asyncio.run(run(mode, program))

    check()
