"""SIGTERM: a blocked wait is told to call again, the process exits 0, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import re
import signal

import httpx2
import pytest
import redis.asyncio as aioredis
from mcp import Client

from tests.conftest import PrivateRedis
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join, texts

pytestmark = pytest.mark.anyio


async def blocked_waits(server: ServerProcess) -> int:
    async with httpx2.AsyncClient() as http:
        page = (await http.get(server.url.removesuffix("/mcp") + "/metrics")).text
    found = re.search(r"^mcp_chat_blocked_waits (\S+)$", page, re.MULTILINE)
    assert found, page
    return int(float(found.group(1)))


@pytest.mark.parametrize(
    ("sig", "mode"),
    [(signal.SIGTERM, "legacy"), (signal.SIGINT, "2026-07-28")],
    ids=["SIGTERM-legacy", "SIGINT-2026-07-28"],
)
async def test_a_stop_signal_releases_waits_and_loses_nothing(
    db_url: str, sig: signal.Signals, mode: str
) -> None:
    server = ServerProcess(db_url)
    try:
        async with Client(server.url, mode=mode) as a, Client(server.url, mode=mode) as b:
            alice = await join(a, "stopping", "Alice")
            bob = await join(b, "stopping", "Bob")
            for i in range(3):
                sent = await call(
                    a, "send_message", room_id="stopping", message=f"m{i}", client_id=alice
                )
                assert sent["success"]
            read = await call(b, "wait_for_message", room_id="stopping", client_id=bob, timeout=1)
            assert texts(read) == ["m0", "m1", "m2"]
            blocked = asyncio.create_task(
                call(b, "wait_for_message", room_id="stopping", client_id=bob, timeout=300)
            )
            # Across processes there is no event to await: watch the server's own gauge.
            while await blocked_waits(server) == 0:
                await asyncio.sleep(0.05)
            os.kill(server.proc.pid, sig)
            released = await blocked
            assert released["success"] is False
            assert released["code"] == "server_restarting"
            assert "call wait_for_message again" in released["error"]
        assert server.proc.wait(timeout=30) == 0
    finally:
        server.kill()
    assert "store closed" in server.log
    assert "Traceback" not in server.log

    again = ServerProcess(db_url)
    try:
        async with Client(again.url) as a, Client(again.url) as b:
            history = await call(b, "get_messages", room_id="stopping", client_id=bob)
            assert texts(history) == ["m0", "m1", "m2"]
            await call(a, "send_message", room_id="stopping", message="after", client_id=alice)
            rest = await call(b, "wait_for_message", room_id="stopping", client_id=bob, timeout=5)
            assert texts(rest) == ["after"]
    finally:
        again.stop()


async def test_a_send_in_flight_finishes_on_a_graceful_stop(private_redis: PrivateRedis) -> None:
    """A send the server is carrying out when SIGTERM comes is finished and answered, and
    kept. The test holds the send in flight by pausing Redis's writes (CLIENT PAUSE WRITE):
    the send's script is the one client Redis holds back, and Redis says so."""
    store = f"{private_redis.url}?prefix=stop"
    calm = {"MCP_CHAT_HEARTBEAT": "20"}  # no heartbeat write while the test runs
    server = ServerProcess(store, env=calm)
    admin = aioredis.Redis.from_url(private_redis.url)
    try:
        async with Client(server.url) as client:
            ann = await join(client, "r", "Ann")
            await admin.client_pause(60000, all=False)  # writes only
            try:
                sending = asyncio.create_task(
                    call(client, "send_message", room_id="r", client_id=ann, message="in flight")
                )
                async with asyncio.timeout(30):
                    while (await admin.info("clients"))["blocked_clients"] < 1:
                        await asyncio.sleep(0.01)
                server.proc.send_signal(signal.SIGTERM)
                # Stopping, it waits for the open request (uvicorn says so) before it ends.
                await asyncio.to_thread(server.wait_logged, "Waiting for connections to close")
            finally:
                await admin.client_unpause()
            sent = await sending
            assert sent["success"] and sent["seq"] == 2, sent
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
    finally:
        server.stop()
        await admin.aclose()
    again = ServerProcess(store, env=calm)
    try:
        async with Client(again.url) as client:
            kept = await call(client, "get_messages", room_id="r", client_id=ann)
            assert texts(kept) == ["in flight"]
    finally:
        again.stop()
