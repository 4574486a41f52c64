"""Health, readiness and Prometheus metrics of a real server."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import call, join

pytestmark = pytest.mark.anyio


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
    }


async def test_health_readiness_and_metrics(http_server: ServerProcess) -> None:
    base = http_server.url.removesuffix("/mcp")
    async with Client(http_server.url) as a, Client(http_server.url) as b:
        alice = await join(a, "metered", "Alice")
        bob = await join(b, "metered", "Bob")
        for i in range(3):
            await call(a, "send_message", room_id="metered", message=f"m{i}", client_id=alice)
        await call(a, "send_message", room_id="metered", message="x", client_id=bob + "forged")
        await call(b, "wait_for_message", room_id="metered", client_id=bob, timeout=1)
        await join(a, "second", "Carol")

    async with httpx2.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        page = await http.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    got = samples(page.text)
    assert got[("mcp_chat_messages_sent_total", ())] == 3
    assert got[("mcp_chat_rooms", ())] == 2
    assert got[("mcp_chat_participants", ())] == 3
    assert got[("mcp_chat_blocked_waits", ())] == 0
    assert got[("mcp_chat_errors_total", (("code", "unknown_client"),))] == 1
    assert got[("mcp_chat_tool_call_seconds_count", (("tool", "send_message"),))] == 4
    assert got[("mcp_chat_tool_call_seconds_count", (("tool", "join_room"),))] == 3
    assert got[("mcp_chat_tool_call_seconds_count", (("tool", "wait_for_message"),))] == 1
