"""Tool-call metrics: `timed`, the one wrapper both roads (the SDK's and the short ones) time
their calls with."""

from __future__ import annotations

import asyncio

import pytest

from mcp_chat.chat import ChatService
from mcp_chat.metrics import Metrics, timed
from mcp_chat.stores.memory import MemoryStore


def counted(metrics: Metrics) -> dict[str, float]:
    """The samples that moved: calls by tool, errors by code."""
    found = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "mcp_chat_tool_call_seconds_count" and sample.value:
                found[f"call {sample.labels['tool']}"] = sample.value
            if sample.name == "mcp_chat_errors_total" and sample.value:
                found[f"error {sample.labels['code']}"] = sample.value
    return found


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(ChatService(MemoryStore()))


def test_a_result_is_counted_and_a_failure_by_its_code(metrics: Metrics) -> None:
    with timed(metrics, "send_message") as timing:
        timing.result = {"success": True}
    with timed(metrics, "send_message") as timing:
        timing.result = {"success": False, "code": "rate_limited"}
    assert counted(metrics) == {"call send_message": 2, "error rate_limited": 1}


def test_an_exception_is_a_protocol_error(metrics: Metrics) -> None:
    with pytest.raises(RuntimeError), timed(metrics, "join_room"):
        raise RuntimeError("boom")
    assert counted(metrics) == {"error protocol_error": 1}


def test_a_cancelled_call_or_one_never_answered_is_not_counted(metrics: Metrics) -> None:
    with pytest.raises(asyncio.CancelledError), timed(metrics, "wait_for_message"):
        raise asyncio.CancelledError
    with timed(metrics, "wait_for_message"):
        pass  # (the client hung up before its answer)
    assert counted(metrics) == {}
