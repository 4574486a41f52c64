"""Scaling out on Redis: latency and throughput with one instance and with two. Figures only.

    .venv/bin/python -m benchmarks.scale [--rounds 300] [--pause 0.02] [--duration 10]
        [--redis redis://127.0.0.1:6379/0] [--raw-pairs 80] [--repeats 3] [--figures DEI]

D. Send-to-receive latency (as figure A of benchmarks.latency: one pair in two client
   processes), in one run: one instance on SQLite; one instance on Redis; and two instances on
   one Redis with the sender on one and the recipient on the other.
E. Delivered messages per second, 20 pairs ping-ponging (as figure B): one instance on SQLite,
   one on Redis, and two on one Redis with the two sides of every pair on different instances.
I. As E on Redis, with a load generator light enough that the servers are the bottleneck (raw
   HTTP/1.1 on keep-alive connections, the requests `mcp.Client` sends, `--raw-pairs` pairs in
   2 processes on uvloop) and each instance pinned to a core of its own: one instance on CPU
   0, then two on CPUs 0 and 1. The load processes and Redis float. `--repeats` rounds of
   both, alternating, so that the machine's drift falls on both; the ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import secrets
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.synchronize import Barrier
from typing import Any

import redis
from mcp import Client

from benchmarks.latency import (
    CALL_TIMEOUT,
    PAIRS_PER_PROCESS,
    PROCESSES,
    WARMUP,
    Server,
    ms,
    now,
    percentiles,
    ping_pong,
    recipient,
    run_children,
    seat,
    sender,
)
from benchmarks.waits import raw_request, structured


async def pairs_across(urls: tuple[str, str], n: int, duration: float, barrier: Barrier) -> int:
    """Figure E, one process: `n` pairs; each pair's first side talks to urls[0], the other
    to urls[1]."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(urls[i % 2], read_timeout_seconds=CALL_TIMEOUT))
            for i in range(2 * n)
        ]
        seated = await asyncio.gather(*(seat(clients[2 * i], clients[2 * i + 1]) for i in range(n)))
        await asyncio.to_thread(barrier.wait, 60)
        deadline = now() + duration
        return sum(await asyncio.gather(*(ping_pong(pair, deadline) for pair in seated)))


@contextmanager
def servers(store: str, count: int) -> Iterator[list[str]]:
    started: list[Server] = []
    try:
        for _ in range(count):
            started.append(Server(store))
        yield [f"http://127.0.0.1:{s.port}/mcp" for s in started]
    finally:
        for s in started:
            s.stop()
        for s in started:
            for line in s.problems()[:3]:
                print(f"   server log: {line}")


# ---------------------------------------------------------------------------- figure I

RAW_PROCESSES = 2


