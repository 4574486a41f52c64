"""Limits kept in this process: token buckets for sends (per participant) and joins (per
caller), and a count of open waits per participant."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mcp_chat import errors

Clock = Callable[[], float]
Refusal = Callable[[float], errors.ChatError]
"""The error for a refused token, given the seconds until the next one."""

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
