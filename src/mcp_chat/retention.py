"""Retention: how long messages and idle rooms are kept, and the task that removes the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mcp_chat.errors import ChatError
from mcp_chat.messages import stamp
from mcp_chat.stores.base import Store
from mcp_chat.types import Pruned

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Retention:
    """Ages in seconds; 0 keeps forever."""

    message_age: float = 0.0
    idle_age: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.message_age > 0 or self.idle_age > 0

    def cutoffs(self, now: datetime) -> tuple[str | None, str | None]:
        """The timestamps before which messages, and rooms' last activity, are too old."""

        def before(age: float) -> str | None:
            return stamp(now - timedelta(seconds=age)) if age > 0 else None

        return before(self.message_age), before(self.idle_age)

    async def prune(self, store: Store, now: datetime) -> Pruned:
        return await store.prune(*self.cutoffs(now))

    async def run(
        self, store: Store, interval: float, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        """Prune every `interval` seconds until cancelled; a busy store is tried next time."""
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # A cancellation that landed inside a store call can be lost there (seen with
                # redis-py); without this the loop would go on and its owner wait forever.
                raise asyncio.CancelledError
            await asyncio.sleep(interval)
            try:
                pruned = await self.prune(store, clock())
            except ChatError as exc:
                log.warning("retention skipped: %s", exc.message)
                continue
            if pruned.messages or pruned.rooms:
                log.info("retention removed messages=%d rooms=%d", pruned.messages, pruned.rooms)
