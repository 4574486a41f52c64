"""Several processes starting on one SQLite file at the same moment, as several stdio
servers do when an assistant starts them together."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import traceback
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from mcp_chat.stores import open_store

PROCESSES = 4
ROUNDS = 40


def start_and_close(url: str, barrier: Barrier) -> None:
    async def run() -> None:
        store = open_store(url)
        await store.start(lambda _: None)
        await store.room("")  # it answers
        await store.close()

    barrier.wait(timeout=30)
    asyncio.run(run())


def child(directory: str, barrier: Barrier, out: Queue[str | None]) -> None:
    for round_ in range(ROUNDS):
        try:
            start_and_close(f"sqlite:///{directory}/fresh-{round_}.db", barrier)
            out.put(None)
        except Exception:
            out.put(traceback.format_exc())


def test_processes_opening_a_fresh_file_together_all_start(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out: Queue[str | None] = ctx.Queue()
    procs = [
        ctx.Process(target=child, args=(str(tmp_path), barrier, out)) for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        failures = [f for f in (out.get(timeout=60) for _ in range(PROCESSES * ROUNDS)) if f]
    finally:
        for p in procs:
            p.join(timeout=30)
    assert failures == [], failures[0]
