"""Store figures: SQLite appends per second in-process, and the cross-process wake-up.

    .venv/bin/python -m benchmarks.store [--runs 3] [--appends 20000] [--event-loop auto]

Runs on the event loop the server would (`auto`: uvloop where installed). Prints figures
only (no pass/fail). Targets from the performance issue: at least 20,000
appends/s through the SQLite store in-process; a wake-up between two processes on one file
with p50 under 5 ms and p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from tests.stores_support import enter  # (the store contract tests' own people)

from mcp_chat import messages
from mcp_chat.loop import Choice, run_on_loop, running_loop_name
from mcp_chat.stores import open_store
from mcp_chat.types import Draft, Kind

WARMUP = 20


async def appends(url: str, count: int, concurrency: int, members: int) -> float:
    """Appends per second with `concurrency` senders, each sending its share one after the
    other, as many assistants talking at once do: each append is a request of its own, so a
    sender's next one comes in a later iteration of the event loop. The room's `members` - 1
    other members never read, so that every append is one more for each of them to read, and
    the sender has ever more unread too (their arrivals are never read)."""
    store = open_store(url)
    await store.start(lambda _: None)
    try:
        sender = await enter(store, "bench", "A", members)
        for i in range(members - 1):
            await enter(store, "bench", f"quiet {i}", members)
        drafts = [messages.text_draft(sender, f"m{i}", None) for i in range(count)]

        async def send(share: list[Draft]) -> None:
            for draft in share:
                await store.append(sender.participant_id, draft)
                await asyncio.sleep(0)  # the sender's next message comes in a later request

        started = time.perf_counter()
        await asyncio.gather(*(send(drafts[k::concurrency]) for k in range(concurrency)))
        return count / (time.perf_counter() - started)
    finally:
        await store.close()


async def listener(url: str, rounds: int, pipe: Connection) -> list[float]:
    """Waits like a blocked wait_for_message does: a wake-up, then a claim of the message."""
    store = open_store(url)
    woke: asyncio.Queue[float] = asyncio.Queue()
    await store.start(lambda _: woke.put_nowait(time.clock_gettime(time.CLOCK_MONOTONIC)))
    me = await enter(store, "wake", "listener")
    await store.claim(me.participant_id, None, 10)
    pipe.send(None)
    gaps: list[float] = []
    while len(gaps) < rounds:
        await woke.get()
        claim = await store.claim(me.participant_id, None, 10)
        arrived = time.clock_gettime(time.CLOCK_MONOTONIC)
        for m in claim.messages:
            if m.kind is Kind.MESSAGE:
                gaps.append(arrived - float(m.text))
                pipe.send(None)
    await store.close()
    return gaps


async def writer(url: str, rounds: int, pipe: Connection) -> None:
    store = open_store(url)
    await store.start(lambda _: None)
    await asyncio.to_thread(pipe.recv)
    me = await enter(store, "wake", "writer")
    for _ in range(rounds):
        await asyncio.sleep(0.005)
        sent = f"{time.clock_gettime(time.CLOCK_MONOTONIC):.9f}"
        await store.append(me.participant_id, messages.text_draft(me, sent, None))
        await asyncio.to_thread(pipe.recv)
    await store.close()


def run_listener(
    url: str, rounds: int, pipe: Connection, out: Connection, event_loop: Choice
) -> None:
    out.send(run_on_loop(listener(url, rounds, pipe), event_loop))


def run_writer(url: str, rounds: int, pipe: Connection, event_loop: Choice) -> None:
    run_on_loop(writer(url, rounds, pipe), event_loop)


def wakeups(url: str, rounds: int, event_loop: Choice) -> list[float]:
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    result_r, result_w = ctx.Pipe(duplex=False)
    procs = [
        ctx.Process(target=run_listener, args=(url, rounds, a, result_w, event_loop)),
        ctx.Process(target=run_writer, args=(url, rounds, b, event_loop)),
    ]
    for p in procs:
        p.start()
    if not result_r.poll(120):
        for p in procs:
            p.kill()
        raise TimeoutError("wake-up rounds did not finish in 120 s")
    gaps: list[float] = result_r.recv()
    for p in procs:
        p.join(10)
    return gaps[WARMUP:]


async def loop_name() -> str:
    return running_loop_name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="runs per appends figure")
    parser.add_argument(
        "--event-loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="the loop to run on; auto (uvloop where installed) is what the server runs on",
    )
    args = parser.parse_args()
    event_loop: Choice = args.event_loop
    with tempfile.TemporaryDirectory(prefix="mcp-chat-store-") as tmp:
        print(f"mcp-chat store benchmark (event loop: {run_on_loop(loop_name(), event_loop)})")
        for store, concurrency, members in (
            ("SQLite", 1, 2),
            ("SQLite", 50, 2),
            ("SQLite", 50, 50),
            ("memory", 50, 2),
        ):
            rates = []
            for run in range(args.runs):
                name = f"appends-{concurrency}-{members}-{run}.db"
                url = f"sqlite:///{Path(tmp) / name}" if store == "SQLite" else "memory://"
                rate = appends(url, args.appends, concurrency, members)
                rates.append(run_on_loop(rate, event_loop))
            print(
                f"  {store} appends, {concurrency:>2} senders, room of {members:>2}   "
                f"{statistics.median(rates):>10,.0f} /s  (median of {args.runs} runs; "
                f"{min(rates):,.0f}-{max(rates):,.0f})"
            )
        gaps = wakeups(f"sqlite:///{Path(tmp) / 'wake.db'}", args.rounds, event_loop)
        cuts = statistics.quantiles(gaps, n=100, method="inclusive")
        print(
            f"  cross-process wake-up + claim  p50 {cuts[49] * 1000:.2f} ms, "
            f"p90 {cuts[89] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms "
            f"({len(gaps)} rounds)"
        )
        print("  targets: >= 20,000 appends/s; wake-up p50 < 5 ms, p99 < 20 ms")


if __name__ == "__main__":
    main()
