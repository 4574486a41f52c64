"""Scaling out on Redis: latency and throughput with one instance and with two. Figures only.

    .venv/bin/python -m benchmarks.scale [--rounds 300] [--pause 0.02] [--duration 10]
        [--redis redis://127.0.0.1:6379/0] [--raw-pairs 80] [--windows 8] [--window 4]
        [--share 0.75] [--figures DEI] [--protocol handshake|modern|both]

D. Send-to-receive latency (as figure A of benchmarks.latency: one pair in two client
   processes), in one run: one instance on SQLite; one instance on Redis; and two instances on
   one Redis with the sender on one and the recipient on the other.
E. Delivered messages per second, 20 pairs ping-ponging (as figure B): one instance on SQLite,
   one on Redis, and two on one Redis with the two sides of every pair on different instances.
   D and E run once per protocol family (`--protocol`, default both), as benchmarks.latency.
I. As E on Redis, with a load generator light enough that the servers are the bottleneck (raw
   HTTP/1.1 on keep-alive connections, the requests `mcp.Client` sends, `--raw-pairs` pairs in
   2 processes on uvloop) and each instance with a core of its own: one instance on CPU 0,
   then two on CPUs 0 and 1. The load processes and Redis float. With two cores in all, Redis
   and the load have none of their own, so each instance is held to `--share` of its core
   (a CFS quota, in both setups alike; default 0.75 where quotas can be set, which needs root,
   see benchmarks/cpuquota.py; else 1) and they get the rest. `--share 1` pins whole cores
   and measures the machine more than the servers.
   Both setups' servers and the load's pairs stay up throughout, and the load runs on them
   in turn, `--windows` windows of `--window` seconds each (after an unseen warm-up window
   each), so that the machine's drift (this VM's speed wanders by up to 2x over tens of
   seconds) falls on both alike. Prints the ratio of the medians, and the servers' CPU per
   delivered message in each setup.
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
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.synchronize import Barrier

import redis

from benchmarks.cpu import cpu_seconds
from benchmarks.cpuquota import CpuQuota, unavailable
from benchmarks.latency import (
    FAMILIES,
    PAIRS_PER_PROCESS,
    PROCESSES,
    WARMUP,
    Server,
    add_protocol_option,
    connect,
    families,
    ms,
    now,
    percentiles,
    ping_pong,
    recipient,
    run_children,
    seat,
    sender,
)
from benchmarks.raw import Client, KeptConnection


async def pairs_across(
    urls: tuple[str, str], n: int, duration: float, barrier: Barrier, protocol: str
) -> int:
    """Figure E, one process: `n` pairs; each pair's first side talks to urls[0], the other
    to urls[1]."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(urls[i % 2], protocol)) for i in range(2 * n)
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
DEFAULT_SHARE = 0.75
"""Of its core, for each instance in figure I: two leave half a core to Redis and the load."""


Seat = tuple[KeptConnection, Client, bytes, bytes, bool]
"""One side of a pair: its connection, its client (on the handshake family, its session), its
wait and send requests, whether it serves first."""


async def seat_pairs(ports: tuple[int, int], n: int, protocol: str) -> list[Seat]:
    """`n` pairs, each side on its own connection (and on the handshake family with a session
    of its own, as each participant's client has); the first side talks to ports[0], the other
    to ports[1]."""
    connecting = asyncio.Semaphore(1)
    seats: list[Seat] = []
    for _ in range(n):
        room = ""
        for i, port in enumerate(ports):
            side, client = KeptConnection(port), await Client(port, protocol, connecting).open()
            joining = {"display_name": "ab"[i]} | ({"room_id": room} if room else {})
            joined = await side.call("join_room", client.request("join_room", joining, True))
            room = joined["room_id"]
            # The same requests every time (the server does not mind a repeated JSON-RPC id),
            # built once: the load's own work per message is as small as it can be.
            ids = {"room_id": room, "client_id": joined["client_id"]}
            wait = client.request("wait_for_message", {**ids, "timeout": 1}, True)
            send = client.request("send_message", {**ids, "message": "pong"}, True)
            seats.append((side, client, wait, send, i == 0))
    return seats


async def play(seat: Seat, deadline: float) -> int:
    """Ping-pong until `deadline`: whoever receives replies at once. Returns the messages
    this side received."""
    side, _, wait, send, serve = seat
    delivered = 0
    if serve:
        await side.call("send_message", send)
    while now() < deadline:
        got = await side.call("wait_for_message", wait)
        heard = sum(m["kind"] == "message" for m in got.get("messages") or [])
        if heard and now() < deadline:
            delivered += heard
            await side.call("send_message", send)
    return delivered


