"""Storage backends, a module or a package each; `open_store` picks one by URL scheme and
imports only it."""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp_chat.credentials import redact_url
from mcp_chat.errors import StartupError
from mcp_chat.stores.base import Store


def open_store(url: str) -> Store:
    """A store for `memory://`, `sqlite:///path/to/file.db`, `redis://host:port/db` or
    `redis+cluster://host:port[,host:port...]`."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from mcp_chat.stores.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from mcp_chat.stores.sqlite import SQLiteStore, path_from_url

        return SQLiteStore(path_from_url(url))
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from mcp_chat.stores.redis import RedisStore

        return RedisStore(url)
    raise StartupError(
        f"unknown store URL scheme {scheme!r} in {redact_url(url)!r}: use "
        "sqlite:///path/to/file.db, redis://host:port/db, "
        "redis+cluster://host:port[,host:port...] or memory://."
    )


__all__ = ["Store", "open_store"]
