"""The event loop the server runs on (MCP_CHAT_EVENT_LOOP)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop
from pydantic import ValidationError

from mcp_chat import loop
from mcp_chat.config import Settings


async def running() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_uvloop_runs_the_coroutine_on_a_uvloop_loop() -> None:
    assert isinstance(loop.run_on_loop(running(), "uvloop"), uvloop.Loop)
    assert loop.run_on_loop(_name(), "uvloop") == "uvloop"


def test_asyncio_runs_it_on_the_standard_librarys_loop() -> None:
    assert not isinstance(loop.run_on_loop(running(), "asyncio"), uvloop.Loop)
    assert loop.run_on_loop(_name(), "asyncio") == "asyncio"


def test_auto_picks_uvloop_where_it_is_installed() -> None:
    assert isinstance(loop.run_on_loop(running(), "auto"), uvloop.Loop)


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "uvloop_available", lambda: False)
    assert loop.run_on_loop(_name(), "auto") == "asyncio"


def test_asking_for_uvloop_without_it_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    with pytest.raises(RuntimeError, match="MCP_CHAT_EVENT_LOOP=asyncio"):
        loop.loop_factory("uvloop")


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_CHAT_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("MCP_CHAT_EVENT_LOOP", "tokio")
    with pytest.raises(ValidationError, match="event_loop"):
        Settings()


async def _name() -> str:
    return loop.running_loop_name()
