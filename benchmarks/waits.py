"""Many blocked waits on one server, and whether memory comes back. Prints figures only.

    .venv/bin/python -m benchmarks.waits [--waits 10000] [--processes 4] [--timeout 90]
        [--rounds 200] [--clients 10000] [--only G|H] [--plot docs/latency.png]
        [--malloc jemalloc|system] [--protocol handshake|modern|both]

The load generator is raw HTTP/1.1 over asyncio streams (benchmarks/raw.py; no SDK client: one
SDK client per wait is too heavy to hold 10,000): each request is one `tools/call` on its own
TCP connection (`Connection: close`), the bytes `mcp.Client` sends, spread over `--processes`
processes. The active pair is the official SDK client in two processes, as in
benchmarks.latency figure A. Each figure runs once per protocol family (`--protocol`, default
both; a fresh server for each): 2026-07-28 (stateless requests with the `_meta` envelope), and
the handshake family (2025-11-25 sessions: see `hold_waits` and `come_and_go` for who holds
which session).

G. `--waits` participants join beforehand (rooms of 50: one "poker" and 49 waiters; each
   waiter then reads the join events so it has nothing pending). Then every waiter blocks in
   one wait_for_message (`--timeout` s). Printed: the server's RSS growth per blocked wait,
   the active pair's send-to-receive latency while they are held against idle (before they
   were), and, after the poker of every even room sends one message, how many waits were
   answered correctly: the message in even rooms, a timeout in odd ones.
H. On a fresh server, after a warm-up: `--clients` clients come and go (pairs: both join a
   room, one sends, the other receives it, both leave; every request on its own connection;
   on the handshake family each client opens its session first and closes it last).
   Printed: the server's RSS before, at its peak, and 5 s and 15 s after the last one left,
   and the handshake-era sessions still open.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import multiprocessing as mp
import os
import queue
import resource
import statistics
import tempfile
import threading
import time
import traceback
import urllib.request
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from benchmarks.latency import (
    FAMILIES,
    WARMUP,
    Server,
    add_protocol_option,
    families,
    header,
    ms,
    now,
    percentiles,
    recipient,
    run_children,
    sender,
    texts,
)
from benchmarks.raw import Client

GROUP = 49  # waiters per room; with the poker, 50 = the default max_capacity
CONNECTING = 200  # connections being opened at once, per process
SETUP_TIMEOUT = 900.0  # seconds; joining everyone


def allocator_env(name: str) -> dict[str, str]:
    """The server's environment for `--malloc`: jemalloc as scripts/serve sets it up, or the
    usual allocators."""
    if name == "system":
        return {}
    found = sorted(glob.glob("/usr/lib/*-linux-gnu/libjemalloc.so.2"))
    if not found:
        raise SystemExit(
            "--malloc jemalloc: libjemalloc.so.2 not found (apt-get install libjemalloc2)"
        )
    return {
        "LD_PRELOAD": found[0],
        "PYTHONMALLOC": "malloc",
        "MALLOC_CONF": "narenas:1,tcache:false,dirty_decay_ms:500,muzzy_decay_ms:0,"
        "background_thread:true",
    }


def rss_kb(pid: int) -> int:
    """Resident set size of process `pid`, in KiB (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------------------- figure G


async def hold_waits(
    port: int,
    protocol: str,
    count: int,
    timeout: float,
    hold: Event,
    poke: Event,
    out: Queue[Any],
) -> dict[str, int]:
    """One load-generator process: `count` waiters in rooms of GROUP, joined and drained;
    then, on `hold`, one blocked wait each; on `poke`, a message into every even room.

    On the handshake family, the process's participants share one session (opened first,
    closed with DELETE at the end), its waits concurrent POSTs on it, rather than a session
    each: the server admits 1,000 handshake-era sessions by default (`max_sessions`), so
    10,000 waits from such clients are many waits per session on a server as it ships; and a
    session each, with its GET stream, would take 20,000 descriptors where this machine allows
    20,000 in all. The figure is the cost of a wait; sessions coming and going are figure H's.
    """
    connecting = asyncio.Semaphore(CONNECTING)
    working = asyncio.Semaphore(50)  # setup calls in flight at once
    client = await Client(port, protocol, connecting).open()

    async def setup(tool: str, **arguments: Any) -> dict[str, Any]:
        async with working:
            return await client.call(tool, **arguments)

    rooms = (count + GROUP - 1) // GROUP
    pokers = await asyncio.gather(
        *(setup("join_room", display_name="poker", capacity=GROUP + 1) for _ in range(rooms))
    )
    members = [(i % rooms, pokers[i % rooms]["room_id"]) for i in range(count)]
    joined = await asyncio.gather(
        *(setup("join_room", display_name="waiter", room_id=room_id) for _, room_id in members)
    )

    async def drain(me: dict[str, Any]) -> None:
        while True:
            got = await setup(
                "wait_for_message", room_id=me["room_id"], client_id=me["client_id"], timeout=1
            )
            if got["timed_out"] or not got["has_more"]:
                return

    await asyncio.gather(*(drain(me) for me in joined))
    out.put(("ready", count))

    await asyncio.to_thread(hold.wait)
    waits = [
        client.call_of(
            "wait_for_message",
            {"room_id": me["room_id"], "client_id": me["client_id"], "timeout": timeout},
        )
        for me in joined
    ]
    await asyncio.gather(*(w.send(connecting) for w in waits))
    out.put(("held", count))
    answers = [asyncio.ensure_future(w.result()) for w in waits]

    await asyncio.to_thread(poke.wait)
    await asyncio.gather(
        *(
            setup(
                "send_message",
                room_id=p["room_id"],
                client_id=p["client_id"],
                message=f"poke {p['room_id']}",
            )
            for r, p in enumerate(pokers)
            if r % 2 == 0
        )
    )
    tally = {"message": 0, "timeout": 0, "wrong": 0, "error": 0}
    for (room, room_id), answer in zip(members, answers, strict=True):
        try:
            got = await answer
        except Exception:
            tally["error"] += 1
            continue
        if room % 2 == 0 and not got["timed_out"] and texts(got) == [f"poke {room_id}"]:
            tally["message"] += 1
        elif room % 2 == 1 and got["timed_out"] and not got["messages"]:
            tally["timeout"] += 1
        else:
            tally["wrong"] += 1
    await client.close()
    return tally


def loadgen(name: str, fn: Any, args: tuple[Any, ...], out: Queue[Any]) -> None:
    """Entry point of a load-generator process: reports ("done", name, result, error)."""
    raise_open_files()
    try:
        out.put(("done", name, asyncio.run(fn(*args, out)), None))
    except BaseException:
        out.put(("done", name, None, traceback.format_exc(limit=6)))


def expect(out: Queue[Any], kind: str, n: int, timeout: float) -> list[Any]:
    """The next `n` reports of `kind` from the load generators; raises on a failed one."""
    got: list[Any] = []
    deadline = now() + timeout
    while len(got) < n:
        try:
            report = out.get(timeout=max(0.1, deadline - now()))
        except queue.Empty:
            raise TimeoutError(f"{len(got)}/{n} load generators reported {kind!r}") from None
        if report[0] == "done" and report[3]:
            raise RuntimeError(f"load generator {report[1]} failed:\n{report[3]}")
        if report[0] != kind:
            raise RuntimeError(f"expected {kind!r}, got {report!r}")
        got.append(report)
    return got


def gauge(port: int, name: str) -> int:
    """A gauge of the server's /metrics (`mcp_chat_NAME`), or -1 if it did not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(f"mcp_chat_{name} "):
                    return int(float(line.split()[-1]))
    except OSError:
        pass
    return -1


def family(protocol: str) -> str:
    """A figure's label for the protocol family it was taken on."""
    return f"{FAMILIES[protocol]} {protocol}"


def progress(text: str) -> None:
    print(f"   ... {text}", flush=True)


def pair_latency(
    url: str, rounds: int, pause: float, protocol: str
) -> tuple[list[float], list[float]]:
    """Figure A's pair: send-to-receive latencies and no-op round trips, warm-up dropped."""
    ctx = mp.get_context("spawn")
    peer_r, peer_s = ctx.Pipe()
    got = run_children(
        [
            ("recipient", recipient, (url, rounds, peer_r, protocol)),
            ("sender", sender, (url, rounds, pause, peer_s, protocol)),
        ]
    )
    return got["recipient"][WARMUP:], got["sender"][WARMUP:]


def row(label: str, values: list[float]) -> str:
    p50, p90, p99 = percentiles(values)
    return f"   {label:<30}{ms(p50)} {ms(p90)} {ms(p99)}"


def figure_g(
    server: Server,
    protocol: str,
    waits: int,
    processes: int,
    timeout: float,
    rounds: int,
    pause: float,
) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{server.port}/mcp"
    ctx = mp.get_context("spawn")
    out: Queue[Any] = ctx.Queue()
    hold, poke = ctx.Event(), ctx.Event()
    shares = [waits // processes + (1 if i < waits % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=loadgen,
            args=(f"g{i}", hold_waits, (server.port, protocol, share, timeout, hold, poke), out),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    rss_start = rss_kb(server.proc.pid)
    started = now()
    for p in procs:
        p.start()
    try:
        expect(out, "ready", processes, SETUP_TIMEOUT)
        setup_s = now() - started
        progress(f"{waits} joined and drained in {setup_s:.1f} s")
        time.sleep(2)
        rss_idle = rss_kb(server.proc.pid)
        idle, idle_noop = pair_latency(url, rounds, pause, protocol)
        progress(f"idle pair p50 {statistics.median(idle) * 1000:.2f} ms; holding the waits")

        hold.set()
        held_at = now()
        expect(out, "held", processes, 300)
        while (blocked := gauge(server.port, "blocked_waits")) < waits and now() - held_at < 60:
            time.sleep(0.5)
        hold_s = now() - held_at
        progress(f"{blocked} blocked after {hold_s:.1f} s")
        time.sleep(2)
        rss_held = rss_kb(server.proc.pid)
        loaded, loaded_noop = pair_latency(url, rounds, pause, protocol)
        blocked_after = gauge(server.port, "blocked_waits")
        poke.set()
        poked_after = now() - held_at
        reports = expect(out, "done", processes, timeout + 120)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    rss_after = rss_kb(server.proc.pid)
    tally = {k: sum(r[2][k] for r in reports) for k in ("message", "timeout", "wrong", "error")}
    growth = rss_held - rss_idle
    print()
    print(f"G. {family(protocol)}: {waits} blocked waits on one server, load generator: raw")
    print(
        f"   HTTP/1.1 (asyncio streams), one tools/call per TCP connection, {processes} processes;"
    )
    if protocol == "handshake":
        print("   one session each, its waits concurrent POSTs on it;")
    print(f"   rooms of {GROUP} waiters + 1 poker; wait timeout {timeout:g} s")
    print(f"   joined and drained in {setup_s:.1f} s; all waits sent in {hold_s:.1f} s")
    print(f"   blocked waits (server /metrics): {blocked} once held, {blocked_after} after pair")
    print(
        f"   server RSS: start {rss_start / 1024:.1f} MiB, idle with all joined "
        f"{rss_idle / 1024:.1f} MiB, {waits} held {rss_held / 1024:.1f} MiB, "
        f"after {rss_after / 1024:.1f} MiB"
    )
    print(f"   RSS growth per blocked wait  {growth / waits:.1f} KiB   (target <= 30 KB)")
    print(f"   active pair, {rounds} rounds ({WARMUP} warm-up dropped), pause {pause * 1000:g} ms")
    print("                                      p50      p90      p99  (ms)")
    print(row("send-to-receive, idle", idle))
    print(row(f"send-to-receive, {waits} held", loaded))
    print(row("no-op round trip, idle", idle_noop))
    print(row(f"no-op round trip, {waits} held", loaded_noop))
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"   held/idle p50 ratio           {ratio:8.2f}   (target <= 2)")
    print(f"   messages sent to even rooms {poked_after:.1f} s after the waits started")
    print(
        f"   answers: {tally['message']} got their room's message, {tally['timeout']} timed "
        f"out as expected, {tally['wrong']} wrong, {tally['error']} failed "
        f"({tally['message'] + tally['timeout']}/{waits} correct)"
    )
    return {
        f"{FAMILIES[protocol]}: send-to-receive, idle": idle,
        f"{FAMILIES[protocol]}: send-to-receive, {waits} waits held": loaded,
        f"{FAMILIES[protocol]}: no-op round trip, idle": idle_noop,
    }


# ---------------------------------------------------------------------------- figure H


async def come_and_go(port: int, protocol: str, pairs: int, out: Queue[Any]) -> dict[str, int]:
    """One load-generator process: `pairs` pairs, each joins a room, one sends, the other
    receives it, both leave. All start at once; every request is its own connection. On the
    handshake family each client opens its own session first and closes it (DELETE) last, as
    a client that comes and goes does."""
    connecting = asyncio.Semaphore(CONNECTING)
    working = asyncio.Semaphore(500)

    async def pair(i: int) -> bool:
        async with working:
            alice, bob = (Client(port, protocol, connecting) for _ in range(2))
            try:
                await asyncio.gather(alice.open(), bob.open())
                a = await alice.call("join_room", display_name=f"a{i}")
                b = await bob.call("join_room", display_name=f"b{i}", room_id=a["room_id"])
                await alice.call(
                    "send_message",
                    room_id=a["room_id"],
                    client_id=a["client_id"],
                    message=f"hello {i}",
                )
                heard: list[str] = []
                for _ in range(3):
                    got = await bob.call(
                        "wait_for_message",
                        room_id=b["room_id"],
                        client_id=b["client_id"],
                        timeout=5,
                    )
                    heard += texts(got)
                    if heard or got["timed_out"]:
                        break
                for who, me in ((alice, a), (bob, b)):
                    await who.call("leave_chat", room_id=me["room_id"], client_id=me["client_id"])
            finally:
                await asyncio.gather(alice.close(), bob.close())
            return heard == [f"hello {i}"]

    results = await asyncio.gather(*(pair(i) for i in range(pairs)), return_exceptions=True)
    return {
        "ok": sum(r is True for r in results),
        "wrong": sum(r is False for r in results),
        "error": sum(isinstance(r, BaseException) for r in results),
    }


def run_come_and_go(server: Server, protocol: str, clients: int, processes: int) -> dict[str, int]:
    ctx = mp.get_context("spawn")
    out: Queue[Any] = ctx.Queue()
    pairs = clients // 2
    shares = [pairs // processes + (1 if i < pairs % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=loadgen,
            args=(f"h{i}", come_and_go, (server.port, protocol, share), out),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for p in procs:
        p.start()
    try:
        reports = expect(out, "done", processes, SETUP_TIMEOUT)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    return {k: sum(r[2][k] for r in reports) for k in ("ok", "wrong", "error")}


def figure_h(server: Server, protocol: str, clients: int, processes: int) -> None:
    pid = server.proc.pid
    fresh = rss_kb(pid)
    warm = run_come_and_go(server, protocol, 1000, processes)
    time.sleep(5)
    before = rss_kb(pid)
    sessions_before = gauge(server.port, "sessions")
    peak = before
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = now()
    tally = run_come_and_go(server, protocol, clients, processes)
    took = now() - started
    time.sleep(5)
    sampling = False
    sampler.join()
    after5 = rss_kb(pid)
    time.sleep(10)
    after15 = rss_kb(pid)
    print()
    print(f"H. {family(protocol)}: {clients} clients come and go ({clients // 2} pairs: join,")
    print("   send, receive, leave; every request its own connection, closed after;")
    if protocol == "handshake":
        print("   each client its own session: initialize, initialized, GET stream, ..., DELETE;")
    print(f"   {processes} load processes, raw HTTP as in G; after a warm-up of 1000 clients")
    print(f"   ({warm['ok']} pairs ok; handshake sessions open 5 s after it: {sessions_before})")
    print(
        f"   took {took:.1f} s; pairs: {tally['ok']} ok, {tally['wrong']} wrong, "
        f"{tally['error']} failed"
    )
    print(
        f"   server RSS: fresh {fresh / 1024:.1f} MiB, before {before / 1024:.1f} MiB, "
        f"peak {peak / 1024:.1f} MiB, "
        f"5 s after {after5 / 1024:.1f} MiB, 15 s after {after15 / 1024:.1f} MiB"
    )
    print(
        f"   after/before: {after5 / before:.3f} at 5 s, {after15 / before:.3f} at 15 s "
        "(target <= 1.10)"
    )
    # A closed handshake-era session leaves reference cycles (its cancelled tasks'
    # tracebacks) that only the collector's oldest generation frees: what the warm-up left may
    # still be in "before", so set the end against the fresh server's too.
    print(f"   15 s after / fresh server: {after15 / fresh:.3f}")
    print(
        f"   handshake sessions open 15 s after (server /metrics): {gauge(server.port, 'sessions')}"
    )


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=10_000, help="G: blocked waits")
    parser.add_argument("--processes", type=int, default=4, help="load processes (default 4)")
    parser.add_argument("--timeout", type=float, default=90.0, help="G: wait timeout, s")
    parser.add_argument("--rounds", type=int, default=200, help="G: active pair rounds")
    parser.add_argument("--pause", type=float, default=0.02, help="G: idle pause, s")
    parser.add_argument("--clients", type=int, default=10_000, help="H: clients")
    parser.add_argument("--only", choices=["G", "H"], help="run one figure")
    add_protocol_option(parser)
    parser.add_argument("--plot", help="G: write the latency distributions to this PNG")
    parser.add_argument(
        "--malloc",
        choices=["jemalloc", "system"],
        default="jemalloc",
        help="the server's allocator (default jemalloc, as scripts/serve runs it)",
    )
    args = parser.parse_args()
    limit = raise_open_files()
    # Everyone joins beforehand: more rooms than the default limit of 10,000 may be made.
    os.environ["MCP_CHAT_MAX_ROOMS"] = "0"
    os.environ["MCP_CHAT_RATE_JOINS"] = "0"  # all load comes from one address
    # Handshake-era sessions: H's clients hold up to 1,000 each per load process at once (500
    # pairs), more than the default cap of 1,000, and a session with its GET stream open is
    # never idle, so at the cap a newcomer would be refused. The figures measure memory and
    # latency, not admission.
    os.environ["MCP_CHAT_MAX_SESSIONS"] = str(1000 * args.processes + 1000)
    series: dict[str, list[float]] = {}
    first = True

    def start(store: str) -> Server:
        nonlocal first
        server = Server(store, allocator_env(args.malloc))
        if first:
            header(server.port)
            print(f"  open files  limit {limit} (server and load processes)")
            print(f"  allocator {args.malloc}; max_sessions {os.environ['MCP_CHAT_MAX_SESSIONS']}")
            first = False
        return server

    with tempfile.TemporaryDirectory(prefix="mcp-chat-bench-") as tmp:
        for protocol in families(args.protocol):
            # A fresh server for each figure and family: each one's memory is its own.
            if args.only != "H":
                server = start(f"sqlite:///{tmp}/g-{protocol}.db")
                try:
                    series |= figure_g(
                        server,
                        protocol,
                        args.waits,
                        args.processes,
                        args.timeout,
                        args.rounds,
                        args.pause,
                    )
                finally:
                    server.stop()
                report(server)
            if args.only != "G":
                server = start(f"sqlite:///{tmp}/h-{protocol}.db")
                try:
                    figure_h(server, protocol, args.clients, args.processes)
                finally:
                    server.stop()
                report(server)
    if args.plot and series:
        from benchmarks.plot import latency_png

        latency_png(args.plot, series, f"mcp-chat, one pair, {args.rounds} rounds")
        print(f"   plot written to {args.plot}")


def report(server: Server) -> None:
    problems = server.problems()
    print(f"   server log warnings: {len(problems)}")
    for line in problems[:5]:
        print(f"      {line}")


if __name__ == "__main__":
    main()