class KeptConnection:
    """Raw 2026-07-28 tools/calls, one after another, on one keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw_request(self.port, tool, arguments, keep_alive=True))
        head = await self.reader.readuntil(b"\r\n\r\n")
        fields = dict(
            line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line
        )
        if b"content-length" in fields:
            return structured(
                tool, head, await self.reader.readexactly(int(fields[b"content-length"]))
            )
        body = b""  # chunked: a blocked wait's event stream
        while size := int(await self.reader.readuntil(b"\r\n"), 16):
            body += (await self.reader.readexactly(size + 2))[:-2]
        await self.reader.readexactly(2)
        return structured(tool, head, body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def raw_pairs(ports: tuple[int, int], n: int, duration: float, barrier: Barrier) -> int:
    """Figure I, one process: `n` pairs, each side on its own connection; each pair's first
    side talks to ports[0], the other to ports[1]. Returns the messages delivered."""
    sides = [KeptConnection(ports[i % 2]) for i in range(2 * n)]
    try:
        seated = []
        for i in range(n):
            a, b = sides[2 * i], sides[2 * i + 1]
            a_in = await a.call("join_room", display_name="a")
            b_in = await b.call("join_room", display_name="b", room_id=a_in["room_id"])
            seated.append((a, b, a_in["room_id"], a_in["client_id"], b_in["client_id"]))
        await asyncio.to_thread(barrier.wait, 60)
        deadline = now() + duration

        async def player(side: KeptConnection, room: str, me: str, serve: bool) -> int:
            delivered = 0
            if serve:
                await side.call("send_message", room_id=room, client_id=me, message="ping")
            while now() < deadline:
                got = await side.call("wait_for_message", room_id=room, client_id=me, timeout=1)
                heard = sum(m["kind"] == "message" for m in got.get("messages") or [])
                if heard and now() < deadline:
                    delivered += heard
                    await side.call("send_message", room_id=room, client_id=me, message="pong")
            return delivered

        games = [
            g
            for a, b, room, a_id, b_id in seated
            for g in (player(a, room, a_id, True), player(b, room, b_id, False))
        ]
        return sum(await asyncio.gather(*games))
    finally:
        for side in sides:
            side.close()


def raw_throughput(servers: list[Server], pairs: int, duration: float) -> float:
    ports = (servers[0].port, servers[-1].port)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(RAW_PROCESSES)
    share = pairs // RAW_PROCESSES
    got = run_children(
        [(f"r{i}", raw_pairs, (ports, share, duration, barrier)) for i in range(RAW_PROCESSES)],
        event_loop="auto",  # a light load: uvloop where installed
    )
    return float(sum(got[f"r{i}"] for i in range(RAW_PROCESSES))) / duration


@contextmanager
def pinned_servers(store: str, count: int) -> Iterator[list[Server]]:
    """`count` instances, the i-th pinned to CPU i."""
    started: list[Server] = []
    try:
        for cpu in range(count):
            server = Server(store)
            started.append(server)
            os.sched_setaffinity(server.proc.pid, {cpu})
        yield started
    finally:
        for server in started:
            server.stop()


# ---------------------------------------------------------------------------- D and E


def latency(recipient_url: str, sender_url: str, rounds: int, pause: float) -> list[float]:
    ctx = mp.get_context("spawn")
    peer_r, peer_s = ctx.Pipe()
    got = run_children(
        [
            ("recipient", recipient, (recipient_url, rounds, peer_r)),
            ("sender", sender, (sender_url, rounds, pause, peer_s)),
        ]
    )
    return list(got["recipient"][WARMUP:])


def throughput(urls: tuple[str, str], duration: float) -> float:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    got = run_children(
        [
            (f"p{i}", pairs_across, (urls, PAIRS_PER_PROCESS, duration, barrier))
            for i in range(PROCESSES)
        ]
    )
    return float(sum(got[f"p{i}"] for i in range(PROCESSES))) / duration


def measure_de(
    label: str,
    urls: tuple[str, str],
    args: argparse.Namespace,
    rows: list[tuple[str, list[float]]],
    rates: list[tuple[str, float]],
) -> None:
    """Figures D and E (those asked for) on one setup."""
    if "D" in args.figures:
        rows.append((label, latency(urls[0], urls[1], args.rounds, args.pause)))
    if "E" in args.figures:
        rates.append((label, throughput(urls, args.duration)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300, help="latency rounds (default 300)")
    parser.add_argument("--pause", type=float, default=0.02, help="idle pause, s (default 0.02)")
    parser.add_argument("--duration", type=float, default=10.0, help="throughput time, s")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis to use")
    parser.add_argument("--raw-pairs", type=int, default=80, help="figure I pairs (default 80)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="figure I rounds, one then two (default 3)"
    )
    parser.add_argument(
        "--figures", default="DEI", help="which figures to run, e.g. I or DE (default DEI)"
    )
    args = parser.parse_args()
    if args.rounds <= WARMUP + 1:
        parser.error(f"--rounds must exceed {WARMUP + 1}")

    prefix = f"bench-{secrets.token_hex(4)}"
    redis_store = f"{args.redis}?prefix={prefix}"
    with redis.Redis.from_url(args.redis) as r:
        redis_version = r.info("server")["redis_version"]
    print("mcp-chat scale-out benchmark")
    print(f"  date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"  python    {platform.python_implementation()} {platform.python_version()}")
    print(f"  machine   {platform.platform()}, {platform.machine()}")
    print(f"  cpus      {os.cpu_count()} (usable {len(os.sched_getaffinity(0))})")
    print(
        f"  packages  fastmcp {version('fastmcp')}, mcp {version('mcp')}, redis-py "
        f"{version('redis')}; Redis server {redis_version} on {args.redis}"
    )
    print("  servers   benchmarks.server on 127.0.0.1, log warning; clients: official SDK,")
    print("            default (2026-07-28) protocol, each side in its own process")

    rows: list[tuple[str, list[float]]] = []
    rates: list[tuple[str, float]] = []
    try:
        if "D" in args.figures or "E" in args.figures:
            with (
                tempfile.TemporaryDirectory(prefix="mcp-chat-bench-") as tmp,
                servers(f"sqlite:///{tmp}/bench.db", 1) as (one,),
            ):
                measure_de("sqlite, one instance", (one, one), args, rows, rates)
            with servers(redis_store, 1) as (one,):
                measure_de("redis, one instance", (one, one), args, rows, rates)
            with servers(redis_store, 2) as (a, b):
                if "D" in args.figures:
                    rows.append(
                        (
                            "redis, sender on B, recipient on A",
                            latency(a, b, args.rounds, args.pause),
                        )
                    )
                if "E" in args.figures:
                    rates.append(
                        ("redis, two instances, pairs split", throughput((a, b), args.duration))
                    )
        raw: list[tuple[float, float]] = []  # (one instance, two instances), each round
        if "I" in args.figures and len(os.sched_getaffinity(0)) >= 2:
            for _ in range(args.repeats):
                with pinned_servers(redis_store, 1) as one_pinned:
                    alone = raw_throughput(one_pinned, args.raw_pairs, args.duration)
                with pinned_servers(redis_store, 2) as two_pinned:
                    spread = raw_throughput(two_pinned, args.raw_pairs, args.duration)
                raw.append((alone, spread))
    finally:
        with redis.Redis.from_url(args.redis) as r:
            keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                r.delete(*keys)

    if rows:
        print()
        print(f"D. send-to-receive, one pair: {args.rounds} rounds ({WARMUP} warm-up dropped),")
        print(f"   idle pause {args.pause * 1000:g} ms before each send")
        print("                                         p50      p90      p99  (ms)")
        for label, values in rows:
            p50, p90, p99 = percentiles(values)
            print(f"   {label:<35}{ms(p50)} {ms(p90)} {ms(p99)}")
    if rates:
        print()
        print(
            f"E. throughput: {PROCESSES * PAIRS_PER_PROCESS} pairs ping-ponging for "
            f"{args.duration:g} s ({PROCESSES} client processes)"
        )
        for label, rate in rates:
            print(f"   {label:<35}{rate:8.1f} delivered messages/s")
    if "I" not in args.figures:
        return
    print()
    if not raw:
        print("I. skipped: needs 2 usable CPUs")
        return
    print(
        f"I. throughput, servers pinned, light load: {args.raw_pairs} pairs ping-ponging for "
        f"{args.duration:g} s"
    )
    print(f"   (raw HTTP, {RAW_PROCESSES} load processes on uvloop), alternating:")
    print(f"   {len(raw)} rounds of one instance then two; delivered messages/s")
    print("                                      one instance   two instances   two / one")
    for i, (alone, spread) in enumerate(raw, 1):
        print(f"   round {i:<28}{alone:8.1f}       {spread:8.1f}        {spread / alone:6.2f}")
    one_median = statistics.median(alone for alone, _ in raw)
    two_median = statistics.median(spread for _, spread in raw)
    print(
        f"   median                            {one_median:8.1f}       {two_median:8.1f}"
        f"        {two_median / one_median:6.2f}   (target >= 1.5)"
    )
    print("   (one instance pinned to CPU 0; two pinned to CPUs 0 and 1; Redis and the load float)")


if __name__ == "__main__":
    main()
