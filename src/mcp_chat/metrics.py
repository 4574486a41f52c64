"""Prometheus metrics: tool calls and their failures, as the MCP layer reports them, and what
the core and the store hold when scraped."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from mcp_chat.chat import ChatService
from mcp_chat.types import Counts

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Tool calls take milliseconds, except waits, which block up to 300 s.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Core(Collector):
    """Read at scrape time: messages sent, waits blocked and sessions open in this process, and
    the store's counts as of the scrape."""

    def __init__(self, chat: ChatService, sessions: Callable[[], int]) -> None:
        self.chat = chat
        self.sessions = sessions
        self.counts = Counts(0, 0)

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "mcp_chat_messages_sent",
            "Messages stored by this process (a retried message_key is not counted again).",
            value=self.chat.messages_sent,
        )
        yield GaugeMetricFamily(
            "mcp_chat_blocked_waits",
            "wait_for_message calls blocked in this process right now.",
            value=self.chat.signals.waiting,
        )
        yield GaugeMetricFamily(
            "mcp_chat_sessions",
            "Handshake-era (2025-11-25) MCP sessions open over HTTP in this process right now.",
            value=self.sessions(),
        )
        yield GaugeMetricFamily("mcp_chat_rooms", "Open rooms in the store.", self.counts.rooms)
        yield GaugeMetricFamily(
            "mcp_chat_participants",
            "Participants in open rooms in the store.",
            value=self.counts.participants,
        )


class Metrics:
    def __init__(self, chat: ChatService, sessions: Callable[[], int] = lambda: 0) -> None:
        """`sessions`: how many handshake-era HTTP sessions are open (none over stdio)."""
        self.registry = CollectorRegistry()
        # Python's garbage collections by generation, and what they freed (mcp/sessions.py
        # runs full ones as handshake-era sessions end).
        GCCollector(registry=self.registry)
        self._core = _Core(chat, sessions)
        self.registry.register(self._core)
        self.calls = Histogram(
            "mcp_chat_tool_call_seconds",
            "Tool call latency, by tool.",
            ["tool"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "mcp_chat_errors",
            "Failed tool calls, by error code.",
            ["code"],
            registry=self.registry,
        )
        self._chat = chat

    def observe_call(self, tool: str, seconds: float, result: Mapping[str, Any] | None) -> None:
        """One tool call and its structured result (None: it ended in a protocol error)."""
        if result is None:
            self.errors.labels("protocol_error").inc()
            return
        self.calls.labels(tool).observe(seconds)
        if result.get("success") is False:
            code = result.get("code")
            self.errors.labels(code if isinstance(code, str) else "unknown").inc()

    async def render(self) -> bytes:
        """The text exposition format, with the store's counts read now."""
        self._core.counts = await self._chat.store.counts()
        return generate_latest(self.registry)


class Timing:
    """One tool call being timed: `result` is its structured result, once it has one."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: Mapping[str, Any] | None = None


@contextlib.contextmanager
def timed(metrics: Metrics | None, tool: str) -> Iterator[Timing]:
    """Times one tool call, on whichever road it is served (the SDK's, through
    `mcp.server.ChatMiddleware`, or the short roads of `mcp.fastcalls` and `mcp.stdio`): it
    counts once it has a result, or as a protocol error if an exception ended it. A call
    that was cancelled, or whose client hung up before its answer, is not counted."""
    timing = Timing()
    started = time.perf_counter()
    failed = False
    try:
        yield timing
    except Exception:
        failed = True
        raise
    finally:
        if metrics is not None and (failed or timing.result is not None):
            metrics.observe_call(tool, time.perf_counter() - started, timing.result)
