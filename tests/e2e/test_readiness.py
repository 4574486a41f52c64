"""What a real server says when its SQLite store can no longer keep what it is given: calls
answer store_unavailable, /readyz says 503, and the log says why once."""

from __future__ import annotations

import resource
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from mcp_chat.app import build, http_app
from mcp_chat.config import Settings
from tests.conftest import PrivateRedis, free_port
from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio


def warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line]


async def test_deleting_the_database_file_fails_sends_and_readiness(tmp_path: Path) -> None:
    """A send acknowledged after the file was deleted would be gone at the next start: it is
    refused instead, and the server says it is not ready."""
    db = tmp_path / "chat.db"
    server = ServerProcess(f"sqlite:///{db}")
    try:
        async with Client(server.url) as a, httpx2.AsyncClient(base_url=server.base) as http:
            alice = await join(a, "r", "Alice")
            kept = await call(a, "send_message", room_id="r", message="kept", client_id=alice)
            assert kept["success"], kept
            assert (await http.get("/readyz")).status_code == 200

            db.unlink()
            lost = await call(a, "send_message", room_id="r", message="lost?", client_id=alice)
            assert lost["success"] is False and lost["code"] == "store_unavailable", lost
            for _ in range(3):
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}
    finally:
        server.stop()
    said = warnings(server.log)
    assert len(said) == 1 and "deleted" in said[0] and str(db) in said[0], server.log
    assert "Traceback" not in server.log


async def test_readiness_says_503_while_writes_fail(tmp_path: Path) -> None:
    """The server's file-size limit is set to 0 from outside (prlimit): the kernel refuses
    every write to the database's files (EFBIG), as on a full disk or an exceeded quota, while
    reads go on. /readyz says 503 until writes go through again."""
    server = ServerProcess(f"sqlite:///{tmp_path / 'chat.db'}")
    pid = server.proc.pid
    try:
        async with Client(server.url) as a, httpx2.AsyncClient(base_url=server.base) as http:
            alice = await join(a, "r", "Alice")
            assert (await http.get("/readyz")).status_code == 200

            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
            try:
                refused = await call(
                    a, "send_message", room_id="r", message="no room", client_id=alice
                )
                assert refused["code"] == "store_unavailable", refused
                rooms = await call(a, "list_rooms")
                assert rooms["success"], rooms  # reads still work: a read says nothing
                for _ in range(3):
                    assert (await http.get("/readyz")).status_code == 503
            finally:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))

            assert (await http.get("/readyz")).status_code == 200
            sent = await call(a, "send_message", room_id="r", message="room", client_id=alice)
            assert sent["success"], sent
    finally:
        server.stop()
    said = warnings(server.log)
    assert len(said) == 1 and "SQLite calls failing" in said[0], server.log
    assert server.log.count("SQLite calls succeed again") == 1
    assert "Traceback" not in server.log


async def test_readiness_through_a_redis_outage_logs_no_traceback(
    private_redis: PrivateRedis,
) -> None:
    """A load balancer asks every few seconds through a whole outage: each answer is 503, and
    the log holds the store's one line for the outage, not a traceback per check. Calls
    answer store_unavailable meanwhile, and work again once Redis is back, with no restart."""
    server = ServerProcess(f"{private_redis.url}?prefix=ready")
    try:
        async with httpx2.AsyncClient(base_url=server.base) as http, Client(server.url) as a:
            assert (await http.get("/readyz")).status_code == 200
            ann = await join(a, "r", "Ann")
            private_redis.stop()
            for _ in range(5):
                assert (await http.get("/readyz")).status_code == 503
            for tool, args in (
                ("send_message", {"room_id": "r", "client_id": ann, "message": "lost?"}),
                ("join_room", {"room_id": "s", "display_name": "Bob"}),
                ("list_rooms", {}),
            ):
                failed = await call(a, tool, **args)
                assert failed["success"] is False, (tool, failed)
                assert failed["code"] == "store_unavailable", (tool, failed)
            private_redis.start()  # (empty: it keeps nothing)
            assert (await http.get("/readyz")).status_code == 200
            back = await call(a, "join_room", room_id="s", display_name="Bob")
            assert back["success"] and back["created"], back
    finally:
        server.stop()
    assert "Traceback" not in server.log
    said = warnings(server.log)
    calls = [w for w in said if "Redis calls failing" in w]
    notices = [w for w in said if "Redis change notices lost" in w]
    # The calls' warning, and the change subscription's if it noticed before the end.
    assert len(calls) == 1 and len(notices) <= 1 and len(said) == len(calls + notices), said
    assert server.log.count("Redis calls succeed again") == 1


async def test_readiness_says_503_on_a_redis_that_refuses_writes() -> None:
    """A replica (say, a URL left on the old primary after a failover) answers reads and
    refuses every write: the server is not ready."""
    replica = PrivateRedis("--replicaof", "127.0.0.1", str(free_port()))
    try:
        server = ServerProcess(f"{replica.url}?prefix=ready")
        try:
            async with Client(server.url) as a, httpx2.AsyncClient(base_url=server.base) as http:
                assert (await call(a, "list_rooms"))["success"]  # reads are answered
                joined = await call(a, "join_room", room_id="r", display_name="Ann")
                assert joined["code"] == "store_unavailable", joined
                assert (await http.get("/readyz")).status_code == 503
        finally:
            server.stop()
    finally:
        replica.close()


async def test_readiness_says_503_once_the_server_is_stopping() -> None:
    """Between SIGTERM and the end, a load balancer that still reaches the server must take
    it out of the pool. A real server closes its socket within a tenth of a second of the
    signal, too soon to ask it without racing; so the app is asked in this process, before
    and after what the signal handler does first (`stop_waits`)."""
    settings = Settings(store="memory://")
    parts = build(settings)
    app = http_app(settings, parts)
    await parts.chat.start()
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            assert (await http.get("/readyz")).status_code == 200
            parts.chat.stop_waits()
            stopping = await http.get("/readyz")
            assert stopping.status_code == 503 and stopping.json() == {"status": "unavailable"}
            assert (await http.get("/healthz")).status_code == 200  # alive all the same
    finally:
        await parts.chat.close()
