"""Two real server processes on one Redis (and on a Redis Cluster), as behind a load balancer, with the official SDK
client over HTTP: one chat wherever the calls land, for both protocol families."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.cluster_support import LocalCluster
from tests.conftest import prefixed_redis_url
from tests.e2e.conftest import MODES, ServerProcess
from tests.e2e.helpers import blocked_waits, call, join, texts, until_blocked

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def shared_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """One Redis, or the session's Redis Cluster: each with a key prefix of its own."""
    if request.param == "redis":
        yield from prefixed_redis_url()
        return
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    prefix = f"test-{secrets.token_hex(6)}"
    yield cluster.url(prefix)
    cluster.delete_prefix(prefix)


@pytest.fixture(scope="module")
def instances(shared_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two instances on one Redis (or cluster) for the whole module (each test uses its own
    rooms)."""
    with ExitStack() as stack:  # each is stopped, whatever happens to the other or a test
        a = ServerProcess(shared_url)
        stack.callback(a.stop)
        b = ServerProcess(shared_url)
        stack.callback(b.stop)
        yield a, b
    for server in (a, b):
        assert "Traceback" not in server.log, server.log


def room() -> str:
    return f"r-{secrets.token_hex(4)}"


class Router(httpx2.AsyncBaseTransport):
    """A load balancer in the client: each request goes to the instance `pick()` names."""

    def __init__(self, ports: list[int], alternate: bool) -> None:
        self.ports, self.alternate = ports, alternate
        self.target = 0
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(port=self.ports[self.target])
        if self.alternate:
            self.target = (self.target + 1) % len(self.ports)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def routed(
    servers: tuple[ServerProcess, ServerProcess], mode: str, alternate: bool
) -> AsyncIterator[tuple[Client, Router]]:
    ports = [int(s.url.rsplit(":", 1)[1].split("/")[0]) for s in servers]
    router = Router(ports, alternate)
    http = httpx2.AsyncClient(transport=router, timeout=httpx2.Timeout(30.0, read=120.0))
    async with (
        http,
        Client(streamable_http_client(servers[0].url, http_client=http), mode=mode) as c,
    ):
        yield c, router


@pytest.mark.parametrize("mode", MODES)
async def test_a_person_alternating_instances_chats_with_no_loss_and_no_duplicates(
    instances: tuple[ServerProcess, ServerProcess], mode: str
) -> None:
    """Each person has a connection to each instance and alternates call by call (a legacy
    session is tied to its instance, so one per instance; see the sticky test below)."""
    a, b = instances
    r = room()
    async with (
        Client(a.url, mode=mode) as alice_a,
        Client(b.url, mode=mode) as alice_b,
        Client(a.url, mode=mode) as bob_a,
        Client(b.url, mode=mode) as bob_b,
    ):
        alice = await join(alice_a, r, "Alice")
        bob = await join(bob_b, r, "Bob")
        sent = [f"m{i}" for i in range(20)]
        for i, body in enumerate(sent):
            via = (alice_a, alice_b)[i % 2]
            result = await call(via, "send_message", room_id=r, message=body, client_id=alice)
            assert result["success"], result
        received: list[str] = []
        seqs: list[int] = []
        turn = 0
        while len(received) < len(sent):
            via = (bob_a, bob_b)[turn % 2]
            turn += 1
            got = await call(via, "wait_for_message", room_id=r, client_id=bob, timeout=5)
            assert got["success"] and not got["timed_out"], got
            received += texts(got)
            seqs += [m["seq"] for m in got["messages"]]
        assert received == sent
        assert seqs == sorted(set(seqs))
        again = await call(
            alice_b, "send_message", room_id=r, message="m0", client_id=alice, message_key="k"
        )
        retry = await call(
            alice_a, "send_message", room_id=r, message="m0", client_id=alice, message_key="k"
        )
        assert retry["duplicate"] and retry["seq"] == again["seq"]


async def test_one_sessionless_client_alternating_request_by_request(
    instances: tuple[ServerProcess, ServerProcess],
) -> None:
    """The 2026-07-28 protocol has no session: a client whose every request lands on the other
    instance than the last one (a round-robin balancer) just works."""
    r = room()
    async with (
        routed(instances, "2026-07-28", alternate=True) as (alice, _),
        routed(instances, "2026-07-28", alternate=True) as (bob, _),
    ):
        alice_id = await join(alice, r, "Alice")
        bob_id = await join(bob, r, "Bob")
        for i in range(6):
            await call(alice, "send_message", room_id=r, message=f"m{i}", client_id=alice_id)
        received: list[str] = []
        while len(received) < 6:
            got = await call(bob, "wait_for_message", room_id=r, client_id=bob_id, timeout=5)
            assert got["success"] and not got["timed_out"], got
            received += texts(got)
        assert received == [f"m{i}" for i in range(6)]


async def test_a_legacy_session_on_the_other_instance_is_a_clear_error_not_a_loss(
    instances: tuple[ServerProcess, ServerProcess],
) -> None:
    """2025-11-25 sessions live in one process: a request whose Mcp-Session-Id lands on another
    instance is refused ('Session not found', HTTP 404), so a balancer must be sticky."""
    a, _ = instances
    r = room()
    async with routed(instances, "legacy", alternate=False) as (alice, router):
        alice_id = await join(alice, r, "Alice")
        router.target = 1  # the balancer forgets which instance holds the session
        with pytest.raises(MCPError, match="Session not found"):
            await alice.call_tool(
                "send_message", {"room_id": r, "message": "lost?", "client_id": alice_id}
            )
        router.target = 0
        sent = await call(alice, "send_message", room_id=r, message="kept", client_id=alice_id)
        assert sent["success"]
    async with Client(a.url) as reader:
        bob = await join(reader, r, "Bob")
        got = await call(reader, "wait_for_message", room_id=r, client_id=bob, timeout=5)
        assert texts(got) == ["kept"]  # the refused send stored nothing


@pytest.mark.parametrize("mode", MODES)
async def test_a_wait_on_one_instance_wakes_on_a_send_through_the_other(
    instances: tuple[ServerProcess, ServerProcess], mode: str
) -> None:
    a, b = instances
    r = room()
    async with Client(a.url, mode=mode) as on_a, Client(b.url, mode=mode) as on_b:
        alice = await join(on_a, r, "Alice")
        bob = await join(on_b, r, "Bob")
        await call(on_a, "wait_for_message", room_id=r, client_id=alice, timeout=5)  # 'joined'
        for i in range(3):
            before = await blocked_waits(a.base)
            waiting = asyncio.create_task(
                call(on_a, "wait_for_message", room_id=r, client_id=alice, timeout=120)
            )
            await until_blocked(a.base, before + 1)
            await call(on_b, "send_message", room_id=r, message=f"ping {i}", client_id=bob)
            got = await waiting
            assert texts(got) == [f"ping {i}"] and not got["timed_out"]


async def test_two_joining_a_room_of_two_at_once_on_different_instances_never_make_three(
    instances: tuple[ServerProcess, ServerProcess],
) -> None:
    servers = instances * 4
    for _ in range(3):
        r = room()
        async with clients_on(servers) as clients:
            outcomes = await asyncio.gather(
                *(
                    call(c, "join_room", room_id=r, display_name=f"P{i}")
                    for i, c in enumerate(clients)
                )
            )
            assert sum(o["success"] for o in outcomes) == 2
            assert {o["code"] for o in outcomes if not o["success"]} == {"room_full"}
            some_id = next(o["client_id"] for o in outcomes if o["success"])
            who = await call(clients[1], "list_participants", room_id=r, client_id=some_id)
            assert len(who["members"]) == 2


@asynccontextmanager
async def clients_on(servers: tuple[ServerProcess, ...]) -> AsyncIterator[list[Client]]:
    """One connected client per server given, all open at once."""
    clients = [Client(s.url) for s in servers]
    entered: list[Client] = []
    try:
        for c in clients:
            entered.append(await c.__aenter__())
        yield entered
    finally:
        for c in reversed(entered):
            await c.__aexit__(None, None, None)


async def test_queue_entries_on_different_instances_pair_exactly_once(
    instances: tuple[ServerProcess, ServerProcess],
) -> None:
    async def person(i: int) -> dict[str, Any]:
        enter_on, wait_on = instances[i % 2], instances[(i + 1) % 2]
        async with Client(enter_on.url) as c:
            entered = await call(c, "enter_queue", display_name=f"P{i}")
            assert entered["success"], entered
        if entered["status"] == "matched":
            return entered
        # The waiting one learns of its match on the other instance.
        async with Client(wait_on.url) as c:
            while True:
                got = await call(c, "wait_for_match", client_id=entered["client_id"], timeout=30)
                assert got["success"], got
                if got["status"] == "matched":
                    return got

    results = await asyncio.gather(*(person(i) for i in range(12)))
    rooms: dict[str, set[str]] = {}
    for r in results:
        rooms.setdefault(r["room_id"], set()).add(r["participant_id"])
    assert len(rooms) == 6 and all(len(members) == 2 for members in rooms.values())
    assert len({r["participant_id"] for r in results}) == 12


async def test_clients_of_a_killed_instance_carry_on_through_the_other() -> None:
    for url in prefixed_redis_url():
        a, b = ServerProcess(url), ServerProcess(url)
        try:
            r = room()
            async with Client(a.url) as alice_on_a, Client(a.url) as bob_on_a:
                alice = await join(alice_on_a, r, "Alice")
                bob = await join(bob_on_a, r, "Bob")
                for i in range(3):
                    await call(
                        alice_on_a, "send_message", room_id=r, message=f"m{i}", client_id=alice
                    )
                read = await call(bob_on_a, "wait_for_message", room_id=r, client_id=bob, timeout=5)
                assert texts(read) == ["m0", "m1", "m2"]
                await call(alice_on_a, "send_message", room_id=r, message="unread", client_id=alice)
                a.kill()
            async with Client(b.url) as alice_on_b, Client(b.url) as bob_on_b:
                # Same client ids and read positions: only what Bob had not read yet comes.
                rest = await call(bob_on_b, "wait_for_message", room_id=r, client_id=bob, timeout=5)
                assert texts(rest) == ["unread"]
                more = await call(
                    alice_on_b, "send_message", room_id=r, message="via b", client_id=alice
                )
                assert more["success"] and more["seq"] == 7
                last = await call(bob_on_b, "wait_for_message", room_id=r, client_id=bob, timeout=5)
                assert texts(last) == ["via b"]
        finally:
            a.kill()
            b.stop()
