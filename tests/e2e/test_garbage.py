"""Requests leave no reference cycles of the SDK's behind: after a burst of clients, such
cycles wait in the garbage collector's oldest generation and keep memory up."""

from __future__ import annotations

import gc

import pytest
from mcp.server.runner import ServerRunner

from tests.e2e.test_fastcalls import joined, post, request, serving

pytestmark = pytest.mark.anyio


async def test_a_served_request_leaves_no_runner_in_a_reference_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(monkeypatch) as s:
        await joined(s.port, "r", "Ann")  # the first request's one-off objects
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable stays in gc.garbage
        try:
            me = await joined(s.port, "r", "Bob")
            said = {"room_id": "r", "client_id": me, "message": "hello"}
            assert (await post(request(s.port, said, tool="send_message"), s.port)).structured()[
                "success"
            ]
            gc.collect()
            runners = [o for o in gc.garbage if isinstance(o, ServerRunner)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert runners == []
