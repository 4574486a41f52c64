"""The Redis store's change feed: one subscription per process to what other instances
changed, turned into wake-ups, and kept up through outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mcp_chat.stores.base import EVERYTHING, ChangeListener
from mcp_chat.stores.redis.client import UNAVAILABLE, Client, close_pubsub

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
        self.ping_after = _PING_AFTER
        # The change listener's pauses and clock, which a test replaces to go through a long
        # outage at once and see every pause.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.clock: Callable[[], float] = time.monotonic

    async def start(self, on_change: ChangeListener) -> None:
        subscriber = aioredis.Redis.from_url(
            self._url,
            decode_responses=True,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),  # a lost connection must surface: see _listen
        )
        pubsub: PubSub | None = None
        try:
            pubsub = await self._subscribe(subscriber)
        except UNAVAILABLE as exc:
            log.warning(
                "Redis is not answering (%s); calls fail with store_unavailable until it does",
                type(exc).__name__,
            )
        self._listener = asyncio.create_task(self._listen(subscriber, pubsub, on_change))

    async def _subscribe(self, subscriber: aioredis.Redis) -> PubSub:
        # Every reply is seen (not only messages), so that a reply to a ping shows life.
        pubsub = subscriber.pubsub(ignore_subscribe_messages=False)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await close_pubsub(pubsub)
            raise
        return pubsub

    async def _listen(
        self, subscriber: aioredis.Redis, pubsub: PubSub | None, on_change: ChangeListener
    ) -> None:
        """One subscription for the whole process. After an outage it wakes every local wait:
        a notice published while it was away is lost, so they all re-read the store.

        While Redis is away, the pause between two attempts doubles from 0.1 s up to 5 s, and
        the log says once that notices are lost (start() said it, if Redis was away from the
        start), not once per attempt."""
        delay = _RETRY_FIRST
        # When the subscription in use was made; None while there is none.
        subscribed_at = None if pubsub is None else self.clock()
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = await self._subscribe(subscriber)
                        subscribed_at = self.clock()
                        log.info("Redis change notices: subscribed again")
                        on_change(EVERYTHING)
                    await self._relay(pubsub, on_change)
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
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            await close_pubsub(pubsub)
                        pubsub = None
                    await self.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await close_pubsub(pubsub)
            with contextlib.suppress(Exception):
                await subscriber.aclose()

    async def _relay(self, pubsub: PubSub, on_change: ChangeListener) -> None:
        """Hand each notice from another process to `on_change`. A quiet connection is pinged:
        one that stays silent after a ping is taken as lost (a peer gone without a word)."""
        pinged = False
        while True:
            notice = await pubsub.get_message(timeout=self.ping_after)
            if notice is None:
                if pinged:
                    raise rex.ConnectionError(f"no answer to a ping in {self.ping_after:g} s")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if notice.get("type") != "message":
                continue
            origin, _, key = str(notice["data"]).partition(" ")
            if origin != self._origin:
                on_change(key)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await super().close()
