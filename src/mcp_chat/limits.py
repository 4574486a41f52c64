"""The server's limits (`Limits`: sizes, rates, waits, history pages, and the bounds of a
timeout or a page of history), and those kept in this process: token buckets for sends (per
participant) and joins (per caller), and a count of open waits per participant."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mcp_chat import errors, matching, messages, names, rooms
from mcp_chat.retention import Retention

Clock = Callable[[], float]
Refusal = Callable[[float], errors.ChatError]
"""The error for a refused token, given the seconds until the next one."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits; a 0 for max_rooms, rate_messages or max_waits means no limit."""

    max_message_bytes: int = 64 * 1024
    max_capacity: int = 50
    max_name_chars: int = names.MAX_NAME_CHARS
    max_room_id_chars: int = names.MAX_ROOM_ID_CHARS
    max_rooms: int = 10_000
    rate_messages: int = 120
    """Messages a participant may send at once, refilled over `rate_window` seconds."""
    rate_window: float = 60.0
    rate_joins: int = 60
    """Rooms joined or queues entered per `rate_window` by one caller (see `ChatService.join`)."""
    max_waits: int = 4
    """Blocked wait_for_message calls one participant may have open at once."""
    batch_size: int = 50
    history_page: int = 100
    default_wait: float = 30.0
    min_wait: float = 1.0
    max_wait: float = 300.0
    retention: Retention = field(default_factory=Retention)
    retention_interval: float = 300.0

    @property
    def default_capacity(self) -> int:
        """Places in a room made without a capacity (a rule of `rooms`, not configurable)."""
        return rooms.DEFAULT_CAPACITY

    @property
    def max_interests(self) -> int:
        """Interests one queue entry may give (a rule of `matching`, not configurable)."""
        return matching.MAX_INTERESTS

    def clamp_timeout(self, timeout: float | None) -> float:
        """A wait's seconds: `default_wait` when not given, else within `min_wait` and
        `max_wait`; anything but a finite number is refused."""
        if timeout is None:
            return self.default_wait
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise errors.invalid("timeout must be a number of seconds.")
        if isinstance(timeout, int):
            # Any whole number past the longest wait is the longest wait (float() of a huge
            # one would overflow).
            timeout = min(timeout, math.ceil(self.max_wait))
        if not math.isfinite(timeout):
            raise errors.invalid(
                f"timeout must be a finite number of seconds between "
                f"{self.min_wait:g} and {self.max_wait:g}."
            )
        return min(max(float(timeout), self.min_wait), self.max_wait)

    def history_bounds(
        self, before: int | None, after: int | None, limit: int | None
    ) -> tuple[int | None, int | None, int]:
        """A page of history as asked: `before` or `after` (a seq, not both) and how many
        (1 to `history_page`, that many when not given)."""
        before = messages.check_seq(before, "before")
        after = messages.check_seq(after, "after")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise errors.invalid("limit must be a whole number.")
        if before is not None and after is not None:
            raise errors.invalid("Give either before or after, not both.")
        page = self.history_page
        if limit is not None and not 1 <= limit <= page:
            raise errors.invalid(f"limit must be between 1 and {page}.")
        return before, after, limit or page


_PRUNE_AT = 10_000
"""Buckets kept before full ones are forgotten (a full bucket is the same as no bucket)."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class Rate:
    """A token bucket per key (a participant, a caller): up to `messages` at once, refilled
    at `messages / window` per second. `messages == 0` turns the limit off."""

    def __init__(
        self,
        messages: int,
        window: float,
        clock: Clock = time.monotonic,
        refusal: Refusal = errors.rate_limited,
    ) -> None:
        self.messages = messages
        self.window = window
        self._clock = clock
        self._refusal = refusal
        self._buckets: dict[str, _Bucket] = {}

    @property
    def _per_second(self) -> float:
        return self.messages / self.window

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.messages), bucket.tokens + (now - bucket.stamp) * self._per_second)

    def take(self, key: str) -> None:
        """Spend one token for `key`, or raise the refusal saying how long to wait."""
        if self.messages <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        tokens = float(self.messages) if bucket is None else self._refilled(bucket, now)
        if tokens < 1:
            raise self._refusal((1 - tokens) / self._per_second)
        if bucket is None and len(self._buckets) >= _PRUNE_AT:
            self._forget_full(now)
        self._buckets[key] = _Bucket(tokens - 1, now)

    def give_back(self, key: str) -> None:
        """Return the token of a send that stored nothing new (a retried message_key)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.messages), bucket.tokens + 1)

    def forget(self, key: str) -> None:
        """`key` will send no more (it left)."""
        self._buckets.pop(key, None)

    def _forget_full(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if self._refilled(b, now) >= self.messages]
        for key in full:
            del self._buckets[key]


class WaitSlots:
    """How many waits (or other long-lived requests, see `refuse`) each participant has open;
    `limit == 0` turns the limit off."""

    def __init__(
        self, limit: int, refuse: Callable[[int], errors.ChatError] = errors.too_many_waits
    ) -> None:
        """`refuse(limit)` is the error a request over the limit gets."""
        self.limit = limit
        self._refuse = refuse
        self._open: dict[str, int] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        count = self._open.get(key, 0)
        if self.limit and count >= self.limit:
            raise self._refuse(self.limit)
        self._open[key] = count + 1
        try:
            yield
        finally:
            left = self._open[key] - 1
            if left:
                self._open[key] = left
            else:
                del self._open[key]
