"""The embedded default store: one SQLite file, durable, shareable by processes on one machine.

engine.py      the connections, the group commit, the worker thread, the file's watch
schema.py      the tables, the migrations from older schemas, the store URL
records.py     rows as records
rows.py        reads and writes the operations share
rooms.py, messages.py, retention.py, queue.py, presence.py
               the operations, by the sections of `stores.base.Store`
wakeups.py     the datagrams by which processes on one file wake each other
"""

from __future__ import annotations

from mcp_chat.stores.sqlite.engine import DatabaseFileGone
from mcp_chat.stores.sqlite.messages import MessageOps
from mcp_chat.stores.sqlite.presence import PresenceOps
from mcp_chat.stores.sqlite.queue import QueueOps
from mcp_chat.stores.sqlite.retention import RetentionOps
from mcp_chat.stores.sqlite.rooms import RoomOps
from mcp_chat.stores.sqlite.schema import SCHEMA_VERSION, path_from_url


class SQLiteStore(RoomOps, MessageOps, RetentionOps, QueueOps, PresenceOps):
    """The store on one SQLite file (see `engine` for how operations run)."""


__all__ = ["SCHEMA_VERSION", "DatabaseFileGone", "SQLiteStore", "path_from_url"]
