"""A primary of the Redis Cluster dies (kill -9) under two server instances: its replica takes
over, calls on its rooms answer store_unavailable meanwhile and then carry on by themselves,
blocked waits wake, and with `min_replicas=1` nothing acknowledged is lost or delivered twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import pytest
from mcp import Client

from tests.cluster_support import LocalCluster, local_cluster
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join, texts

pytestmark = pytest.mark.anyio

ROOMS = [f"fo-{i}" for i in range(12)]
CARRY_ON = 15.0
"""Seconds every room is given to carry on after the kill (a wait for a condition)."""


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    yield from local_cluster()  # its own: one of its primaries is killed


async def retried(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """Call until the answer is not store_unavailable (the same call again, as a client
    told to retry would); the answer."""
    while True:
        answer = await call(client, tool, **args)
        if answer.get("code") != "store_unavailable":
            assert answer["success"], answer
            return answer
        await asyncio.sleep(0.1)  # a client's pause before retrying, not a synchronisation


async def test_a_killed_primary_loses_nothing_acknowledged_and_rooms_carry_on(
    cluster: LocalCluster,
) -> None:
    url = cluster.url(min_replicas="1")
    with ExitStack() as servers:
        a = ServerProcess(url)
        servers.callback(a.stop)
        b = ServerProcess(url)
        servers.callback(b.stop)
        async with AsyncExitStack() as clients:
            alice_on_a = await clients.enter_async_context(Client(a.url))
            bob_on_b = await clients.enter_async_context(Client(b.url))
            alices = {r: await join(alice_on_a, r, "Alice") for r in ROOMS}
            bobs = {r: await join(bob_on_b, r, "Bob") for r in ROOMS}

            async def send(r: str, text: str) -> None:
                await retried(
                    alice_on_a,
                    "send_message",
                    room_id=r,
                    message=text,
                    client_id=alices[r],
                    message_key=text,
                )

            async def read(r: str) -> list[str]:
                got = await retried(
                    bob_on_b, "wait_for_message", room_id=r, client_id=bobs[r], timeout=60
                )
                return texts(got)

            for r in ROOMS:  # acknowledged (with a replica each) and read before the kill
                for i in range(3):
                    await send(r, f"{r} before {i}")
                assert await read(r) == [f"{r} before {i}" for i in range(3)]
            # Bob is blocked in every room when the primary dies.
            waits = {r: asyncio.create_task(read(r)) for r in ROOMS}
            victim = cluster.owner(ROOMS[0])
            assert any(cluster.owner(r) != victim for r in ROOMS)  # some rooms stay put
            cluster.kill(victim)

            async def carry_on(r: str) -> list[str]:
                heard: list[str] = []
                for i in range(3):
                    await send(r, f"{r} after {i}")
                wanted = [f"{r} after {i}" for i in range(3)]
                heard += await waits[r]  # woke by itself, whatever happened to its node
                while len(heard) < len(wanted):
                    heard += await read(r)
                return heard

            async def replace_the_dead() -> None:
                """An operator's part: once its replica has taken over, the dead node is
                started again and rejoins as that one's replica. Until then its shard has no
                replica, and min_replicas=1 holds its rooms' writes (store_unavailable)."""
                await asyncio.to_thread(cluster.wait_promoted)
                await asyncio.to_thread(cluster.restart, victim)

            async with asyncio.timeout(CARRY_ON):
                *heard, _ = await asyncio.gather(*(carry_on(r) for r in ROOMS), replace_the_dead())
            for r, got in zip(ROOMS, heard, strict=True):
                # In order, once each, and none of what Bob had read before comes again.
                assert got == [f"{r} after {i}" for i in range(3)], (r, got)
            # Everything acknowledged is in the log, once, in order.
            for r in ROOMS:
                history = await retried(
                    bob_on_b, "get_messages", room_id=r, client_id=bobs[r], limit=50
                )
                said = texts(history)
                assert said == [f"{r} before {i}" for i in range(3)] + [
                    f"{r} after {i}" for i in range(3)
                ], (r, said)
