"""Gives memory back after a burst: collects cyclic garbage once the process calms down.

Each request leaves some reference cycles behind (exceptions that hold their tracebacks,
task groups and their scopes, connections and their exit stacks). Python frees most of them
in its frequent young-generation collections, but those still referenced at that moment move
to the oldest generation, which is collected only once it has grown by a quarter. After a
burst of clients that can mean tens of MB held for a long time: in benchmarks.waits figure H,
about 20,000 collectable objects and 25 MB of RSS after 6,000 clients had come and gone.

`Collector` runs a full collection when objects have reached the oldest generation since the
last one and no young collection has happened for a whole interval, that is, once a burst is
over; under steady load it leaves the timing to Python. The objects that exist after start-up
(modules, classes, the app) are frozen out of collections (`gc.freeze`), so that a full
collection looks only at what came later.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

INTERVAL = 5.0
"""Seconds between looks at the collector's counts."""


class Collector:
    def __init__(self) -> None:
        self._seen = -1

    def freeze_startup(self) -> None:
        """Collect once, then leave every object alive now out of later collections."""
        gc.collect()
        gc.freeze()

    def tick(self) -> bool:
        """Collect if a burst has ended since the last look; True if it did."""
        promoted = gc.get_count()[2]  # young collections since the last full one
        calm = promoted == self._seen
        self._seen = promoted
        if not (promoted and calm):
            return False
        found = gc.collect()
        self._seen = gc.get_count()[2]
        log.debug("burst over: collected %d unreachable objects", found)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            self.tick()


@contextlib.asynccontextmanager
async def collecting() -> AsyncIterator[Collector]:
    """A process's collector: start-up objects frozen, then a look every INTERVAL seconds."""
    collector = Collector()
    collector.freeze_startup()
    task = asyncio.create_task(collector.run())
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
