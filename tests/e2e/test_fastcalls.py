"""The short road for sends and waits (mcp/fastcalls.py), over real HTTP on 127.0.0.1: it
answers plain send_message and wait_for_message calls exactly as the SDK would, on both
protocol families (2026-07-28, and the handshake family's 2025-11-25 sessions), and leaves the
rest to it. Each test that can runs on both: its id names the family."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from mcp import Client
from mcp.server import _streamable_http_modern as sdk_modern
from sse_starlette.sse import EventSourceResponse

from mcp_chat.app import build, http_app
from mcp_chat.chat import ChatService
from mcp_chat.config import Settings
from mcp_chat.mcp import fastcalls
from mcp_chat.mcp.door import FrontDoor
from mcp_chat.mcp.fastcalls import FastCalls
from mcp_chat.mcp.road import Call
from tests.conftest import blocked
from tests.e2e.helpers import call, join, texts

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
HANDSHAKE = "2025-11-25"
FAMILIES = ["modern", "handshake"]
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
TOKEN = "fast-path-test-token"


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    """The protocol family a test's raw requests speak."""
    name: str = request.param
    return name


@dataclass
class Served:
    port: int
    chat: ChatService
    family: str = "modern"
    session: str | None = None
    """The handshake-era session the raw requests are made on (None on 2026-07-28)."""
    fast: list[str] = field(default_factory=list)
    """The client id of each wait_for_message the fast path answered."""
    sent: list[str] = field(default_factory=list)
    """The client id of each send_message the fast path answered."""
    door: FrontDoor | None = None
    """The front door (mcp/door.py): None on a server with tokens, which has none."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@asynccontextmanager
async def serving(
    monkeypatch: pytest.MonkeyPatch, family: str = "modern", **settings: Any
) -> AsyncIterator[Served]:
    """The product's ASGI app under uvicorn in this event loop, on a port the OS picks; on the
    handshake family, with a session opened (and initialized) for the raw requests."""
    config = Settings(store="memory://", port=0, log_level="warning", **settings)
    parts = build(config)
    app = http_app(config, parts)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    served = Served(port, parts.chat, family, door=app if isinstance(app, FrontDoor) else None)
    serve = FastCalls._serve

    async def counted(self: FastCalls, call: Call, *args: Any) -> None:
        tally = served.fast if call.tool.name == "wait_for_message" else served.sent
        tally.append(call.arguments["client_id"])
        await serve(self, call, *args)

    monkeypatch.setattr(FastCalls, "_serve", counted)
    try:
        if family == "handshake":
            served.session = await open_session(port, settings.get("auth_token"))
        yield served
    finally:
        parts.chat.stop_waits()
        server.should_exit = True
        await task


def request(
    port: int | Served,
    arguments: dict[str, Any],
    meta: dict[str, Any] | None = None,
    tool: str = "wait_for_message",
    headers: str = "",
    host: str = "",
) -> bytes:
    """A tools/call as raw HTTP: on 2026-07-28 (a port, or a server with no session), with the
    envelope in `_meta` and the routing headers; on a served session, with its id. `meta`
    replaces the `_meta` (on a session, where there is none, adds it)."""
    session = port.session if isinstance(port, Served) else None
    number = port.port if isinstance(port, Served) else port
    if session is None:
        route = f"Mcp-Protocol-Version: {VERSION}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n"
        params = {"name": tool, "arguments": arguments, "_meta": META if meta is None else meta}
    else:
        route = f"Mcp-Protocol-Version: {HANDSHAKE}\r\nMcp-Session-Id: {session}\r\n"
        params = {"name": tool, "arguments": arguments}
        if meta is not None:
            params["_meta"] = meta
    return raw_post(
        number,
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params},
        route + headers,
        host,
    )


def raw_post(port: int, message: dict[str, Any], headers: str = "", host: str = "") -> bytes:
    body = json.dumps(message).encode()
    return (
        f"POST /mcp HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        f"{headers}Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_session(port: int, token: str | None = None) -> str:
    """Opens and initializes a handshake-era session, as a client does; its id."""
    bearer = f"Authorization: Bearer {token}\r\n" if token else ""
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    opened = await post(raw_post(port, hello, bearer), port)
    assert opened.status == 200, opened
    session = opened.headers["mcp-session-id"]
    route = f"Mcp-Protocol-Version: {HANDSHAKE}\r\nMcp-Session-Id: {session}\r\n{bearer}"
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await post(raw_post(port, done, route), port)).status == 202
    return session


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def streamed(self) -> bool:
        return self.headers["content-type"].startswith("text/event-stream")

    def payload(self) -> bytes:
        """The JSON-RPC message's bytes (the JSON body, or the event stream's last event)."""
        if not self.streamed:
            return self.body
        return [ln for ln in self.body.split(b"\r\n") if ln.startswith(b"data: ")][-1][6:]

    def result(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.payload())
        return message

    def structured(self) -> dict[str, Any]:
        data: dict[str, Any] = self.result()["result"]["structuredContent"]
        return data


async def post(raw: bytes, port: int) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.read()
    writer.close()
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return Answer(int(lines[0].split()[1]), headers, body)


def dechunk(raw: bytes) -> bytes:
    out = b""
    while raw:
        size, _, raw = raw.partition(b"\r\n")
        length = int(size, 16)
        out, raw = out + raw[:length], raw[length + 2 :]
    return out


async def joined(s: Served | int, room: str, name: str) -> str:
    port = s.port if isinstance(s, Served) else s
    answer = await post(request(s, {"display_name": name, "room_id": room}, tool="join_room"), port)
    client_id: str = answer.structured()["client_id"]
    return client_id


async def through_the_sdk(monkeypatch: pytest.MonkeyPatch, send: Callable[[], Any]) -> Answer:
    """The same request served by the SDK: the fast path reads the body, then lets it go."""
    with monkeypatch.context() as patch:
        patch.setattr(fastcalls, "parse", lambda *_: None)
        answer: Answer = await send()
        return answer


def comparable(answer: Answer) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in answer.headers.items() if k != "date"}
    return answer.status, headers, answer.body


SCENARIOS: dict[str, Callable[[str], dict[str, Any]]] = {
    "re-read from the start": lambda me: {"room_id": "r", "client_id": me, "after": 0},
    "timed out": lambda me: {"room_id": "r", "client_id": me, "timeout": 1},
    "unknown client": lambda me: {"room_id": "r", "client_id": "mcc_nobody", "timeout": 1},
    "another room": lambda me: {"room_id": "elsewhere", "client_id": me},
    "timeout out of range": lambda me: {
        "room_id": "r",
        "client_id": me,
        "timeout": 0.01,
        "after": 0,
    },
    "after past the end": lambda me: {"room_id": "r", "client_id": me, "after": 99, "timeout": 1},
    "mentions only": lambda me: {
        "room_id": "r",
        "client_id": me,
        "after": 0,
        "mentions_only": True,
    },
    "no mention since": lambda me: {
        "room_id": "r",
        "client_id": me,
        "after": 3,
        "timeout": 1,
        "mentions_only": True,
    },
}


BLOCKING = {"timed out", "after past the end", "no mention since"}


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_the_fast_path_answers_byte_for_byte_as_the_sdk(
    monkeypatch: pytest.MonkeyPatch, family: str, scenario: str
) -> None:
    async with serving(monkeypatch, family) as s:
        me = await joined(s, "r", "Ann")
        other = await joined(s, "r", "Bob")
        said = {"room_id": "r", "client_id": other, "message": 'hi "@Ann" \\ héllo ✓ 🎉\n'}
        sent = request(s, said, tool="send_message")
        assert (await post(sent, s.port)).structured()["success"]
        raw = request(s, SCENARIOS[scenario](me))
        if scenario == "timed out":  # read what is there, so that both calls time out
            await post(request(s, {"room_id": "r", "client_id": me}), s.port)

        fast = await post(raw, s.port)
        assert len(s.fast) == (2 if scenario == "timed out" else 1)
        slow = await through_the_sdk(monkeypatch, lambda: post(raw, s.port))
        assert len(s.fast) == (2 if scenario == "timed out" else 1)

        if scenario in BLOCKING and family == "modern":
            # The SDK answers in JSON what came within 15 s; the fast path streams at once.
            assert fast.streamed and not slow.streamed
            assert fast.payload() == slow.payload()
        else:
            # (A handshake-era session's answers are event streams on both roads.)
            assert comparable(fast) == comparable(slow)
            assert fast.streamed is (family == "handshake")


SENDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "a message": lambda me: {"room_id": "r", "client_id": me, "message": "hello"},
    "a retry of a sent message": lambda me: {
        "room_id": "r",
        "client_id": me,
        "message": 'hi "Bob" \\ héllo ✓ 🎉\n',
        "message_key": "k1",
    },
    "a key used for another text": lambda me: {
        "room_id": "r",
        "client_id": me,
        "message": "something else",
        "message_key": "k1",
    },
    "no key": lambda me: {"room_id": "r", "client_id": me, "message": "hi", "message_key": None},
    "an unknown client": lambda me: {"room_id": "r", "client_id": "mcc_nobody", "message": "x"},
    "another room": lambda me: {"room_id": "elsewhere", "client_id": me, "message": "x"},
    "an empty message": lambda me: {"room_id": "r", "client_id": me, "message": "  "},
    "a message too long": lambda me: {"room_id": "r", "client_id": me, "message": "x" * 65},
}


def same_but_for_the_new_message(fast: Answer, slow: Answer) -> tuple[bytes, bytes]:
    """Both answers' bytes with what differs between two sends of one text (seq, id and
    time of the new message) put in a neutral form."""
    out = []
    for answer in (fast, slow):
        raw = answer.payload()
        data = answer.structured()
        for key in ("message_id", "timestamp"):
            raw = raw.replace(data[key].encode(), key.upper().encode())
        out.append(re.sub(rb'(seq\\?"):\d+', rb"\1:0", raw))
    return out[0], out[1]


@pytest.mark.parametrize("scenario", SENDS)
async def test_a_fast_send_answers_byte_for_byte_as_the_sdk(
    monkeypatch: pytest.MonkeyPatch, family: str, scenario: str
) -> None:
    async with serving(monkeypatch, family, max_message_bytes=64) as s:
        me = await joined(s, "r", "Ann")
        await joined(s, "r", "Bob")
        first = SENDS["a retry of a sent message"](me)
        assert (await post(request(s, first, tool="send_message"), s.port)).structured()["success"]
        raw = request(s, SENDS[scenario](me), tool="send_message")

        fast = await post(raw, s.port)
        assert len(s.sent) == 2
        slow = await through_the_sdk(monkeypatch, lambda: post(raw, s.port))
        assert len(s.sent) == 2
        # A send is answered in JSON on both families: on a handshake-era session, as the SDK
        # answers in its JSON-response mode (it streams one event in its default mode).
        assert not fast.streamed and slow.streamed is (family == "handshake")
        if family == "handshake":
            ours = [h for h in fast.headers if h not in ("date", "server", "connection")]
            assert ours == ["content-type", "mcp-session-id", "content-length"]  # (the SDK's)
            assert fast.headers["mcp-session-id"] == s.session

        if scenario in ("a message", "no key"):  # two messages: their seq, id and time differ
            assert slow.structured()["seq"] == fast.structured()["seq"] + 1
            fast_bytes, slow_bytes = same_but_for_the_new_message(fast, slow)
            assert b'\\"seq\\":0' in fast_bytes  # (the text content's copy is neutral too)
            assert fast_bytes == slow_bytes
        else:
            assert fast.status == slow.status and fast.payload() == slow.payload()
        if family == "modern":  # the same bytes, headers and all
            assert comparable(fast)[:2] == comparable(slow)[:2]
            if scenario not in ("a message", "no key"):
                assert comparable(fast) == comparable(slow)
        expect_success = scenario in ("a message", "no key", "a retry of a sent message")
        assert fast.structured()["success"] is expect_success


async def test_a_wait_that_blocks_streams_at_once_and_pings_like_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
    family: str,
) -> None:
    monkeypatch.setattr(fastcalls, "PING_EVERY", 0.2)
    monkeypatch.setattr(sdk_modern, "_SSE_PING_INTERVAL", 0.2)
    monkeypatch.setattr(EventSourceResponse, "DEFAULT_PING_INTERVAL", 0.2)
    async with serving(monkeypatch, family) as s:
        me = await joined(s, "r", "Ann")
        raw = request(s, {"room_id": "r", "client_id": me, "timeout": 1})

        fast = await post(raw, s.port)
        slow = await through_the_sdk(monkeypatch, lambda: post(raw, s.port))

        assert s.fast == [me]
        assert fast.status == 200
        assert comparable(fast)[:2] == comparable(slow)[:2]  # status and headers
        assert fast.headers["content-type"] == "text/event-stream"
        # The handshake era's pings (sse-starlette's) carry the time; the rest is the same.
        ping = b": ping\r\n\r\n" if family == "modern" else b": ping - TIME\r\n\r\n"
        fast_body, slow_body = (
            re.sub(rb": ping - [^\r]+", b": ping - TIME", a.body) for a in (fast, slow)
        )
        assert fast_body.startswith(ping)
        assert ping in slow_body
        assert fast_body.endswith(slow_body[slow_body.rindex(b"event: message") :])
        assert fast.structured()["timed_out"] is True


async def test_a_blocked_wait_has_its_headers_before_the_message_comes(
    monkeypatch: pytest.MonkeyPatch,
    family: str,
) -> None:
    """The recipient's client gets the event stream's headers while the wait still blocks,
    so that the message itself goes out as one write."""
    monkeypatch.setattr(fastcalls, "PING_EVERY", 300.0)
    async with serving(monkeypatch, family) as s:
        me = await joined(s, "r", "Ann")
        bob = await joined(s, "r", "Bob")
        await post(request(s, {"room_id": "r", "client_id": me}), s.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(request(s, {"room_id": "r", "client_id": me, "timeout": 120}))
        async with asyncio.timeout(10):  # (a failure would leave this waiting for 300 s)
            head = await reader.readuntil(b"\r\n\r\n")
        assert b"content-type: text/event-stream" in head
        assert s.chat.signals.waiting == 1  # still blocked: nothing has been said yet

        said = {"room_id": "r", "client_id": bob, "message": "hello"}
        await post(request(s, said, tool="send_message"), s.port)
        body = dechunk(await reader.read())
        writer.close()
        answer = Answer(200, {"content-type": "text/event-stream"}, body)
        assert [m["message"] for m in answer.structured()["messages"]] == ["hello"]
        assert body.count(b"event: message") == 1 and b": ping" not in body


async def test_a_message_wakes_a_fast_wait_from_an_sdk_client(
    monkeypatch: pytest.MonkeyPatch,
    family: str,
) -> None:
    async with (
        serving(monkeypatch, family) as s,
        Client(s.url, mode=VERSION if family == "modern" else "legacy") as a,
        Client(s.url, mode=VERSION if family == "modern" else "legacy") as b,
    ):
        ann = await join(a, "room", "Ann")
        bob = await join(b, "room", "Bob")
        await call(a, "wait_for_message", room_id="room", client_id=ann)
        waiting = asyncio.create_task(
            call(a, "wait_for_message", room_id="room", client_id=ann, timeout=60)
        )
        await blocked(s.chat)
        await call(b, "send_message", room_id="room", client_id=bob, message="hello")
        got = await waiting
        assert texts(got) == ["hello"] and not got["timed_out"]
        assert s.fast == [ann, ann]
        assert s.sent == [bob]


async def test_a_client_that_hangs_up_ends_its_wait(
    monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    async with serving(monkeypatch, family) as s:
        me = await joined(s, "r", "Ann")
        _, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(request(s, {"room_id": "r", "client_id": me, "timeout": 120}))
        await blocked(s.chat)
        assert s.fast == [me]
        writer.close()
        async with asyncio.timeout(10):
            while s.chat.signals.waiting:
                await asyncio.sleep(0.01)
        # and the participant can wait again (its wait slot was given back)
        answer = await post(request(s, {"room_id": "r", "client_id": me, "timeout": 1}), s.port)
        assert answer.structured()["timed_out"] is True


def envelope(s: Served, **extra: Any) -> dict[str, Any]:
    """A request's `_meta`: on 2026-07-28 the protocol's envelope and `extra`, else `extra`."""
    return extra if s.session is not None else {**META, **extra}


UNUSUAL: dict[str, Callable[[Served, str], bytes]] = {
    "a progress token": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": 1}, meta=envelope(s, progressToken=1)
    ),
    "a timeout as a string": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": "1"}
    ),
    "an unknown argument": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": 1, "colour": "red"}
    ),
    "a missing argument": lambda s, me: request(s, {"client_id": me}),
    "mentions_only as text": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": 1, "mentions_only": "true"}
    ),
    "mentions_only null": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": 1, "mentions_only": None}
    ),
    "other _meta": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": 1}, meta=envelope(s, trace="x")
    ),
    "an Mcp-Param header": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "timeout": 1}, headers="Mcp-Param-Room: r\r\n"
    ),
    "a send with a progress token": lambda s, me: request(
        s,
        {"room_id": "r", "client_id": me, "message": "hi"},
        meta=envelope(s, progressToken=1),
        tool="send_message",
    ),
    "a message that is a number": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "message": 5}, tool="send_message"
    ),
    "a send without a message": lambda s, me: request(
        s, {"room_id": "r", "client_id": me}, tool="send_message"
    ),
    "a send of a long message": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "message": "x" * 65_400}, tool="send_message"
    ),
    "a send with an unknown argument": lambda s, me: request(
        s, {"room_id": "r", "client_id": me, "message": "hi", "to": "Bob"}, tool="send_message"
    ),
}
REFUSED = {
    "mentions_only null",
    "an unknown argument",
    "a missing argument",
    "a message that is a number",
    "a send without a message",
    "a send with an unknown argument",
}


@pytest.mark.parametrize("case", UNUSUAL)
async def test_unusual_calls_are_left_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch, family: str, case: str
) -> None:
    async with serving(monkeypatch, family) as s:
        me = await joined(s, "r", "Ann")
        answer = await post(UNUSUAL[case](s, me), s.port)
        assert s.fast == [] and s.sent == []
        # Every one is answered by the SDK as a tool result: a success, or a refusal with its
        # structured reason (never a JSON-RPC error, never a missing result).
        assert answer.status == 200
        result = answer.result()["result"]
        refused = case in REFUSED
        assert result["isError"] is refused
        data = result["structuredContent"]
        assert data["success"] is not refused
        if refused:
            assert data["code"] == "invalid_argument", data


async def test_with_auth_only_a_request_with_the_token_takes_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
    family: str,
) -> None:
    async with serving(monkeypatch, family, auth_token=TOKEN) as s:
        bearer = f"Authorization: Bearer {TOKEN}\r\n"
        joining = request(
            s.port, {"display_name": "Ann", "room_id": "r"}, tool="join_room", headers=bearer
        )
        me = (await post(joining, s.port)).structured()["client_id"]
        args = {"room_id": "r", "client_id": me, "timeout": 1}

        refused = await post(request(s, args), s.port)
        wrong = await post(request(s, args, headers="Authorization: Bearer nope\r\n"), s.port)
        assert (refused.status, wrong.status) == (401, 401)
        assert s.fast == []

        answer = await post(request(s, args, headers=bearer), s.port)
        assert answer.status == 200 and answer.structured()["success"]
        assert s.fast == [me]


async def test_fast_calls_are_counted_in_the_metrics(
    monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    async with serving(monkeypatch, family) as s:
        me = await joined(s, "r", "Ann")
        await post(request(s, {"room_id": "r", "client_id": me, "timeout": 1}), s.port)
        await post(request(s, {"room_id": "r", "client_id": "mcc_nobody"}), s.port)
        said = {"room_id": "r", "client_id": me, "message": ""}
        await post(request(s, said, tool="send_message"), s.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(
            f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nConnection: close\r\n\r\n".encode()
        )
        page = (await reader.read()).decode()
        writer.close()
        assert len(s.fast) == 2 and len(s.sent) == 1
        assert 'mcp_chat_tool_call_seconds_count{tool="wait_for_message"} 2.0' in page
        assert 'mcp_chat_tool_call_seconds_count{tool="send_message"} 1.0' in page
        assert 'mcp_chat_errors_total{code="unknown_client"} 1.0' in page
        assert 'mcp_chat_errors_total{code="invalid_argument"} 1.0' in page


async def test_a_call_on_an_unknown_session_is_left_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(monkeypatch, "handshake") as s:
        me = await joined(s, "r", "Ann")
        s.session = "0" * 32
        answer = await post(request(s, {"room_id": "r", "client_id": me, "timeout": 1}), s.port)
        assert answer.status == 404
        assert s.fast == []


async def test_a_session_speaks_for_those_it_served_on_the_short_road(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A participant heard only through the short road on a session is gone when that session
    closes, as if the SDK had served its calls: the road speaks through the session's own
    connection."""
    async with serving(monkeypatch, "handshake") as s:
        ann = await joined(s, "r", "Ann")
        first = s.session
        s.session = await open_session(s.port)
        bob = await joined(s, "r", "Bob")
        assert (await close_session(s.port, s.session)) == 200  # Bob's first session
        s.session = await open_session(s.port)
        said = {"room_id": "r", "client_id": bob, "message": "back"}
        assert (await post(request(s, said, tool="send_message"), s.port)).structured()["success"]
        assert s.sent == [bob]

        assert (await close_session(s.port, s.session)) == 200
        s.session = first
        heard = await post(request(s, {"room_id": "r", "client_id": ann, "after": 0}), s.port)
        kinds = [(m["kind"], m["sender"]) for m in heard.structured()["messages"]]
        assert kinds[-3:] == [("returned", "Bob"), ("message", "Bob"), ("disconnected", "Bob")]


