"""The Redis store's Lua scripts (stores/redis/lua.py): each is the one written restatement
of pure functions, and its module's header says which; what they do is checked against those
functions on a real Redis by tests/test_stores_walk.py."""

from __future__ import annotations

import importlib
import re

from mcp_chat.stores.redis import lua

SCRIPTS = {name for name, value in vars(lua).items() if name.isupper() and isinstance(value, str)}


def test_the_header_maps_every_script_to_functions_that_exist() -> None:
    header = lua.__doc__ or ""
    rows = dict(re.findall(r"^  ([A-Z_]+) +(.+(?:\n {16}.+)*)", header, re.M))
    assert set(rows) == SCRIPTS == {"COUNT_UNREAD", "APPEND", "CLAIM", "UNREAD", "TOUCH", "DEQUEUE"}
    for script, text in rows.items():
        named = re.findall(r"\b(reading|presence|matching)\.([a-z_]+)\b", text)
        assert named, script
        for module, function in named:
            assert callable(getattr(importlib.import_module(f"mcp_chat.{module}"), function))


def test_scripts_that_count_unread_share_one_counting_function() -> None:
    assert lua.APPEND.startswith(lua.COUNT_UNREAD) and lua.UNREAD.startswith(lua.COUNT_UNREAD)
