"""Reading a room's log: where a claim starts and stops, what it takes, and where it leaves
the participant's read position. Pure functions over numbers and messages.

The memory and SQLite stores call these; the Redis store restates them in Lua (`CLAIM` and
`COUNT_UNREAD` in `stores/redis/lua.py`), and the store contract checks every backend
against them (tests/test_stores_walk.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mcp_chat.types import Message

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Window:
    """The seqs a claim may take: past `start`, up to and including `end`."""

    start: int
    end: int


def window(cursor: int, after: int | None, last_seq: int, through: int | None) -> Window:
    """A claim reads past the read position `cursor` (or past `after`, when given, never
    below 0), never past the room's `last_seq`, and not past `through` when given: and since
    the window never ends before it starts, a `through` behind the read position moves it
    nowhere (never back)."""
    start = min(cursor if after is None else max(after, 0), last_seq)
    end = last_seq if through is None else max(start, min(through, last_seq))
    return Window(start, end)


def cut(found: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """From up to `limit` + 1 messages from others in the window, in seq order: the first
    `limit` taken, and whether more remain."""
    return list(found[:limit]), len(found) > limit


def cursor_after(span: Window, taken: Sequence[Message], has_more: bool) -> int:
    """Where a claim leaves the read position: past the last message taken when more remain
    (a short claim), else at the window's end (past the reader's own messages there too)."""
    return taken[-1].seq if has_more else span.end


def take(
    log: Iterable[Message], reader_id: str, span: Window, limit: int
) -> tuple[list[Message], bool]:
    """What a claim takes from `log` (in seq order, from anywhere before the window): the
    first `limit` messages from others in the window, and whether more remain."""
    found: list[Message] = []
    for message in log:
        if message.seq > span.end:
            break
        if message.seq <= span.start or message.sender_id == reader_id:
            continue
        found.append(message)
        if len(found) > limit:
            break
    return cut(found, limit)


@dataclass(frozen=True, slots=True)
class Read:
    """What a claim takes, whether more remains, and where it leaves the read position."""

    messages: list[Message]
    cursor: int
    has_more: bool


def read(
    log: Iterable[Message],
    reader_id: str,
    cursor: int,
    after: int | None,
    limit: int,
    last_seq: int,
    through: int | None = None,
) -> Read:
    """A whole claim over `log`: its window, what it takes, where the read position goes."""
    span = window(cursor, after, last_seq, through)
    taken, has_more = take(log, reader_id, span, limit)
    return Read(taken, cursor_after(span, taken, has_more), has_more)


def unread(log: Iterable[Message], reader_id: str, cursor: int) -> int:
    """How many messages from others lie past the read position `cursor`."""
    return sum(1 for m in log if m.seq > cursor and m.sender_id != reader_id)