async def test_a_wait_on_the_short_road_keeps_its_session_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session's idle countdown stops while a call is in flight, on the short road too: a
    wait longer than the idle timeout does not close the session it waits on."""
    async with serving(monkeypatch, "handshake", session_idle_timeout=0.5) as s:
        me = await joined(s, "r", "Ann")
        waited = await post(request(s, {"room_id": "r", "client_id": me, "timeout": 2}), s.port)
        assert waited.structured()["timed_out"] is True and s.fast == [me]
        again = await post(request(s, {"room_id": "r", "client_id": me, "timeout": 1}), s.port)
        assert again.status == 200 and again.structured()["success"]


async def close_session(port: int, session: str) -> int:
    """DELETE of a handshake-era session, as a client ends it; the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nMcp-Session-Id: {session}\r\n"
        f"Mcp-Protocol-Version: {HANDSHAKE}\r\nConnection: close\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return int(head.split()[1])


# The front door (mcp/door.py): the short road served before Starlette's stack.


def said(s: Served, client_id: str, text: str, **request_args: Any) -> bytes:
    arguments = {"room_id": "r", "client_id": client_id, "message": text}
    return request(s, arguments, tool="send_message", **request_args)


async def read_all(s: Served, client_id: str) -> list[str]:
    """The texts of the room's messages (not its notices) from the others, read from the
    start by `client_id`."""
    answer = await post(request(s, {"room_id": "r", "client_id": client_id, "after": 0}), s.port)
    return [m["message"] for m in answer.structured()["messages"] if m["kind"] == "message"]


