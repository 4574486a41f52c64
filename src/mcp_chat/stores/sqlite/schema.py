"""The SQLite store's tables, the steps from each older schema to the newest, and the URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mcp_chat.errors import StartupError

SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room_id    TEXT PRIMARY KEY,
    capacity   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    ended      INTEGER NOT NULL DEFAULT 0,
    invite_hash TEXT
);
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    secret_hash    TEXT NOT NULL UNIQUE,
    cursor         INTEGER NOT NULL DEFAULT 0,
    joined_at      TEXT NOT NULL,
    left_room      INTEGER NOT NULL DEFAULT 0,
    joined_order   INTEGER NOT NULL,
    last_seen      REAL NOT NULL DEFAULT 0,
    gone           INTEGER NOT NULL DEFAULT 0,
    settled        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS participants_by_room ON participants (room_id, left_room);
CREATE TABLE IF NOT EXISTS messages (
    room_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    message_id  TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    msg_key     TEXT,
    mentions    TEXT,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_key
    ON messages (sender_id, msg_key) WHERE msg_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue (
    entry_id     TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    interests    TEXT NOT NULL,
    entered_at   REAL NOT NULL,
    last_seen    REAL NOT NULL,
    room_id      TEXT
);
CREATE INDEX IF NOT EXISTS queue_waiting ON queue (room_id, entered_at);
CREATE TABLE IF NOT EXISTS readiness (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at REAL NOT NULL
);
"""

# What a participant has not read is kept, not counted: counting the log past its read
# position on every send would cost as much as it has left unread. `settled` is how many of
# the room's seqs it need not read (read, its own, or removed), so its unread is the room's
# last_seq less that: a message from anyone else raises last_seq and leaves `settled`, one of
# its own raises both (_insert_message), a read settles what it took (claim). Where that is not
# known (a re-read from elsewhere, retention, an upgrade), it is set from a count:
SETTLED = (
    "(SELECT last_seq FROM rooms r WHERE r.room_id = participants.room_id)"
    " - (SELECT count(*) FROM messages m WHERE m.room_id = participants.room_id"
    " AND m.seq > participants.cursor AND m.sender_id != participants.participant_id)"
)

# Steps from each older schema version to the next; the tables above are the newest shape.
MIGRATIONS = {
    1: """
ALTER TABLE rooms ADD COLUMN invite_hash TEXT;
ALTER TABLE participants ADD COLUMN last_seen REAL NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN gone INTEGER NOT NULL DEFAULT 0;
""",
    2: f"""
ALTER TABLE participants ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
UPDATE participants SET settled = {SETTLED} WHERE left_room = 0;
""",
    # The ids a message addresses, as a JSON list; NULL (the rows from before, and most
    # messages) for none.
    3: """
ALTER TABLE messages ADD COLUMN mentions TEXT;
""",
}

MESSAGE_COLUMNS = (
    "room_id, seq, message_id, sender_id, sender_name, kind, body, created_at, mentions"
)
PARTICIPANT_COLUMNS = (
    "participant_id, room_id, display_name, secret_hash, cursor, joined_at, left_room,"
    " last_seen, gone"
)
ROOM_COLUMNS = "room_id, capacity, created_at, last_seq, ended, invite_hash"
QUEUE_COLUMNS = "entry_id, secret_hash, display_name, interests, entered_at, last_seen, room_id"


def path_from_url(url: str) -> Path:
    """`sqlite:///abs/path.db` -> /abs/path.db; `sqlite:///rel.db` -> ./rel.db is not allowed
    to be ambiguous, so a relative path is taken relative to the working directory."""
    parts = urlsplit(url)
    raw = unquote(parts.netloc + parts.path)
    if not raw or raw == "/":
        raise StartupError(f"no file path in store URL {url!r}: use sqlite:///path/to/file.db.")
    # sqlite:////abs -> '//abs'; sqlite:///abs -> '/abs' (as SQLAlchemy reads it: absolute).
    return Path(raw.replace("//", "/", 1) if raw.startswith("//") else raw)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the database at `path` to the newest schema (in the caller's write transaction):
    the steps from its version, then the tables, each statement idempotent."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"{path} was written by a newer mcp-chat (schema {version}); "
            "upgrade mcp-chat to open it."
        )
    fresh = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    for step in range(version if version and not fresh else SCHEMA_VERSION, SCHEMA_VERSION):
        for statement in filter(str.strip, MIGRATIONS[step].split(";")):
            db.execute(statement)
    for statement in filter(str.strip, SCHEMA.split(";")):
        db.execute(statement)  # each is idempotent (IF NOT EXISTS)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