async def raw_load(
    setups: list[tuple[int, int]],
    n: int,
    window: float,
    windows: int,
    barrier: Barrier,
    protocol: str,
) -> list[int]:
    """Figure I, one load process: `n` pairs seated on each setup (a pair's two sides' ports),
    then `windows` windows of `window` seconds, each on the next setup in turn, each begun
    together with the other processes. Returns the messages delivered in each window."""
    seated = [await seat_pairs(ports, n, protocol) for ports in setups]
    try:
        delivered = []
        for w in range(windows):
            await asyncio.to_thread(barrier.wait, 60)
            deadline = now() + window
            seats = seated[w % len(setups)]
            delivered.append(sum(await asyncio.gather(*(play(s, deadline) for s in seats))))
        return delivered
    finally:
        for seats in seated:
            for side, client, *_ in seats:
                side.close()
                await client.close()


@dataclass
class Rate:
    """Figure I, one window: delivered messages per second, and the CPU of the setup's servers
    (user + system, all of them) per delivered message, in seconds."""

    per_second: float
    cpu_per_message: float


def raw_windows(
    setups: list[list[Server]], pairs: int, window: float, windows: int, protocol: str
) -> list[Rate]:
    """Runs the load on each setup in turn, `windows` windows in all; a Rate for each."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(RAW_PROCESSES + 1)  # and this process, to read the servers' CPU
    marks: list[list[float]] = []  # the CPU of every server at the start of each window

    def cpu_now() -> list[float]:
        return [cpu_seconds(server.proc.pid) for setup in setups for server in setup]

    def mark() -> None:
        for _ in range(windows):
            barrier.wait(120)
            marks.append(cpu_now())

    marker = threading.Thread(target=mark, daemon=True)
    marker.start()
    ports = [(setup[0].port, setup[-1].port) for setup in setups]
    got = run_children(
        [
            (f"r{i}", raw_load, (ports, pairs // RAW_PROCESSES, window, windows, barrier, protocol))
            for i in range(RAW_PROCESSES)
        ],
        event_loop="auto",  # a light load: uvloop where installed
    )
    marker.join()
    marks.append(cpu_now())
    # Which columns of a mark belong to each setup's servers.
    columns, at = [], 0
    for setup in setups:
        columns.append(range(at, at + len(setup)))
        at += len(setup)
    rates = []
    for w in range(windows):
        delivered = sum(got[f"r{i}"][w] for i in range(RAW_PROCESSES))
        used = sum(marks[w + 1][c] - marks[w][c] for c in columns[w % len(setups)])
        rates.append(Rate(delivered / window, used / max(delivered, 1)))
    return rates


@contextmanager
def pinned_servers(store: str, cpus: list[int], share: float) -> Iterator[list[Server]]:
    """An instance pinned to each of `cpus` and, if `share` < 1, held to that share of it by
    a CPU quota."""
    started: list[Server] = []
    quotas: list[CpuQuota] = []
    try:
        for cpu in cpus:
            server = Server(store)
            started.append(server)
            os.sched_setaffinity(server.proc.pid, {cpu})
            if share < 1:
                quotas.append(CpuQuota(f"mcp-chat-bench-{server.proc.pid}", share))
                quotas[-1].add(server.proc.pid)
        yield started
    finally:
        for server in started:
            server.stop()
        for quota in quotas:
            quota.remove()


# ---------------------------------------------------------------------------- D and E


def latency(
    recipient_url: str, sender_url: str, rounds: int, pause: float, protocol: str
) -> list[float]:
    ctx = mp.get_context("spawn")
    peer_r, peer_s = ctx.Pipe()
    got = run_children(
        [
            ("recipient", recipient, (recipient_url, rounds, peer_r, protocol)),
            ("sender", sender, (sender_url, rounds, pause, peer_s, protocol)),
        ]
    )
    return list(got["recipient"][WARMUP:])


def throughput(urls: tuple[str, str], duration: float, protocol: str) -> float:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    got = run_children(
        [
            (f"p{i}", pairs_across, (urls, PAIRS_PER_PROCESS, duration, barrier, protocol))
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
    """Figures D and E (those asked for) on one setup, for each protocol family asked for."""
    for protocol in families(args.protocol):
        named = f"{label} ({FAMILIES[protocol][:4]} {protocol})"
        if "D" in args.figures:
            rows.append((named, latency(urls[0], urls[1], args.rounds, args.pause, protocol)))
        if "E" in args.figures:
            rates.append((named, throughput(urls, args.duration, protocol)))


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
        "--windows", type=int, default=8, help="figure I windows per setup (default 8)"
    )
    parser.add_argument(
        "--window", type=float, default=4.0, help="figure I window length, s (default 4)"
    )
    parser.add_argument(
        "--share",
        type=float,
        help="figure I: the share of its core each instance may use (default 0.75 where CPU "
        "quotas can be set, else 1)",
    )
    parser.add_argument(
        "--figures", default="DEI", help="which figures to run, e.g. I or DE (default DEI)"
    )
    add_protocol_option(parser)
    args = parser.parse_args()
    if args.rounds <= WARMUP + 1:
        parser.error(f"--rounds must exceed {WARMUP + 1}")
    why = unavailable()
    if args.share is None:
        args.share = 1.0 if why else DEFAULT_SHARE
    elif not 0.1 <= args.share <= 1:
        parser.error("--share must be from 0.1 to 1")
    elif "I" in args.figures and args.share < 1 and why:
        parser.error(
            f"--share {args.share:g} needs a CPU quota, and here there is {why}; "
            "--share 1 runs figure I on whole cores"
        )

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
    print("            each side in its own process, on the protocol family in parentheses")
    print("            (2025 handshake: 2025-11-25; 2026 modern: 2026-07-28); figure I:")
    print("            the raw load on each family in turn (benchmarks/raw.py)")

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
                # Figure D: the sender on B, the recipient on A; E: each pair split across.
                measure_de("redis, two instances", (a, b), args, rows, rates)
        # Each family's (one instance, two instances), each window.
        raw: dict[str, list[tuple[Rate, Rate]]] = {}
        if "I" in args.figures and len(os.sched_getaffinity(0)) >= 2:
            # Each setup on a prefix of its own: the idle one hears nothing of the other.
            with (
                pinned_servers(f"{redis_store}-one", [0], args.share) as one_pinned,
                pinned_servers(f"{redis_store}-two", [0, 1], args.share) as two_pinned,
            ):
                for protocol in families(args.protocol):
                    got = raw_windows(
                        [one_pinned, two_pinned],
                        args.raw_pairs,
                        args.window,
                        2 * args.windows + 2,
                        protocol,
                    )
                    # The first window on each setup warms it up (Redis connections, scripts,
                    # this family's pairs), unseen.
                    raw[protocol] = list(zip(got[2::2], got[3::2], strict=True))
    finally:
        with redis.Redis.from_url(args.redis) as r:
            keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                r.delete(*keys)

    if rows:
        print()
        print(f"D. send-to-receive, one pair: {args.rounds} rounds ({WARMUP} warm-up dropped),")
        print(f"   idle pause {args.pause * 1000:g} ms before each send")
        print("                                                   p50      p90      p99  (ms)")
        for label, values in rows:
            p50, p90, p99 = percentiles(values)
            print(f"   {label:<45}{ms(p50)} {ms(p90)} {ms(p99)}")
    if rates:
        print()
        print(
            f"E. throughput: {PROCESSES * PAIRS_PER_PROCESS} pairs ping-ponging for "
            f"{args.duration:g} s ({PROCESSES} client processes)"
        )
        for label, rate in rates:
            print(f"   {label:<45}{rate:8.1f} delivered messages/s")
    if "I" not in args.figures:
        return
    print()
    if not raw:
        print("I. skipped: needs 2 usable CPUs")
        return
    print(f"I. throughput, servers pinned, light load: {args.raw_pairs} pairs ping-ponging")
    print(f"   (raw HTTP, {RAW_PROCESSES} load processes on uvloop); windows of {args.window:g} s,")
    print(f"   {args.windows} on one instance and {args.windows} on two, alternating, per family;")
    print("   delivered messages/s")
    for protocol, windows in raw.items():
        print_i(f"{FAMILIES[protocol]} {protocol}", windows)
    held = f"each held to {args.share:g} of its core"
    if args.share == 1:
        held = "whole cores" + (f" ({why}: no CPU quota)" if why else "")
    print(f"   (one instance pinned to CPU 0; two pinned to CPUs 0 and 1; {held};")
    print("   Redis and the load float)")


def print_i(family: str, raw: list[tuple[Rate, Rate]]) -> None:
    """Figure I on one protocol family: each pair of windows, the medians and their ratio."""
    print(f"   {family:<27}one instance    two instances    two / one")
    for i, (alone, spread) in enumerate(raw, 1):
        print(
            f"   windows {i:<18}{alone.per_second:8.1f}         {spread.per_second:8.1f}"
            f"        {spread.per_second / alone.per_second:6.2f}"
        )
    one_rate = statistics.median(alone.per_second for alone, _ in raw)
    two_rate = statistics.median(spread.per_second for _, spread in raw)
    print(
        f"   median                    {one_rate:8.1f}         {two_rate:8.1f}"
        f"        {two_rate / one_rate:6.2f}"
        "   (target >= 1.5)"
    )
    one_cpu = statistics.median(alone.cpu_per_message for alone, _ in raw)
    two_cpu = statistics.median(spread.cpu_per_message for _, spread in raw)
    print(
        f"   server CPU per message    {ms(one_cpu)} ms      {ms(two_cpu)} ms"
        f"     {two_cpu / one_cpu:6.2f}   (median; both servers' CPU over all messages)"
    )


if __name__ == "__main__":
    main()