async def test_plain_calls_take_the_front_door_once_their_gate_passed_the_guard(
    monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    async with serving(monkeypatch, family) as s:
        assert s.door is not None
        me, bob = await joined(s, "r", "Ann"), await joined(s, "r", "Bob")
        assert (await post(said(s, me, "one"), s.port)).structured()["success"]
        before = s.door.served  # the guard has seen this gate by now
        assert (await post(said(s, me, "two"), s.port)).structured()["success"]
        assert s.door.served == before + 1
        assert await read_all(s, bob) == ["one", "two"]
        assert s.door.served == before + 2
        assert s.sent == [me, me]  # both sends on the short road


async def test_the_front_door_refuses_what_the_guard_refuses(
    monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    """DNS rebinding: a page on evil.example that resolves its name to 127.0.0.1 sends a
    plain send_message, after our own client's plain calls have taught the door their gate."""
    async with serving(monkeypatch, family) as s:
        assert s.door is not None
        me, bob = await joined(s, "r", "Ann"), await joined(s, "r", "Bob")
        for text in ("one", "two"):
            assert (await post(said(s, me, text), s.port)).structured()["success"]
        before = s.door.served
        rebound = await post(said(s, me, "rebound", host="evil.example"), s.port)
        assert rebound.status == 421
        cross = await post(said(s, me, "cross", headers="Origin: http://evil.example\r\n"), s.port)
        assert cross.status == 403
        assert s.door.served == before
        assert await read_all(s, bob) == ["one", "two"]


async def test_a_body_that_stops_at_the_front_door_is_answered_408(
    monkeypatch: pytest.MonkeyPatch, family: str
) -> None:
    async with serving(monkeypatch, family, read_timeout=0.3) as s:
        me, bob = await joined(s, "r", "Ann"), await joined(s, "r", "Bob")
        for text in ("one", "two"):  # the second through the door
            assert (await post(said(s, me, text), s.port)).structured()["success"]
        head, _, body = said(s, me, "slow").partition(b"\r\n\r\n")
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        try:
            writer.write(head + b"\r\n\r\n" + body[:10])
            async with asyncio.timeout(30):  # a bound on a hang, not a measurement
                answer = await reader.read()
        finally:
            writer.close()
        top, _, refusal = answer.partition(b"\r\n\r\n")
        assert top.startswith(b"HTTP/1.1 408") and b"connection: close" in top.lower(), top
        assert json.loads(refusal)["error"]["code"] == -32600
        assert (await post(said(s, me, "three"), s.port)).structured()["success"]
        assert await read_all(s, bob) == ["one", "two", "three"]


async def test_a_server_with_tokens_has_no_front_door(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its token check is in the stack: every call goes through it (the short road after)."""
    async with serving(monkeypatch, "modern", auth_token=TOKEN) as s:
        assert s.door is None
