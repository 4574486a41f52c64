"""The Redis store's change feed: one subscription per process to what other instances
changed (sharded, on a cluster), turned into wake-ups, and kept up through outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from mcp_chat.stores.base import EVERYTHING, ChangeListener
from mcp_chat.stores.redis.client import UNAVAILABLE, Client
from mcp_chat.stores.redis.subscriptions import (
    ChannelSubscription,
    ShardSubscription,
    Subscription,
    subscriber,
)

log = logging.getLogger("mcp_chat.stores.redis")

_PING_AFTER = 15.0
"""Seconds of quiet after which the change subscription checks that Redis still answers."""
_RETRY_FIRST = 0.1
_RETRY_MAX = 5.0
"""Seconds between attempts at subscribing again: the first pause, and where doubling stops."""


class Feed(Client):
    """Changes made by other processes, told to the listener `start` was given."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._listener: asyncio.Task[None] | None = None
        self._subscriber: aioredis.Redis | None = None
        self.ping_after = _PING_AFTER
        # The change listener's pauses and clock, which a test replaces to go through a long
        # outage at once and see every pause.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.clock: Callable[[], float] = time.monotonic

    async def start(self, on_change: ChangeListener) -> None:
        # One Redis: a client of the feed's own. A cluster: connections to each primary.
        self._subscriber = None if self.cluster else subscriber(self._url)
        subscription: Subscription | None = None
        try:
            subscription = await self._subscribe()
        except UNAVAILABLE as exc:
            log.warning(
                "Redis is not answering (%s); calls fail with store_unavailable until it does",
                type(exc).__name__,
            )
        self._listener = asyncio.create_task(self._listen(subscription, on_change))

    async def _subscribe(self) -> Subscription:
        if self._subscriber is not None:
            return await ChannelSubscription.open(self._subscriber, self.channel, self.ping_after)
        assert self._cluster is not None
        return await ShardSubscription.open(
            self._cluster, self.target, self.keys.channels(), self.ping_after
        )

    async def _listen(self, subscription: Subscription | None, on_change: ChangeListener) -> None:
        """One subscription for the whole process. After an outage it wakes every local wait:
        a notice published while it was away is lost, so they all re-read the store.

        While Redis is away, the pause between two attempts doubles from 0.1 s up to 5 s, and
        the log says once that notices are lost (start() said it, if Redis was away from the
        start), not once per attempt."""

        def relayed(notice: str) -> None:
            origin, _, key = notice.partition(" ")
            if origin != self._origin:
                on_change(key)

        delay = _RETRY_FIRST
        # When the subscription in use was made; None while there is none.
        subscribed_at = None if subscription is None else self.clock()
        try:
            while True:
                try:
                    if subscription is None:
                        subscription = await self._subscribe()
                        subscribed_at = self.clock()
                        log.info("Redis change notices: subscribed again")
                        on_change(EVERYTHING)
                    await subscription.relay(relayed)
                except Exception as exc:
                    if subscribed_at is not None:  # it was up: an outage begins
                        # Pauses start over only after a subscription that held a while:
                        # one that drops as soon as it is made does not end the outage.
                        if self.clock() - subscribed_at >= self.ping_after:
                            delay = _RETRY_FIRST
                        subscribed_at = None
                        log.warning(
                            "Redis change notices lost (%s); subscribing again, with pauses "
                            "growing to %g s",
                            exc,
                            _RETRY_MAX,
                        )
                    if subscription is not None:
                        with contextlib.suppress(Exception):
                            await subscription.close()
                        subscription = None
                    await self.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.close()
            if self._subscriber is not None:
                with contextlib.suppress(Exception):
                    await self._subscriber.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await super().close()
