"""What one request may cost (bounds.py): the size of its body and head, and the time to send
them, against a real `mcp-chat serve` process. Plain HTTP through httpx, raw bytes through a
socket where a client must misbehave, and the SDK's client to show the server still serves."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator

import httpx2
import pytest
from mcp import Client

from mcp_chat.bounds import MAX_HEAD_BYTES
from mcp_chat.config import Settings
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio

READ_TIMEOUT = 0.5
"""The server's MCP_CHAT_READ_TIMEOUT here: short, so that a stalled client is answered soon."""
CAP = Settings(max_message_bytes=65536).max_body_bytes()
ANSWER_WITHIN = 30.0
"""How long a test waits for an answer it expects (a bound on a hang, not a measurement)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: each test shows it still serves after what it sent."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('bounds') / 'chat.db'}"
    served = ServerProcess(db_url, env={"MCP_CHAT_READ_TIMEOUT": str(READ_TIMEOUT)})
    yield served
    served.stop()


async def exchange(server: ServerProcess, data: bytes) -> bytes:
    """Sends `data` on a new connection, sends nothing more, and returns all the server
    writes until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(ANSWER_WITHIN):
            return await reader.read()
    finally:
        writer.close()


def head(server: ServerProcess, method: str, path: str, *lines: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in lines)
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{fields}\r\n".encode()


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    top, _, body = answer.partition(b"\r\n\r\n")
    status = int(top.split(b" ", 2)[1])
    assert b"connection: close" in top.lower(), top
    return status, json.loads(body)


async def still_serving(server: ServerProcess) -> None:
    room = f"still-{secrets.token_hex(4)}"
    async with Client(server.url, mode="legacy") as client:
        await join(client, room, "Ada")
    async with httpx2.AsyncClient(base_url=server.base) as http:
        answer = await http.post("/api/join", json={"room_id": room, "display_name": "Bo"})
        assert answer.status_code == 200, answer.text


