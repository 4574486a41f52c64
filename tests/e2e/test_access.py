"""Bearer tokens and the Host/Origin guard, against a real server with the official SDK client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_chat.app import build, http_app
from mcp_chat.config import Settings
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio

TOKEN = "tok-3f9a1c2be7d04d5a8c6e"
OTHER = "tok-from-the-token-file-0042"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# team tokens\n{OTHER}\n\n")
    return path


@pytest.fixture
def guarded(db_url: str, token_file: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, "--auth-token", TOKEN, "--auth-token-file", str(token_file))
    yield server
    server.stop()


@asynccontextmanager
async def client(url: str, headers: dict[str, str], statuses: list[int]) -> AsyncIterator[Client]:
    """The SDK client over an HTTP client that sends `headers` and notes every status."""

    async def note(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async with (
        httpx2.AsyncClient(headers=headers, event_hooks={"response": [note]}) as http,
        Client(streamable_http_client(url, http_client=http)) as session,
    ):
        yield session


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
        {"Authorization": TOKEN},
    ],
    ids=["missing", "wrong", "empty", "not-bearer"],
)
async def test_a_missing_or_wrong_token_is_refused(
    guarded: ServerProcess, headers: dict[str, str]
) -> None:
    statuses: list[int] = []
    with pytest.raises(BaseException):  # noqa: B017 - the SDK wraps the refusal in task groups
        async with client(guarded.url, headers, statuses) as session:
            await session.list_tools()
    assert statuses and set(statuses) == {401}


@pytest.mark.parametrize("token", [TOKEN, OTHER], ids=["flag", "file"])
async def test_a_right_token_opens_the_server(guarded: ServerProcess, token: str) -> None:
    statuses: list[int] = []
    async with client(guarded.url, {"Authorization": f"Bearer {token}"}, statuses) as session:
        alice = await join(session, "locked", "Alice")
        sent = await call(session, "send_message", room_id="locked", message="hi", client_id=alice)
        assert sent["success"]
    assert 401 not in statuses


async def test_health_is_open_and_metrics_need_the_token(guarded: ServerProcess) -> None:
    base = guarded.url.removesuffix("/mcp")
    async with httpx2.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200 and "mcp_chat_rooms" in right.text


async def test_tokens_never_reach_the_log(db_url: str, token_file: Path) -> None:
    server = ServerProcess(
        db_url, "--log-level", "debug", "--auth-token", TOKEN, "--auth-token-file", str(token_file)
    )
    try:
        async with client(server.url, {"Authorization": f"Bearer {TOKEN}"}, []) as session:
            await join(session, "r", "Alice")
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                server.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
                headers={
                    "Authorization": f"Bearer {OTHER}x",
                    "Accept": "application/json, text/event-stream",
                },
            )
        assert refused.status_code == 401
    finally:
        server.stop()
    assert "auth on" in server.log
    for secret in (TOKEN, OTHER, OTHER + "x"):
        assert secret not in server.log


async def test_requests_naming_another_host_or_origin_are_refused(
    http_server: ServerProcess,
) -> None:
    """DNS rebinding: a page on evil.example resolves its name to 127.0.0.1 and calls us."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient() as http:
        rebound = await http.post(http_server.url, json=body, headers={"Host": "evil.example"})
        assert rebound.status_code == 421
        cross = await http.post(
            http_server.url, json=body, headers={"Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
    # Our own clients, which name 127.0.0.1, are served.
    async with Client(http_server.url) as session:
        assert (await call(session, "list_rooms"))["success"]


async def test_the_page_loads_but_its_endpoints_need_the_token(guarded: ServerProcess) -> None:
    base = guarded.url.removesuffix("/mcp")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=base) as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/static/app.js")).status_code == 200
        refused = await http.get("/api/rooms")
        assert refused.status_code == 401
        # Not unknown_client: the page asks for a token on this one.
        assert refused.json()["code"] == "unauthorized"
        joining = await http.post("/api/join", json={"room_id": "web", "display_name": "Ada"})
        assert joining.status_code == 401
        joined = await http.post(
            "/api/join", json={"room_id": "web", "display_name": "Ada"}, headers=bearer
        )
        assert joined.status_code == 200
        listed = await http.get("/api/rooms", headers=bearer)
        assert [r["room_id"] for r in listed.json()["rooms"]] == ["web"]


async def host_status(server: ServerProcess, host: str) -> int:
    async with httpx2.AsyncClient() as http:
        answer = await http.get(f"{server.base}/healthz", headers={"Host": host})
    return answer.status_code


async def test_bound_to_every_address_a_request_over_loopback_is_still_checked(
    db_url: str,
) -> None:
    """A rebound name reaches a server bound to 0.0.0.0 through 127.0.0.1 too: there its Host
    is checked as on a loopback bind, with the --allowed-host names added. (The test sends
    nothing but to 127.0.0.1; what arrives on other addresses is the next test's.)"""
    server = ServerProcess(db_url, "--host", "0.0.0.0")
    try:
        assert await host_status(server, "evil.example") == 421
        assert await host_status(server, f"127.0.0.1:{server.port}") == 200
        assert await host_status(server, f"localhost:{server.port}") == 200
    finally:
        server.stop()
    named = ServerProcess(
        db_url,
        "--host",
        "0.0.0.0",
        "--allowed-host",
        "chat.example.com",
    )
    try:
        assert await host_status(named, "chat.example.com") == 200
        assert await host_status(named, "evil.example") == 421
        assert await host_status(named, f"127.0.0.1:{named.port}") == 200
    finally:
        named.stop()


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        ([], "chat.example.com", 200),  # no names given: any Host off loopback
        ([], "evil.example", 200),
        (["chat.example.com"], "chat.example.com", 200),
        (["chat.example.com"], "evil.example", 421),
        (["chat.example.com"], "10.1.2.3:8000", 200),  # the address it arrived on
    ],
)
async def test_on_another_address_any_host_unless_allowed_hosts_are_named(
    allowed: list[str], host: str, status: int
) -> None:
    """A request arriving on a non-loopback address of a server bound to 0.0.0.0, through
    the app in this process (so that no packet leaves 127.0.0.1): the ASGI scope's server is
    the address it arrived on."""
    settings = Settings(host="0.0.0.0", store="memory://", allowed_hosts=allowed)
    app = http_app(settings, build(settings))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://10.1.2.3:8000") as http:
        answer = await http.get("/healthz", headers={"Host": host})
    assert answer.status_code == status
