"""The SQLite store's retention: old messages and idle rooms removed."""

from __future__ import annotations

from mcp_chat.stores.sqlite.engine import write_tx
from mcp_chat.stores.sqlite.rows import Rows
from mcp_chat.stores.sqlite.schema import SETTLED
from mcp_chat.types import Pruned


class RetentionOps(Rows):
    """Retention (`Store.prune`)."""

    async def prune(self, messages_before: str | None, idle_before: str | None) -> Pruned:
        def run() -> Pruned:
            removed_messages = removed_rooms = 0
            if messages_before is not None:
                # Only a database that uses retention pays for this index on every append.
                self.db.execute(
                    "CREATE INDEX IF NOT EXISTS messages_by_time ON messages (created_at)"
                )
            with write_tx(self.db):
                if messages_before is not None:
                    removed = self.db.execute(
                        "DELETE FROM messages WHERE created_at < ? AND seq <"
                        " (SELECT r.last_seq FROM rooms r WHERE r.room_id = messages.room_id)"
                        " RETURNING room_id",
                        (messages_before,),
                    ).fetchall()
                    removed_messages += len(removed)
                    # What was removed unread is no longer there to read.
                    self.db.executemany(
                        f"UPDATE participants SET settled = {SETTLED}"
                        " WHERE room_id = ? AND left_room = 0",
                        [(room_id,) for room_id in {row[0] for row in removed}],
                    )
                if idle_before is not None:
                    idle = [
                        (row[0],)
                        for row in self.db.execute(
                            "SELECT r.room_id FROM rooms r LEFT JOIN messages m"
                            " ON m.room_id = r.room_id AND m.seq = r.last_seq"
                            " WHERE coalesce(m.created_at, r.created_at) < ?",
                            (idle_before,),
                        )
                    ]
                    for table in ("messages", "participants", "queue"):
                        before = self.db.total_changes
                        self.db.executemany(f"DELETE FROM {table} WHERE room_id = ?", idle)
                        if table == "messages":
                            removed_messages += self.db.total_changes - before
                    self.db.executemany("DELETE FROM rooms WHERE room_id = ?", idle)
                    removed_rooms = len(idle)
            return Pruned(removed_messages, removed_rooms)

        return await self._run(run)
