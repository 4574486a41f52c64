"""Which asyncio event loop the server runs on, and running a coroutine on it."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Choice = Literal["auto", "asyncio", "uvloop"]


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(choice: Choice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for `choice`; None means the standard library's loop."""
    if choice == "asyncio" or (choice == "auto" and not uvloop_available()):
        return None
    try:
        import uvloop
    except ImportError as exc:
        raise RuntimeError(
            "MCP_CHAT_EVENT_LOOP=uvloop, but uvloop is not installed: pip install uvloop, "
            "or set MCP_CHAT_EVENT_LOOP=asyncio"
        ) from exc
    return uvloop.new_event_loop


def run_on_loop(main: Coroutine[Any, Any, T], choice: Choice) -> T:
    """asyncio.run on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """ "uvloop" or "asyncio": what the running loop is."""
    return (
        "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    )