async def test_a_body_over_the_cap_is_refused_on_every_route(server: ServerProcess) -> None:
    body = b"x" * (CAP + 1)
    async with httpx2.AsyncClient(base_url=server.base) as http:
        page = await http.post(
            "/api/join", content=body, headers={"Content-Type": "application/json"}
        )
        assert page.status_code == 413
        assert page.json()["code"] == "request_too_large"
        assert str(CAP) in page.json()["error"]
        mcp = await http.post(
            "/mcp",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        assert mcp.status_code == 413
        assert mcp.json()["error"]["code"] == -32600 and str(CAP) in mcp.json()["error"]["message"]
    await still_serving(server)


async def test_a_huge_declared_body_is_refused_before_it_is_sent(server: ServerProcess) -> None:
    """300 MB announced, none of it sent yet: the answer comes without waiting for it. (A
    client that goes on sending may find the connection reset once the answer is out.)"""
    start = head(
        server,
        "POST",
        "/api/join",
        "Content-Type: application/json",
        f"Content-Length: {300 * 1024 * 1024}",
    )
    status, body = status_and_body(await exchange(server, start))
    assert status == 413 and body["code"] == "request_too_large"
    await still_serving(server)


@pytest.mark.parametrize("path", ["/api/join", "/mcp"])
async def test_a_chunked_body_is_refused_once_it_passes_the_cap(
    server: ServerProcess, path: str
) -> None:
    """No Content-Length: the body is counted as it comes, and refused as soon as it passes
    the cap, though its end never comes."""
    start = head(
        server,
        "POST",
        path,
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        "Transfer-Encoding: chunked",
    )
    piece = b"x" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(CAP // len(piece) + 1))
    status, _ = status_and_body(await exchange(server, start + chunks))  # no last chunk
    assert status == 413
    await still_serving(server)


async def test_the_largest_legitimate_send_passes(server: ServerProcess) -> None:
    """A message of the largest size whose every byte JSON escapes six-fold fits the cap; one
    byte more is the core's own message_too_large, not a 413."""
    largest = "a" + "\x01" * 65535
    async with Client(server.url) as client:
        ada = await join(client, "big", "Ada")
        sent = await call(client, "send_message", room_id="big", client_id=ada, message=largest)
        assert sent["success"], sent
        over = await call(
            client, "send_message", room_id="big", client_id=ada, message=largest + "a"
        )
        assert over["code"] == "message_too_large", over
    async with httpx2.AsyncClient(base_url=server.base) as http:
        joined = await http.post("/api/join", json={"room_id": "big", "display_name": "Bo"})
        bo = {"X-Client-Id": joined.json()["client_id"]}
        body = json.dumps({"message": largest, "message_key": "k" * 64})
        assert len(body) > 6 * 65535
        page = await http.post("/api/rooms/big/messages", content=body, headers=bo)
        assert page.status_code == 200, page.text


async def test_headers_over_the_limit_are_refused(server: ServerProcess) -> None:
    near = head(
        server, "GET", "/healthz", f"X-Big: {'a' * (MAX_HEAD_BYTES - 200)}", "Connection: close"
    )
    assert (await exchange(server, near)).startswith(b"HTTP/1.1 200 ")
    # One header too big, in one piece...
    big = head(server, "GET", "/healthz", f"X-Big: {'a' * MAX_HEAD_BYTES}")
    status, body = status_and_body(await exchange(server, big))
    assert status == 431 and body["code"] == "headers_too_large"
    # ... or many headers that never end, written one by one up to just past the limit.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        sent = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
        writer.write(sent)
        written = len(sent)
        async with asyncio.timeout(ANSWER_WITHIN):
            while written <= MAX_HEAD_BYTES:
                line = b"X-%d: %s\r\n" % (written, b"b" * 100)
                writer.write(line)
                written += len(line)
                await writer.drain()
            answer = await reader.read()
    finally:
        writer.close()
    status, _ = status_and_body(answer)
    assert status == 431
    await still_serving(server)


async def test_a_big_body_that_comes_with_its_head_is_no_long_head(server: ServerProcess) -> None:
    """Head and a 200 KB body written at once, several times on one connection: only the
    head counts against the head's limit, however the server's reads cut the bytes."""
    body = json.dumps({"room_id": f"one-{secrets.token_hex(3)}", "display_name": "x" * 200_000})
    request = head(
        server,
        "POST",
        "/api/join",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        async with asyncio.timeout(ANSWER_WITHIN):
            for _ in range(5):
                writer.write(request + body.encode())
                await writer.drain()
                top = await reader.readuntil(b"\r\n\r\n")
                assert top.startswith(b"HTTP/1.1 400 "), top  # the name is too long: a 400
                length = next(
                    int(line.split(b":")[1])
                    for line in top.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                answer = json.loads(await reader.readexactly(length))
                assert answer["code"] == "invalid_argument", answer
    finally:
        writer.close()


async def test_a_body_that_stops_is_answered_408_after_the_read_timeout(
    server: ServerProcess,
) -> None:
    start = head(
        server, "POST", "/api/join", "Content-Type: application/json", "Content-Length: 100"
    )
    status, body = status_and_body(await exchange(server, start + b'{"room_id": "sl'))
    assert status == 408 and body["code"] == "request_timeout"
    mcp = head(
        server,
        "POST",
        "/mcp",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        "Content-Length: 100",
    )
    status, body = status_and_body(await exchange(server, mcp + b'{"jsonrpc": "2.0"'))
    assert status == 408 and body["error"]["code"] == -32600  # type: ignore[index]
    await still_serving(server)


async def test_headers_that_stop_are_answered_408_and_a_silent_connection_is_closed(
    server: ServerProcess,
) -> None:
    partial = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Half: ab".encode()
    status, body = status_and_body(await exchange(server, partial))
    assert status == 408 and body["code"] == "request_timeout"
    assert await exchange(server, b"") == b""  # closed by the server, without a word
    await still_serving(server)
