"""Logs never hold a whole client_id, and at the default level no message text."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, types
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from tests.e2e.conftest import MODES, ServerProcess, stdio_params
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


async def test_the_store_password_never_appears_in_logs(redis_url: str) -> None:
    """This Redis has no users: it ignores a bare password, and refuses a user with one."""
    ignored = ServerProcess(redis_url.replace("redis://", "redis://:sekrit-store-pw@"))
    refused = ServerProcess(redis_url.replace("redis://", "redis://app:sekrit-store-pw@"))
    try:
        async with Client(ignored.url) as a, Client(refused.url) as b:
            await join(a, "logged", "Alice")
            failed = await call(b, "join_room", room_id="logged", display_name="Bob")
            assert failed["code"] == "store_unavailable"
            assert "credentials" in failed["error"]
    finally:
        ignored.stop()
        refused.stop()
    assert "redis://:***@127.0.0.1:6379/0" in ignored.log
    assert "redis://app:***@127.0.0.1:6379/0" in refused.log
    for server in (ignored, refused):
        assert "sekrit-store-pw" not in server.log


MARKER = "the owl flies at dawn"


def call_with_list_arguments(arguments: list[Any]) -> types.Request[dict[str, Any], str]:
    """A tools/call whose `arguments` is a JSON list, not an object. The SDK's typed request
    refuses to hold one, so it goes as a generic request, through the same session and
    transport (and on 2026-07-28 with the same envelope and headers) as any call."""
    return types.Request[dict[str, Any], str](
        method="tools/call", params={"name": "send_message", "arguments": arguments}
    )


@dataclass
class Stderr:
    text: str = ""
    """All the server wrote to stderr, once it has stopped."""


@asynccontextmanager
async def logged_client(
    transport: str, mode: str, db_url: str, tmp_path: Path, stderr: Stderr, *flags: str
) -> AsyncIterator[Client]:
    """A client of a server started with `flags`, over `transport`; once both have ended,
    `stderr` holds what the server logged."""
    if transport == "http":
        server = ServerProcess(db_url, *flags)
        try:
            async with Client(server.url, mode=mode) as client:
                yield client
        finally:
            server.stop()
        stderr.text = server.log
    else:
        path = tmp_path / "stderr.log"
        with path.open("w") as errlog:
            async with Client(
                stdio_client(stdio_params(db_url, *flags), errlog=errlog), mode=mode
            ) as client:
                yield client
        stderr.text = path.read_text()  # the client waited for the server process to end


def levels(log: str, log_format: str) -> list[str]:
    """The level of each record in `log` (a traceback's lines are not records)."""
    if log_format == "json":
        return [json.loads(line)["level"].upper() for line in log.splitlines() if line]
    return [m.group(1) for m in re.finditer(r"^\S+ \S+ ([A-Z]+) ", log, re.MULTILINE)]


@pytest.mark.parametrize(
    ("transport", "mode", "log_format"),
    [
        ("http", "legacy", "plain"),
        ("http", "legacy", "json"),
        ("http", "2026-07-28", "plain"),
        ("http", "2026-07-28", "json"),
        ("stdio", "legacy", "plain"),
        ("stdio", "2026-07-28", "json"),
    ],
)
async def test_a_list_of_arguments_is_invalid_params_and_logs_no_values(
    db_url: str, tmp_path: Path, transport: str, mode: str, log_format: str
) -> None:
    """Both families answer -32602 from the SDK's own check of the request's params, which
    runs before any tool (so there is no tool result to give), on both transports and on the
    2026-07-28 short road too (mcp/fastcalls.py hands such a call to the SDK)."""
    flags = ("--log-format", log_format, "--log-level", "debug")
    stderr = Stderr()
    async with logged_client(transport, mode, db_url, tmp_path, stderr, *flags) as client:
        client_id = await join(client, "listed", "Alice")
        for arguments in ([client_id], [MARKER], ["listed", MARKER, client_id]):
            with pytest.raises(MCPError) as refused:
                await client.session.send_request(
                    call_with_list_arguments(arguments), types.CallToolResult
                )
            assert refused.value.error.code == INVALID_PARAMS
            assert "'params.arguments' must be a JSON object" in refused.value.error.message
            assert client_id not in refused.value.error.message
            assert MARKER not in refused.value.error.message
        # Still serving, and still the same participant.
        sent = await call(
            client, "send_message", room_id="listed", message="ok", client_id=client_id
        )
        assert sent["success"]
    text = stderr.text
    assert "joined room=listed" in text  # the log is really being captured
    assert client_id not in text and client_id[6:] not in text
    assert MARKER not in text
    assert text.count("tools/call refused: invalid params at params.arguments") == 3
    assert "Traceback" not in text
    assert not {"WARNING", "ERROR", "CRITICAL"} & set(levels(text, log_format))


@pytest.mark.parametrize("mode", MODES)
async def test_a_wrong_key_read_is_invalid_params_in_one_debug_line(db_url: str, mode: str) -> None:
    server = ServerProcess(db_url, "--log-level", "debug")
    try:
        async with Client(server.url, mode=mode) as client:
            joined = await call(client, "join_room", room_id="keyed", display_name="Alice")
            other = await call(client, "join_room", room_id="other", display_name="Eve")
            own_key = other["transcript_uri"].split("/")[4]
            refusals = [
                f"chat://rooms/keyed/{own_key}/messages",
                "chat://rooms/keyed/mcr_guess/members",
                f"chat://rooms/nowhere/{own_key}/messages",
            ]
            for uri in refusals:
                with pytest.raises(MCPError) as refused:
                    await client.read_resource(uri)
                assert refused.value.error.code == INVALID_PARAMS
                assert "does not open room" in refused.value.error.message
            # The key's holder still reads its room.
            await client.read_resource(joined["transcript_uri"])
    finally:
        server.stop()
    # One line of ours a refusal, at debug; nothing from anyone at warning or above. (The
    # others' debug lines are their trace of every request, refused or not.)
    ours = [line for line in server.lines if "resources/read refused" in line]
    assert len(ours) == len(refusals) and all(" DEBUG mcp_chat." in line for line in ours)
    assert not {"WARNING", "ERROR", "CRITICAL"} & set(levels(server.log, "plain"))
    assert "Traceback" not in server.log
