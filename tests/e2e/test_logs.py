"""Logs never hold a whole client_id, and at the default level no message text."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio

SECRET_TEXT = "the eagle lands at midnight"


async def converse(server: ServerProcess) -> list[str]:
    async with Client(server.url) as a, Client(server.url) as b:
        alice = await join(a, "logged", "Alice")
        bob = await join(b, "logged", "Bob")
        await call(a, "send_message", room_id="logged", message=SECRET_TEXT, client_id=alice)
        await call(b, "wait_for_message", room_id="logged", client_id=bob, timeout=1)
        # Failures that involve the id: wrong room, forged id, wrong type.
        await call(b, "send_message", room_id="elsewhere", message="x", client_id=bob)
        await call(b, "send_message", room_id="logged", message="x", client_id=bob + "Z")
        await call(b, "send_message", room_id="logged", message=[bob], client_id=bob)
        await call(b, "leave_chat", room_id="logged", client_id=bob)
    return [alice, bob]


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_client_ids_never_appear_whole_in_logs(db_url: str, level: str) -> None:
    server = ServerProcess(db_url, "--log-level", level)
    try:
        secrets = await converse(server)
    finally:
        server.stop()
    log = server.log
    assert "joined room=logged" in log  # the log is really being captured
    for secret in secrets:
        assert secret not in log
        assert secret[6:] not in log  # nor its random part
    if level == "info":
        assert SECRET_TEXT not in log


async def test_json_logs_are_one_object_a_line_and_keep_secrets_out(db_url: str) -> None:
    server = ServerProcess(db_url, "--log-format", "json")
    try:
        secrets = await converse(server)
    finally:
        server.stop()
    entries = [json.loads(line) for line in server.lines if line.strip()]
    assert entries and all(
        {"time", "level", "logger", "message"} <= entry.keys() for entry in entries
    )
    assert any(e["message"].startswith("joined room=logged") for e in entries)
    assert all(e["time"].endswith("Z") for e in entries)
    for secret in secrets:
        assert secret not in server.log
        assert secret[6:] not in server.log
    assert SECRET_TEXT not in server.log
